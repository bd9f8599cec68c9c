//! Hostile and careless input (issue #23), one test per class: sizes that would exhaust memory,
//! unbounded counts and closed pipes, non-finite weights, output directories and temporary
//! files that must be atomic, cheap checks before expensive work, and the smaller cases. Each
//! asserts the clear error (or the clean end) that replaced an abort, a hang or debris.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{fails_one_line, kiln};
use kiln_tests::minilm::minilm_dir;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/encoder")
        .join(case)
}

/// A copy of a fixture's config with `edit` applied, beside its real weights.
fn edited_config(dir: &Path, case: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let text = std::fs::read_to_string(fixture(case).join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut config);
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// A text model directory that links to all-MiniLM-L6-v2's files, with `replaced` files
/// written instead.
fn minilm_with(dir: &Path, replaced: &[(&str, &str)]) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(minilm_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if replaced
            .iter()
            .all(|(r, _)| Path::new(r) != Path::new(&name))
        {
            std::os::unix::fs::symlink(entry.path(), model.join(&name)).unwrap();
        }
    }
    for (name, content) in replaced {
        std::fs::write(model.join(name), content).unwrap();
    }
    model
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// Class 1: sizes are checked against the weights and the memory budget before anything is built.
#[test]
fn configs_and_batches_that_cannot_fit_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = fixture("post_relu").join("model.safetensors");
    let layers = edited_config(tmp.path(), "post_relu", |c| {
        c["num_layers"] = 1_000_000.into()
    });
    for command in ["forward", "info"] {
        let backend: &[&str] = if command == "forward" {
            &["--backend", "ndarray"]
        } else {
            &[]
        };
        let line = fails_one_line(
            kiln()
                .arg(command)
                .args(backend)
                .arg("--config")
                .arg(&layers)
                .arg("--weights")
                .arg(&weights)
                .timeout(Duration::from_secs(120)),
            1,
        );
        assert!(line.contains("different models"), "{command}: {line}");
    }
    let wide = edited_config(tmp.path(), "post_relu", |c| {
        c["d_model"] = 1_000_000_000u64.into();
        c["nhead"] = 1.into();
    });
    let line = fails_one_line(
        kiln()
            .args(["info", "--config"])
            .arg(&wide)
            .arg("--weights")
            .arg(&weights),
        1,
    );
    assert!(line.contains("different models"), "{line}");
    // No weights to compare with: the memory budget refuses the model itself.
    let line = fails_one_line(
        kiln()
            .args(["forward", "--backend", "ndarray", "--memory-limit", "1M"])
            .timeout(Duration::from_secs(120)),
        1,
    );
    assert!(
        line.contains("memory limit") && line.contains("--memory-limit"),
        "{line}"
    );
    // A batch whose attention alone needs terabytes.
    let line = fails_one_line(
        kiln()
            .args(["forward", "--backend", "ndarray", "--seq", "1000000"])
            .timeout(Duration::from_secs(120)),
        1,
    );
    assert!(
        line.contains("1000000 tokens") && line.contains("memory limit"),
        "{line}"
    );
    // A BERT config asking for a million layers next to MiniLM's weights.
    let config = std::fs::read_to_string(minilm_dir().join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["num_hidden_layers"] = 1_000_000.into();
    let model = minilm_with(tmp.path(), &[("config.json", &config.to_string())]);
    let line = fails_one_line(
        kiln()
            .args(["embed", "--backend", "ndarray", "--model"])
            .arg(&model)
            .arg("hello")
            .timeout(Duration::from_secs(120)),
        1,
    );
    assert!(line.contains("different models"), "{line}");
    // Count and width flags have a range.
    let line = fails_one_line(
        kiln()
            .args([
                "train-classifier",
                "--hidden",
                "1000000000",
                "--labeled",
                "x",
            ])
            .args(["--model", "m", "--out", "o"]),
        2,
    );
    assert!(
        line.contains("--hidden") && line.contains("at most 65536"),
        "{line}"
    );
}

// Class 2: counts are bounded at parse time; augment streams and ends on a closed pipe.
#[test]
fn count_flags_are_bounded_and_augment_stops_when_its_reader_goes() {
    for (args, flag) in [
        (
            vec!["augment", "--method", "swap", "--n", "1000000000"],
            "--n",
        ),
        (vec!["augment", "--method", "swap", "--n", "0"], "--n"),
        (
            vec!["explain", "--model", "m", "--steps", "5000", "text"],
            "--steps",
        ),
        (
            vec![
                "train-classifier",
                "--views",
                "1000000000",
                "--labeled",
                "x",
                "--model",
                "m",
                "--out",
                "o",
            ],
            "--views",
        ),
        (vec!["forward", "--repeat", "1000000000"], "--repeat"),
    ] {
        let line = fails_one_line(kiln().args(&args), 2);
        assert!(
            line.contains(flag) && line.contains("at "),
            "{args:?}: {line}"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("lines.txt");
    std::fs::write(
        &input,
        "the quick brown fox jumps over the lazy dog\n".repeat(50_000),
    )
    .unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .args(["augment", "--method", "swap", "--n", "20", "--input"])
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    assert!(
        first.starts_with(b"the") || first.contains(&b' '),
        "streamed lines come out first"
    );
    drop(stdout); // `| head -c 100`
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "augment kept running after its reader went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "a closed pipe is a normal end: {status:?} {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The same for a command that prints its result at the end (`kiln embed ... | head -c 1`).
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .args(["embed", "--backend", "ndarray", "--model"])
        .arg(minilm_dir())
        .args(["one", "two"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?} {stderr}", output.status);
    assert!(!stderr.contains("internal error"), "{stderr}");
}

/// The post_relu fixture's weights with one NaN in `layers.0.linear1.weight`.
fn nan_weights(dir: &Path) -> PathBuf {
    let mut file = kiln::TensorFile::read(fixture("post_relu").join("model.safetensors")).unwrap();
    file.tensors
        .get_mut("layers.0.linear1.weight")
        .unwrap()
        .data[0] = f32::NAN;
    let path = dir.join("nan.safetensors");
    file.write(&path).unwrap();
    path
}

// Class 3 (and 4): non-finite weights are refused with the tensor's name; allowed, they
// propagate as in PyTorch (ReLU(NaN) = NaN, so every output is NaN, never finite but wrong).
#[test]
fn non_finite_weights_are_refused_and_propagate_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = nan_weights(tmp.path());
    let config = fixture("post_relu").join("config.json");
    let line = fails_one_line(
        kiln()
            .args(["forward", "--backend", "ndarray", "--config"])
            .arg(&config)
            .arg("--weights")
            .arg(&weights),
        1,
    );
    assert!(
        line.contains("layers.0.linear1.weight") && line.contains("non-finite"),
        "{line}"
    );
    // quantize used to panic on these weights and leave a partial directory.
    let out = tmp.path().join("q");
    let line = fails_one_line(
        kiln()
            .args(["quantize", "--backend", "ndarray", "--config"])
            .arg(&config)
            .arg("--weights")
            .arg(&weights)
            .arg("--out")
            .arg(&out),
        1,
    );
    assert!(line.contains("layers.0.linear1.weight"), "{line}");
    assert!(!out.exists());
    assert_eq!(
        entries(tmp.path()),
        ["nan.safetensors"],
        "no partial output"
    );
    // Allowed at load, they still have no int8 value: an error, not a panic.
    let line = fails_one_line(
        kiln()
            .args([
                "quantize",
                "--allow-nonfinite",
                "--backend",
                "ndarray",
                "--config",
            ])
            .arg(&config)
            .arg("--weights")
            .arg(&weights)
            .arg("--out")
            .arg(&out),
        1,
    );
    assert!(line.contains("needs finite weights"), "{line}");
    assert_eq!(
        entries(tmp.path()),
        ["nan.safetensors"],
        "no partial output"
    );

    for backend in ["ndarray", "flex", "wgpu"] {
        let y = tmp.path().join(format!("y-{backend}.npy"));
        let output = kiln()
            .args([
                "forward",
                "--json",
                "--allow-nonfinite",
                "--backend",
                backend,
            ])
            .args(["--batch", "2", "--seq", "3", "--config"])
            .arg(&config)
            .arg("--weights")
            .arg(&weights)
            .arg("--output")
            .arg(&y)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            report["output_stats"]["finite"], false,
            "{backend}: {report}"
        );
        let values: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(&y).unwrap())
            .unwrap()
            .into_vec()
            .unwrap();
        assert!(
            values.iter().all(|v| v.is_nan()),
            "{backend}: PyTorch gives NaN everywhere"
        );
    }
}

// Class 5 and 6: output directories appear whole or not at all; a non-empty --out is refused
// (replaced whole with --force); SIGTERM removes what is half-written.
#[test]
fn output_directories_are_atomic_and_a_signal_leaves_no_debris() {
    let tmp = tempfile::tempdir().unwrap();
    let case = fixture("post_relu");
    let command = |sub: &str, out: &Path| {
        let mut cmd = kiln();
        cmd.args([sub, "--backend", "ndarray", "--config"])
            .arg(case.join("config.json"))
            .arg("--weights")
            .arg(case.join("model.safetensors"))
            .arg("--out")
            .arg(out);
        cmd
    };
    // A usage error found after the output was staged: nothing left.
    std::fs::write(tmp.path().join("empty.txt"), "").unwrap();
    let q = tmp.path().join("q");
    fails_one_line(
        kiln()
            .args(["quantize", "--backend", "ndarray", "--model"])
            .arg(minilm_dir())
            .arg("--heldout")
            .arg(tmp.path().join("empty.txt"))
            .arg("--out")
            .arg(&q),
        2,
    );
    assert!(!q.exists());
    assert_eq!(entries(tmp.path()), ["empty.txt"]);

    // An existing, non-empty --out: refused, untouched; --force replaces it whole.
    let stale = tmp.path().join("pruned");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("stale.txt"), "old").unwrap();
    let line = fails_one_line(
        command("prune", &stale).args(["--rate", "0.5", "--method", "magnitude"]),
        2,
    );
    assert!(
        line.contains("not empty") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(entries(&stale), ["stale.txt"]);
    let out = command("prune", &stale)
        .args(["--rate", "0.5", "--method", "magnitude", "--force"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        entries(&stale),
        ["config.json", "kiln_compression.json", "model.safetensors"]
    );
    // --force never deletes an input that lives in --out.
    std::fs::write(stale.join("data.txt"), "a line\n").unwrap();
    let line = fails_one_line(
        command("prune", &stale)
            .args([
                "--rate",
                "0.5",
                "--method",
                "magnitude",
                "--force",
                "--data",
            ])
            .arg(stale.join("data.txt")),
        2,
    );
    assert!(line.contains("holds the input"), "{line}");
    assert!(stale.join("data.txt").exists());

    // SIGTERM while quantize works on a text model: no --out, no temporary left.
    let work = tmp.path().join("sig");
    std::fs::create_dir(&work).unwrap();
    let target = work.join("q");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .args(["quantize", "--backend", "ndarray", "--model"])
        .arg(minilm_dir())
        .arg("--out")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !entries(&work).iter().any(|e| e.starts_with(".q.")) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no staging directory appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "SIGTERM ends with the shell's code"
    );
    assert!(entries(&work).is_empty(), "debris: {:?}", entries(&work));
}

// Class 7: cheap checks come before the expensive work.
#[test]
fn bad_outputs_and_numbers_fail_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing/e.npy");
    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(minilm_dir())
            .arg("--output")
            .arg(&missing)
            .arg("hello"),
        2,
    );
    assert!(line.contains("does not exist"), "{line}");
    for (args, flag) in [
        (vec!["--learning-rate", "NaN"], "--learning-rate"),
        (vec!["--dropout", "2"], "--dropout"),
    ] {
        let line = fails_one_line(
            kiln()
                .args([
                    "train-classifier",
                    "--labeled",
                    "x",
                    "--model",
                    "m",
                    "--out",
                    "o",
                ])
                .args(&args),
            2,
        );
        assert!(line.contains(flag), "{line}");
    }
    let line = fails_one_line(
        kiln().args([
            "prune", "--lr", "NaN", "--rate", "0.1", "--model", "m", "--out", "o",
        ]),
        2,
    );
    assert!(line.contains("--lr") && line.contains("finite"), "{line}");
    // clap's own errors are one line too.
    let line = fails_one_line(kiln().args(["forward", "--no-such-flag"]), 2);
    assert!(line.contains("--no-such-flag"), "{line}");
}

// Class 8: the smaller cases.
#[test]
fn negative_numbers_fifos_devices_and_escaping_module_paths_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let case = fixture("post_relu");
    let line = fails_one_line(
        kiln()
            .args(["prune", "--backend", "ndarray", "--method", "magnitude"])
            .args(["--rate", "-1", "--config"])
            .arg(case.join("config.json"))
            .arg("--weights")
            .arg(case.join("model.safetensors"))
            .arg("--out")
            .arg(tmp.path().join("p")),
        2,
    );
    assert!(
        line.contains("--rate -1") && line.contains("[0, 1)"),
        "{line}"
    );

    // A FIFO would hang a read forever; /dev/zero would never end one.
    let fifo = tmp.path().join("weights.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (config, weights) in [
        (case.join("config.json"), fifo.clone()),
        (PathBuf::from("/dev/zero"), case.join("model.safetensors")),
    ] {
        let line = fails_one_line(
            kiln()
                .args(["forward", "--backend", "ndarray", "--config"])
                .arg(&config)
                .arg("--weights")
                .arg(&weights)
                .timeout(Duration::from_secs(60)),
            1,
        );
        assert!(line.contains("not a regular file"), "{line}");
    }
    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(minilm_dir())
            .arg("--input-file")
            .arg(&fifo)
            .timeout(Duration::from_secs(60)),
        2,
    );
    assert!(line.contains("not a regular file"), "{line}");

    // modules.json may not point outside the model directory.
    let escape = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "../../../../etc", "type": "sentence_transformers.models.Pooling"}]"#;
    let model = minilm_with(tmp.path(), &[("modules.json", escape)]);
    let line = fails_one_line(
        kiln()
            .args(["embed", "--backend", "ndarray", "--model"])
            .arg(&model)
            .arg("hello"),
        1,
    );
    assert!(line.contains("leaves the model directory"), "{line}");
    // A symlink loop is not "missing".
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    std::os::unix::fs::symlink("tokenizer.json", model.join("tokenizer.json")).unwrap();
    std::fs::remove_file(model.join("modules.json")).unwrap();
    let line = fails_one_line(
        kiln()
            .args(["embed", "--backend", "ndarray", "--model"])
            .arg(&model)
            .arg("hello"),
        1,
    );
    assert!(
        line.contains("cannot be read") && !line.contains("missing"),
        "{line}"
    );

    // Invalid UTF-8 in labelled data names its line.
    let labeled = tmp.path().join("bad.tsv");
    std::fs::write(&labeled, b"a\tfine\nb\tnot \xff utf-8\n").unwrap();
    let line = fails_one_line(
        kiln()
            .args(["train-classifier", "--backend", "ndarray", "--model"])
            .arg(minilm_dir())
            .arg("--labeled")
            .arg(&labeled)
            .arg("--out")
            .arg(tmp.path().join("clf")),
        2,
    );
    assert!(line.contains("line 2") && line.contains("UTF-8"), "{line}");
}
