//! End-to-end tests of the `kiln` binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kiln::{HostTensor, TensorFile};
use npyz::WriterBuilder;

use crate::common::{fails, kiln, succeeds};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/encoder")
        .join(case)
}

fn write_npy_f32(path: &Path, t: &HostTensor) {
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(t.data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn write_npy_bool(path: &Path, t: &HostTensor) {
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::<bool>::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(t.data.iter().map(|&v| v > 0.5)).unwrap();
    w.finish().unwrap();
}

fn read_npy(path: &Path) -> HostTensor {
    let bytes = std::fs::read(path).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().iter().map(|&d| d as usize).collect();
    HostTensor::new(shape, f.into_vec::<f32>().unwrap())
}

/// A case's model and tensors, with src.npy written into a temp dir.
struct Setup {
    dir: tempfile::TempDir,
    case: PathBuf,
    tensors: TensorFile,
}

impl Setup {
    fn new(case: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let case = fixture(case);
        let tensors = TensorFile::read(case.join("case.safetensors")).unwrap();
        write_npy_f32(&dir.path().join("src.npy"), &tensors.tensors["src"]);
        Self { dir, case, tensors }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn forward(&self) -> Command {
        let mut cmd = kiln();
        cmd.arg("forward")
            .arg("--backend")
            .arg("ndarray")
            .arg("--config")
            .arg(self.case.join("config.json"))
            .arg("--weights")
            .arg(self.case.join("model.safetensors"));
        cmd
    }
}

#[test]
fn forward_default_model_prints_json() {
    let out = succeeds(kiln().args([
        "forward",
        "--backend",
        "ndarray",
        "--batch",
        "2",
        "--seq",
        "16",
        "--repeat",
        "3",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "ndarray");
    assert_eq!(v["output_shape"], serde_json::json!([2, 16, 256]));
    assert_eq!(v["repeat"], 3);
    assert!(v["median_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["tokens_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(v["num_params"], 3_159_040);
    assert_eq!(v["output_stats"]["finite"], true);
    // Post-norm output: LayerNorm'd rows, so mean ~0 and std ~1.
    assert!(v["output_stats"]["mean"].as_f64().unwrap().abs() < 0.05);
}

#[test]
fn forward_default_model_human_summary_and_auto_backend() {
    let out = succeeds(kiln().args(["forward", "--batch", "1", "--seq", "8"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tokens/s"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--backend auto picked"),
        "auto says what it picked: {stderr}"
    );
    // With no GPU adapter (CI has only lavapipe) auto runs kiln's fastest CPU backend.
    if !kiln::backend::wgpu_adapters()
        .iter()
        .any(|a| a.kind.is_gpu())
    {
        assert!(
            stderr.contains("--backend auto picked flex"),
            "auto picks flex without a GPU: {stderr}"
        );
    }
}

#[test]
fn forward_reproduces_pytorch_on_a_fixture_model() {
    let s = Setup::new("key_padding");
    write_npy_bool(&s.path("pad.npy"), &s.tensors.tensors["key_padding_mask"]);
    s.forward()
        .arg("--input")
        .arg(s.path("src.npy"))
        .arg("--key-padding-mask")
        .arg(s.path("pad.npy"))
        .arg("--output")
        .arg(s.path("y.npy"))
        .arg("--attention-out")
        .arg(s.path("attn.npy"))
        .assert()
        .success();
    let y = read_npy(&s.path("y.npy"));
    let expected = &s.tensors.tensors["expected"];
    let valid = &s.tensors.tensors["valid"];
    assert_eq!(y.shape, expected.shape);
    // [S, B, E]; compare non-padded positions.
    let (seq, batch, e) = (y.shape[0], y.shape[1], y.shape[2]);
    let mut worst = 0.0f32;
    for i in 0..seq {
        for b in 0..batch {
            if valid.data[b * seq + i] > 0.5 {
                for k in 0..e {
                    let idx = (i * batch + b) * e + k;
                    worst = worst.max((y.data[idx] - expected.data[idx]).abs());
                }
            }
        }
    }
    assert!(worst <= 1e-5, "max-abs {worst}");
    let attn = read_npy(&s.path("attn.npy"));
    assert_eq!(attn.shape, vec![2, 3, 4, 7, 7], "[L, B, H, S, S]");
    let attn0 = &s.tensors.tensors["attn.0"];
    let n = attn0.data.len();
    let err = attn.data[..n]
        .iter()
        .zip(&attn0.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-5, "attention max-abs {err}");
}

#[test]
fn forward_batch_split_gives_the_same_output_and_rejects_zero_slices() {
    let s = Setup::new("key_padding");
    write_npy_bool(&s.path("pad.npy"), &s.tensors.tensors["key_padding_mask"]);
    let run = |split: &str| {
        let out = s.path(&format!("y_{split}.npy"));
        s.forward()
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--key-padding-mask")
            .arg(s.path("pad.npy"))
            .args(["--batch-split", split, "--output"])
            .arg(&out)
            .assert()
            .success();
        read_npy(&out)
    };
    let whole = run("off");
    for split in ["auto", "2"] {
        let y = run(split);
        assert_eq!(y.shape, whole.shape);
        let diff = y
            .data
            .iter()
            .zip(&whole.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-5, "--batch-split {split}: max-abs {diff}");
    }
    let err = fails(s.forward().args(["--batch-split", "0"]), 2);
    assert!(err.contains("batch split must be"), "{err}");
}

#[test]
fn forward_on_wgpu_matches_the_fixture() {
    let s = Setup::new("causal");
    let out = succeeds(
        kiln()
            .arg("forward")
            .args(["--backend", "wgpu", "--causal", "--json"])
            .arg("--config")
            .arg(s.case.join("config.json"))
            .arg("--weights")
            .arg(s.case.join("model.safetensors"))
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--output")
            .arg(s.path("y.npy")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "wgpu");
    let y = read_npy(&s.path("y.npy"));
    let expected = &s.tensors.tensors["expected"];
    let err = y
        .data
        .iter()
        .zip(&expected.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-4, "max-abs {err}");
}

#[test]
fn float16_input_is_accepted() {
    let s = Setup::new("post_relu");
    let src = &s.tensors.tensors["src"];
    let shape: Vec<u64> = src.shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::<half::f16>::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::fs::File::create(s.path("x16.npy")).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(src.data.iter().map(|&v| half::f16::from_f32(v)))
        .unwrap();
    w.finish().unwrap();
    s.forward()
        .arg("--input")
        .arg(s.path("x16.npy"))
        .assert()
        .success();
}

#[test]
fn info_and_init() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("deep_odd").join("config.json");
    let out = dir.path().join("init.safetensors");
    kiln()
        .arg("init")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--seed")
        .arg("3")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(
        &kiln()
            .arg("info")
            .arg("--config")
            .arg(&config)
            .arg("--weights")
            .arg(&out)
            .arg("--json")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["config"]["num_layers"], 4);
    assert_eq!(
        v["num_params"],
        4 * (3 * 24 * 24 + 3 * 24 + 24 * 24 + 24 + 24 * 40 + 40 + 40 * 24 + 24 + 4 * 24) + 2 * 24
    );
    assert!(v["weights_file_bytes"].as_u64().unwrap() > 0);
    assert!(v["flops_per_token"].as_f64().unwrap() > 0.0);
    // Every backend is listed, and what auto picks, with the reason.
    for backend in ["flex", "ndarray", "wgpu"] {
        assert!(v["backends"][backend]["available"].is_boolean(), "{v}");
    }
    // wgpu runs with burn's fusion and autotune (the issue of a silently lost feature flag).
    assert_eq!(
        v["backends"]["wgpu"]["optimizations"],
        serde_json::json!(["fusion", "autotune"]),
        "{v}"
    );
    let auto = v["auto"]["backend"].as_str().unwrap();
    assert!(auto == "flex" || auto == "wgpu", "{v}");
    assert!(!v["auto"]["reason"].as_str().unwrap().is_empty(), "{v}");
    // The same seed gives the same file.
    let again = dir.path().join("again.safetensors");
    kiln()
        .arg("init")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&again)
        .arg("--seed")
        .arg("3")
        .assert()
        .success();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let human = kiln().args(["info"]).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("parameters: 3159040"), "{human}");
    assert!(human.contains("auto picks: "), "{human}");
}

// ---- bad input: one line, the right exit code, no partial output ----

#[test]
fn missing_input_file() {
    let s = Setup::new("post_relu");
    let err = fails(s.forward().arg("--input").arg(s.path("nope.npy")), 1);
    assert!(err.contains("nope.npy"), "{err}");
}

#[test]
fn not_an_npy_and_truncated_npy() {
    let s = Setup::new("post_relu");
    std::fs::write(s.path("junk.npy"), b"this is not numpy").unwrap();
    let err = fails(s.forward().arg("--input").arg(s.path("junk.npy")), 1);
    assert!(err.contains("not a valid .npy"), "{err}");
    let good = std::fs::read(s.path("src.npy")).unwrap();
    std::fs::write(s.path("cut.npy"), &good[..good.len() - 40]).unwrap();
    let err = fails(
        s.forward()
            .arg("--input")
            .arg(s.path("cut.npy"))
            .arg("--output")
            .arg(s.path("y.npy")),
        1,
    );
    assert!(err.contains("truncated"), "{err}");
    assert!(!s.path("y.npy").exists(), "no partial output");
}

#[test]
fn input_width_differs_from_d_model() {
    let s = Setup::new("post_relu");
    write_npy_f32(
        &s.path("narrow.npy"),
        &HostTensor::new(vec![7, 3, 8], vec![0.0; 168]),
    );
    let err = fails(s.forward().arg("--input").arg(s.path("narrow.npy")), 1);
    assert!(
        err.contains("last dimension is 8") && err.contains("d_model is 16"),
        "{err}"
    );
}

#[test]
fn mask_shapes_are_checked() {
    let s = Setup::new("post_relu");
    write_npy_bool(
        &s.path("m.npy"),
        &HostTensor::new(vec![7, 6], vec![0.0; 42]),
    );
    let err = fails(
        s.forward()
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--mask")
            .arg(s.path("m.npy"))
            .arg("--output")
            .arg(s.path("y.npy")),
        1,
    );
    assert!(err.contains("src_mask has shape [7, 6]"), "{err}");
    assert!(!s.path("y.npy").exists(), "a failed run leaves no output");
    write_npy_bool(
        &s.path("p.npy"),
        &HostTensor::new(vec![7, 3], vec![0.0; 21]),
    );
    let err = fails(
        s.forward()
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--key-padding-mask")
            .arg(s.path("p.npy")),
        1,
    );
    assert!(
        err.contains("src_key_padding_mask has shape [7, 3]") && err.contains("[3, 7]"),
        "{err}"
    );
}

#[test]
fn nan_input_is_refused_unless_allowed() {
    let s = Setup::new("post_relu");
    let mut src = s.tensors.tensors["src"].clone();
    src.data[5] = f32::NAN;
    src.data[9] = f32::INFINITY;
    write_npy_f32(&s.path("nan.npy"), &src);
    let err = fails(s.forward().arg("--input").arg(s.path("nan.npy")), 1);
    assert!(err.contains("2 NaN/inf"), "{err}");
    s.forward()
        .arg("--input")
        .arg(s.path("nan.npy"))
        .arg("--allow-nonfinite")
        .assert()
        .success();
}

#[test]
fn weights_problems_name_the_key() {
    let s = Setup::new("post_relu");
    let mut file = TensorFile::read(s.case.join("model.safetensors")).unwrap();
    file.tensors.remove("layers.0.norm2.bias");
    file.write(s.path("missing.safetensors")).unwrap();
    let err = fails(
        kiln()
            .args(["forward", "--backend", "ndarray", "--config"])
            .arg(s.case.join("config.json"))
            .arg("--weights")
            .arg(s.path("missing.safetensors")),
        1,
    );
    assert!(err.contains("layers.0.norm2.bias"), "{err}");

    let mut file = TensorFile::read(s.case.join("model.safetensors")).unwrap();
    file.tensors.insert(
        "layers.1.linear1.weight".into(),
        HostTensor::new(vec![16, 16], vec![0.0; 256]),
    );
    file.write(s.path("shape.safetensors")).unwrap();
    let err = fails(
        kiln()
            .args(["forward", "--backend", "ndarray", "--config"])
            .arg(s.case.join("config.json"))
            .arg("--weights")
            .arg(s.path("shape.safetensors")),
        1,
    );
    assert!(
        err.contains("layers.1.linear1.weight")
            && err.contains("[16, 16]")
            && err.contains("[32, 16]"),
        "{err}"
    );

    std::fs::write(
        s.path("corrupt.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage",
    )
    .unwrap();
    let err = fails(
        kiln()
            .args(["forward", "--backend", "ndarray", "--config"])
            .arg(s.case.join("config.json"))
            .arg("--weights")
            .arg(s.path("corrupt.safetensors")),
        1,
    );
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn bad_config_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"d_model": 30, "nhead": 4, "num_layers": 2}"#).unwrap();
    let err = fails(
        kiln()
            .arg("init")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(dir.path().join("m.safetensors")),
        1,
    );
    assert!(
        err.contains("d_model (30) must be divisible by nhead (4)"),
        "{err}"
    );
    std::fs::write(&config, r#"{"d_model": 30,"#).unwrap();
    let err = fails(
        kiln()
            .arg("info")
            .arg("--config")
            .arg(&config)
            .arg("--weights")
            .arg(&config),
        1,
    );
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let err = fails(kiln().args(["forward", "--backend", "cuda"]), 2);
    assert!(err.contains("cuda"), "{err}");
}

#[test]
fn output_never_overwrites_an_input() {
    let s = Setup::new("post_relu");
    let before = std::fs::read(s.path("src.npy")).unwrap();
    let err = fails(
        s.forward()
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--output")
            .arg(s.path("src.npy")),
        2,
    );
    assert!(err.contains("same file as --input"), "{err}");
    assert_eq!(std::fs::read(s.path("src.npy")).unwrap(), before);
    let err = fails(
        s.forward()
            .arg("--input")
            .arg(s.path("src.npy"))
            .arg("--attention-out")
            .arg(s.case.join("model.safetensors")),
        2,
    );
    assert!(err.contains("same file as --weights"), "{err}");
}

#[test]
fn successful_output_is_written_atomically() {
    let s = Setup::new("post_relu");
    s.forward()
        .arg("--input")
        .arg(s.path("src.npy"))
        .arg("--output")
        .arg(s.path("y.npy"))
        .assert()
        .success();
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_eq!(read_npy(&s.path("y.npy")).shape, vec![7, 3, 16]);
}
