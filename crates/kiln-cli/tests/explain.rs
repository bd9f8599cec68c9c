//! End-to-end tests of `kiln explain` on all-MiniLM-L6-v2: the report's fields per method, the
//! heatmap and HTML files, and one-line errors.

use crate::common::{fails_one_line, kiln};
use kiln_tests::minilm::minilm_dir;

const TEXT: &str = "The cat sat on the mat.";

fn explain(dir: &std::path::Path, method: &str, extra: &[&str]) -> serde_json::Value {
    let out = dir.join(format!("{method}.json"));
    let status = kiln()
        .args([
            "explain",
            "--backend",
            "ndarray",
            "--method",
            method,
            "--model",
        ])
        .arg(minilm_dir())
        .arg("--out")
        .arg(&out)
        .args(extra)
        .arg(TEXT)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8(status.stdout).unwrap();
    assert!(
        stdout.contains("[CLS]") && stdout.contains("mat"),
        "token table: {stdout}"
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn tokens(report: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(report["tokens"].clone()).unwrap()
}

#[test]
fn rollout_writes_report_heatmap_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("map.png");
    let html = dir.path().join("report.html");
    let report = explain(
        dir.path(),
        "rollout",
        &[
            "--heatmap",
            png.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let tokens = tokens(&report);
    assert_eq!(
        tokens,
        ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    );
    let scores = report["token_scores"].as_array().unwrap();
    assert_eq!(scores.len(), tokens.len());
    let rollout = report["rollout"].as_array().unwrap();
    assert_eq!(rollout.len(), tokens.len());
    assert!(rollout
        .iter()
        .all(|row| row.as_array().unwrap().len() == tokens.len()));
    let image = image::open(&png).unwrap();
    assert_eq!((image.width(), image.height()), (800, 800));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(tokens
        .iter()
        .all(|t| page.contains(&format!(">{t}</span>"))));
}

#[test]
fn attention_and_gradient_methods_report_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let report = explain(dir.path(), "attention", &["--layer", "1", "--head", "3"]);
    assert_eq!(report["layer"], 1);
    assert_eq!(report["head"], 3);
    let n = tokens(&report).len();
    assert_eq!(report["attention"].as_array().unwrap().len(), n);

    let png = dir.path().join("ig.png");
    let report = explain(
        dir.path(),
        "integrated-gradients",
        &[
            "--steps",
            "32",
            "--target",
            "A kitten is sitting on a rug.",
            "--heatmap",
            png.to_str().unwrap(),
            "--heatmap-size",
            "600x200",
        ],
    );
    assert_eq!(report["target"]["kind"], "similarity");
    assert_eq!(report["integrated_gradients"]["steps"], 32);
    let delta = report["delta"].as_f64().unwrap();
    let change =
        report["target_value"].as_f64().unwrap() - report["baseline_value"].as_f64().unwrap();
    assert!(
        delta.abs() < 0.02 * change.abs(),
        "delta {delta}, change {change}"
    );
    assert_eq!(report["head_importance"].as_array().unwrap().len(), 6);
    let image = image::open(&png).unwrap();
    assert_eq!((image.width(), image.height()), (600, 200));

    let report = explain(dir.path(), "grad-input", &["--target-dim", "5"]);
    assert_eq!(report["target"]["kind"], "dimension");
    assert_eq!(report["token_scores"].as_array().unwrap().len(), n);
}

#[test]
fn bad_explain_options_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = kiln();
        cmd.args(["explain", "--backend", "ndarray", "--model"])
            .arg(minilm_dir())
            .args(args);
        cmd
    };
    let err = fails_one_line(
        &mut run(&["--method", "attention", "--layer", "6", TEXT]),
        2,
    );
    assert!(
        err.contains("layer 6 is out of range") && err.contains("6 layers"),
        "{err}"
    );
    let err = fails_one_line(
        &mut run(&["--method", "attention", "--head", "12", TEXT]),
        2,
    );
    assert!(err.contains("head 12 is out of range"), "{err}");
    let err = fails_one_line(&mut run(&["--method", "rollout", "--target", "x", TEXT]), 2);
    assert!(err.contains("--target"), "{err}");
    let err = fails_one_line(
        &mut run(&["--method", "grad-input", "--target-dim", "384", TEXT]),
        2,
    );
    assert!(err.contains("dimension 384 is out of range"), "{err}");
    let inside = minilm_dir().join("report.json");
    let err = fails_one_line(
        &mut run(&[
            "--method",
            "rollout",
            "--out",
            inside.to_str().unwrap(),
            TEXT,
        ]),
        2,
    );
    assert!(err.contains("inside the model directory"), "{err}");
    let same = dir.path().join("x.json");
    let same = same.to_str().unwrap();
    let err = fails_one_line(
        &mut run(&["--method", "rollout", "--out", same, "--html", same, TEXT]),
        2,
    );
    assert!(err.contains("two outputs"), "{err}");
    let err = fails_one_line(
        &mut run(&[
            "--method",
            "rollout",
            "--heatmap",
            "/tmp/x.png",
            "--heatmap-size",
            "10x10",
            TEXT,
        ]),
        2,
    );
    assert!(err.contains("between 64 and 8192"), "{err}");
}
