//! End-to-end tests of `kiln prune`, `kiln distill` and `kiln quantize`: the output directory loads in
//! `kiln forward` / `kiln embed` unchanged, reports say what happened, bad calls are refused.

use std::path::{Path, PathBuf};

use crate::common::{fails_one_line, kiln};
use kiln_tests::minilm::minilm_dir;
use serde_json::Value;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/encoder")
        .join(case)
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// `kiln SUBCOMMAND` on the plain encoder in `dir` (ndarray, JSON, small random batches).
fn plain_command(subcommand: &str, dir: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = kiln();
    cmd.args([subcommand, "--backend", "ndarray", "--json"])
        .args(["--seq", "6", "--batch-size", "3"])
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--weights")
        .arg(dir.join("model.safetensors"))
        .arg("--out")
        .arg(out);
    cmd
}

fn prune_plain(out: &Path, extra: &[&str]) -> Value {
    let case = fixture("pre_gelu_batch_first_final_norm");
    json_of(
        &plain_command("prune", &case, out)
            .args(extra)
            .output()
            .unwrap(),
    )
}

fn forward_runs(dir: &Path) -> Value {
    forward_runs_with(dir, &["--backend", "ndarray"])
}

/// `kiln forward --json` on the model in `dir` with `extra` flags.
fn forward_runs_with(dir: &Path, extra: &[&str]) -> Value {
    let output = kiln()
        .args(["forward", "--json", "--batch", "2", "--seq", "5"])
        .args(extra)
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--weights")
        .arg(dir.join("model.safetensors"))
        .output()
        .unwrap();
    json_of(&output)
}

#[test]
fn heads_and_ffn_pruning_shrinks_a_plain_encoder_that_forward_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pruned");
    let report = prune_plain(
        &out,
        &[
            "--method",
            "heads,ffn",
            "--rate",
            "0.5",
            "--finetune-steps",
            "3",
            "--eval-every",
            "1",
        ],
    );
    assert!(report["params_after"].as_u64() < report["params_before"].as_u64());
    // 4 heads x 2 layers, half removed globally; 32 neurons per layer, half removed in each.
    let heads: Vec<u64> = serde_json::from_value(report["layer_heads"].clone()).unwrap();
    assert_eq!(heads.iter().sum::<u64>(), 4, "{report}");
    assert_eq!(report["layer_dim_feedforward"], serde_json::json!([16, 16]));
    let steps = report["finetune_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(report["distillation"]["loss"], serde_json::json!(["mse"]));
    assert_eq!(report["distillation"]["dropout"], false);
    assert!(steps
        .iter()
        .all(|s| s["loss"].as_f64().unwrap().is_finite() && !s["eval"].is_null()));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["layer_dim_feedforward"], serde_json::json!([16, 16]));
    assert!(out.join("kiln_compression.json").is_file());
    forward_runs(&out);

    // Activation importance and least-squares reconstruction: every refit block's error drops,
    // the shrunk model is closer to the original than without the refit, and it loads.
    let fidelity = |report: &Value| {
        report["fidelity_before_finetune"]["mean_cosine"]
            .as_f64()
            .unwrap()
    };
    let args = [
        "--method",
        "heads,ffn",
        "--rate",
        "0.5",
        "--importance",
        "activation",
    ];
    let plain_shrink = prune_plain(&tmp.path().join("activation"), &args);
    assert!(plain_shrink["reconstruction"].is_null());
    let out = tmp.path().join("reconstructed");
    let report = prune_plain(&out, &[&args[..], &["--reconstruct"]].concat());
    assert_eq!(report["importance"], "activation");
    let fits = report["reconstruction"].as_array().unwrap();
    assert_eq!(fits.len(), 4, "{report}");
    assert_eq!(fits[1]["weight"], "layers.0.linear2.weight");
    for fit in fits {
        assert!(
            fit["mse_after"].as_f64().unwrap() < fit["mse_before"].as_f64().unwrap(),
            "{fit}"
        );
    }
    assert!(
        fidelity(&report) > fidelity(&plain_shrink),
        "{} vs {}",
        fidelity(&report),
        fidelity(&plain_shrink)
    );
    forward_runs(&out);

    // --obs keeps each layer's counts (they follow --importance) and chooses which ones; the
    // result loads. Without heads/ffn it is a usage error.
    let out = tmp.path().join("obs");
    let by_obs = prune_plain(&out, &[&args[..], &["--obs", "--reconstruct"]].concat());
    assert_eq!(
        (by_obs["obs"].as_bool(), report["obs"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(by_obs["layer_heads"], report["layer_heads"]);
    assert_eq!(
        by_obs["layer_dim_feedforward"],
        report["layer_dim_feedforward"]
    );
    assert!(fidelity(&by_obs) > fidelity(&plain_shrink), "{by_obs}");
    forward_runs(&out);
    let line = fails_one_line(
        kiln()
            .args(["prune", "--method", "magnitude", "--rate", "0.2", "--obs"])
            .args(["--config", "c.json", "--weights", "w.safetensors", "--out"])
            .arg(tmp.path().join("never")),
        2,
    );
    assert!(line.contains("--obs"), "{line}");
}

/// `kiln distill` of a plain student (`dir`'s files) from the fixture `teacher`.
fn distill_plain(student: &Path, teacher: &str, out: &Path, extra: &[&str]) -> assert_cmd::Command {
    let teacher = fixture(teacher);
    let mut cmd = plain_command("distill", student, out);
    cmd.arg("--teacher-config")
        .arg(teacher.join("config.json"))
        .arg("--teacher-weights")
        .arg(teacher.join("model.safetensors"))
        .args(extra);
    cmd
}

#[test]
fn distill_continues_from_a_pruned_plain_encoder_and_refuses_a_mismatched_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let pruned = tmp.path().join("pruned");
    let report = prune_plain(&pruned, &["--method", "heads,ffn", "--rate", "0.5"]);
    let out = tmp.path().join("distilled");
    let teacher = "pre_gelu_batch_first_final_norm";
    let output = distill_plain(
        &pruned,
        teacher,
        &out,
        &["--steps", "4", "--eval-every", "2", "--lr", "1e-3"],
    )
    .output()
    .unwrap();
    let distilled = json_of(&output);
    // Evaluations reach a log file too (stderr is not a terminal here, the bar is hidden).
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("step 2: mean cosine") && log.contains("step 4: mean cosine"),
        "{log}"
    );
    assert_eq!(distilled["command"], "distill");
    assert_eq!(distilled["kind"], "encoder");
    let steps = distilled["finetune_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert!(steps[1]["eval"].is_object() && steps[0]["eval"].is_null());
    // The same held-out inputs as prune's report: the starting point is the pruned model's.
    let cosine = |r: &Value, key: &str| r[key]["mean_cosine"].as_f64().unwrap();
    assert_eq!(
        cosine(&distilled, "fidelity_before_finetune"),
        cosine(&report, "fidelity_before_finetune")
    );
    assert!(
        cosine(&distilled, "fidelity_after_finetune")
            > cosine(&distilled, "fidelity_before_finetune"),
        "{distilled}"
    );
    assert_eq!(distilled["distillation"]["lr"], 1e-3);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["layer_dim_feedforward"], serde_json::json!([16, 16]));
    assert!(out.join("kiln_compression.json").is_file());
    forward_runs(&out);

    // A teacher of another width, no steps, --out in the teacher's place: one line each.
    let line = fails_one_line(
        &mut distill_plain(&pruned, "deep_odd", &tmp.path().join("a"), &[]),
        1,
    );
    assert!(line.contains("d_model 16") && line.contains("24"), "{line}");
    assert!(!tmp.path().join("a").exists());
    let line = fails_one_line(
        &mut distill_plain(&pruned, teacher, &tmp.path().join("b"), &["--steps", "0"]),
        2,
    );
    assert!(line.contains("--steps"), "{line}");
    let line = fails_one_line(&mut distill_plain(&pruned, teacher, &pruned, &[]), 2);
    assert!(line.contains("never writes over its inputs"), "{line}");
}

#[test]
fn magnitude_pruning_reports_the_rate_as_sparsity() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sparse");
    let report = prune_plain(&out, &["--method", "magnitude", "--rate", "0.2"]);
    let sparsity = report["sparsity"]["total"]["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.2).abs() < 1e-3, "{sparsity}");
    assert_eq!(report["params_after"], report["params_before"]);
    let fidelity = report["fidelity_before_finetune"]["mean_cosine"]
        .as_f64()
        .unwrap();
    assert!(fidelity > 0.5 && fidelity <= 1.0 + 1e-9, "{fidelity}");
    forward_runs(&out);

    // Wanda, calibrated on random inputs, prunes round(rate * d_in) weights of each output row
    // (here 3 of 16 and 6 of 32: 0.1875 of every tensor), and the result loads too.
    let out = tmp.path().join("wanda");
    let report = prune_plain(&out, &["--method", "wanda", "--rate", "0.2"]);
    assert_eq!(report["method"], serde_json::json!(["wanda"]));
    let sparsity = report["sparsity"]["total"]["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.1875).abs() < 1e-9, "{sparsity}");
    forward_runs(&out);
}

#[test]
fn quantize_writes_a_smaller_file_that_forward_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("int8");
    let case = fixture("deep_odd");
    let output = kiln()
        .args(["quantize", "--backend", "ndarray", "--json"])
        .arg("--config")
        .arg(case.join("config.json"))
        .arg("--weights")
        .arg(case.join("model.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let report = json_of(&output);
    let (before, after) = (
        report["bytes_before"].as_f64().unwrap(),
        report["bytes_after"].as_f64().unwrap(),
    );
    assert!(after < before / 2.0, "{before} -> {after}");
    assert!(
        report["fidelity_int8_file"]["mean_cosine"]
            .as_f64()
            .unwrap()
            > 0.99,
        "{report}"
    );
    // The int8 file runs in int8 by default (--precision auto), and in f32 when asked.
    assert_eq!(forward_runs(&out)["precision"], "int8");
    assert_eq!(
        forward_runs_with(&out, &["--precision", "f32"])["precision"],
        "f32"
    );
}

#[test]
fn bad_prune_calls_are_refused_with_one_line() {
    let case = fixture("post_relu");
    let base = |out: &Path| {
        let mut cmd = kiln();
        cmd.args(["prune", "--backend", "ndarray", "--method", "magnitude"])
            .arg("--config")
            .arg(case.join("config.json"))
            .arg("--weights")
            .arg(case.join("model.safetensors"))
            .arg("--out")
            .arg(out);
        cmd
    };
    let tmp = tempfile::tempdir().unwrap();
    let line = fails_one_line(base(&tmp.path().join("x")).args(["--rate", "1.5"]), 2);
    assert!(line.contains("--rate 1.5"), "{line}");
    let line = fails_one_line(base(&case).args(["--rate", "0.2"]), 2);
    assert!(
        line.contains("never writes over its inputs") || line.contains("holds the input"),
        "{line}"
    );
    let line = fails_one_line(
        base(&tmp.path().join("y")).args(["--rate", "0.2", "--method", "heads"]),
        2,
    );
    assert!(line.contains("--method"), "{line}");
    let line = fails_one_line(
        base(&tmp.path().join("z")).args(["--rate", "0.2", "--reconstruct"]),
        2,
    );
    assert!(
        line.contains("--reconstruct") && line.contains("heads"),
        "{line}"
    );
}

#[test]
fn prune_never_writes_inside_the_source_model_even_into_a_new_subdirectory() {
    let model = minilm_dir();
    let out = model.join("not-yet").join("pruned");
    let line = fails_one_line(
        kiln()
            .args([
                "prune",
                "--backend",
                "ndarray",
                "--method",
                "magnitude",
                "--rate",
                "0.2",
            ])
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&out),
        2,
    );
    assert!(line.contains("never writes over its inputs"), "{line}");
    assert!(!model.join("not-yet").exists());
}

#[test]
fn pruned_text_model_loads_in_embed() {
    let model = minilm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lines.txt");
    let lines: Vec<String> = (0..12)
        .map(|i| format!("Sentence number {i} is about topic {}.", i % 3))
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let out = tmp.path().join("minilm-pruned");
    let output = kiln()
        .args([
            "prune",
            "--backend",
            "ndarray",
            "--json",
            "--method",
            "heads,ffn",
            "--rate",
            "0.3",
        ])
        .args(["--finetune-steps", "1", "--batch-size", "4"])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let report = json_of(&output);
    let heads: Vec<u64> = serde_json::from_value(report["layer_heads"].clone()).unwrap();
    assert_eq!(
        heads.iter().sum::<u64>(),
        72 - 22,
        "round(0.3 * 72) heads removed: {report}"
    );
    assert_eq!(
        report["layer_dim_feedforward"],
        serde_json::json!(vec![1075; 6])
    );
    assert_eq!(
        report["distillation"]["loss"],
        serde_json::json!(["cosine"])
    );
    for f in [
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
        "config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} copied/written");
    }
    let output = kiln()
        .args(["embed", "--backend", "ndarray", "--model"])
        .arg(&out)
        .arg("A pruned model still embeds.")
        .output()
        .unwrap();
    let json = json_of(&output);
    assert_eq!(json["dim"], 384);
    // kiln distill goes on from the pruned model, with the original as the teacher.
    let distilled = tmp.path().join("minilm-distilled");
    let output = kiln()
        .args(["distill", "--backend", "ndarray", "--json", "--steps", "1"])
        .args(["--batch-size", "4", "--distill-loss", "cosine,layers"])
        .arg("--model")
        .arg(&out)
        .arg("--teacher")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&distilled)
        .output()
        .unwrap();
    let report = json_of(&output);
    assert_eq!(report["kind"], "text");
    assert_eq!(
        report["distillation"]["loss"],
        serde_json::json!(["cosine", "layers"])
    );
    let cosine = |key: &str| report[key]["mean_cosine"].as_f64().unwrap();
    assert!(
        cosine("fidelity_after_finetune") > cosine("fidelity_before_finetune"),
        "{report}"
    );
    assert_eq!(report["teacher"].as_str(), model.to_str());
    assert!(distilled.join("tokenizer.json").is_file());
    let line = fails_one_line(
        kiln()
            .args(["distill", "--model"])
            .arg(&out)
            .arg("--teacher-config")
            .arg(fixture("post_relu").join("config.json"))
            .arg("--teacher-weights")
            .arg(fixture("post_relu").join("model.safetensors"))
            .arg("--out")
            .arg(tmp.path().join("never")),
        2,
    );
    assert!(line.contains("--teacher"), "{line}");
    // Gradient importance without data is refused, naming the way out.
    let line = fails_one_line(
        kiln()
            .args(["prune", "--method", "heads", "--rate", "0.2", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(tmp.path().join("z")),
        2,
    );
    assert!(line.contains("--importance norm"), "{line}");
    // So is Wanda without calibration lines.
    let line = fails_one_line(
        kiln()
            .args(["prune", "--method", "wanda", "--rate", "0.2", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(tmp.path().join("w")),
        2,
    );
    assert!(line.contains("--data"), "{line}");
    let line = fails_one_line(
        kiln()
            .args([
                "prune",
                "--method",
                "ffn",
                "--rate",
                "0.2",
                "--importance",
                "norm",
            ])
            .arg("--reconstruct")
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(tmp.path().join("r")),
        2,
    );
    assert!(line.contains("--reconstruct needs --data"), "{line}");
}
