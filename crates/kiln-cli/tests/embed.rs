//! End-to-end tests of `kiln embed` and `kiln similarity` on all-MiniLM-L6-v2 (fetched by
//! scripts/fetch_minilm.sh on first use), against sentence-transformers' committed output.

use std::path::Path;

use crate::common::{fails_one_line, kiln, succeeds};
use kiln_tests::minilm::{compare_rows, minilm_dir, minilm_embeddings, minilm_reference};

fn read_rows(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    assert_eq!(shape.len(), 2, "[N, dim]");
    let data: Vec<f32> = npy.into_vec().unwrap();
    data.chunks(shape[1]).map(<[f32]>::to_vec).collect()
}

/// The fixture's sentences as a text file in `dir`, one per line.
fn sentences_file(dir: &Path) -> std::path::PathBuf {
    let reference = minilm_reference();
    let input = dir.join("lines.txt");
    // sentences.json has no newlines inside texts; a final newline ends the last line.
    assert!(reference.sentences.iter().all(|s| !s.contains('\n')));
    std::fs::write(&input, reference.sentences.join("\n") + "\n").unwrap();
    input
}

#[test]
fn embed_file_matches_sentence_transformers_in_input_order() {
    let reference = minilm_reference();
    let dir = tempfile::tempdir().unwrap();
    let input = sentences_file(dir.path());
    let output = dir.path().join("emb.npy");
    let out = succeeds(
        kiln()
            .args([
                "embed",
                "--backend",
                "ndarray",
                "--batch-size",
                "7",
                "--json",
                "--model",
            ])
            .arg(minilm_dir())
            .arg("--input-file")
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["shape"],
        serde_json::json!([reference.sentences.len(), 384])
    );
    assert_eq!(summary["pooling"], serde_json::json!(["mean"]));
    let rows = read_rows(&output);
    let (cos, abs) = compare_rows(&rows, &minilm_embeddings("embeddings.npy"));
    assert!(cos >= 0.9999 && abs <= 1e-4, "cos {cos}, abs {abs}");
    // The padded batches (--no-pack-padding) give the same embeddings as the packed default.
    let padded = dir.path().join("padded.npy");
    succeeds(
        kiln()
            .args(["embed", "--backend", "ndarray", "--batch-size", "7"])
            .arg("--no-pack-padding")
            .arg("--model")
            .arg(minilm_dir())
            .arg("--input-file")
            .arg(&input)
            .arg("--output")
            .arg(&padded),
    );
    let (cos, abs) = compare_rows(&rows, &read_rows(&padded));
    assert!(cos > 0.99999 && abs < 1e-5, "cos {cos}, abs {abs}");
    // One forward pass per batch (--batch-split off) and three slices per batch give the
    // embeddings of the default split.
    for split in ["off", "3"] {
        let path = dir.path().join(format!("split_{split}.npy"));
        succeeds(
            kiln()
                .args(["embed", "--backend", "ndarray", "--batch-size", "7"])
                .args(["--batch-split", split])
                .arg("--model")
                .arg(minilm_dir())
                .arg("--input-file")
                .arg(&input)
                .arg("--output")
                .arg(&path),
        );
        let (cos, abs) = compare_rows(&rows, &read_rows(&path));
        assert!(
            cos > 0.99999 && abs < 1e-5,
            "--batch-split {split}: cos {cos}, abs {abs}"
        );
    }
}

#[test]
fn embed_arguments_print_json_and_honour_options() {
    let out = succeeds(
        kiln()
            .args([
                "embed",
                "--backend",
                "ndarray",
                "--pooling",
                "cls",
                "--no-normalize",
                "--model",
            ])
            .arg(minilm_dir())
            .args(["A man is eating food.", "x"]),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_value(json["embeddings"].clone()).unwrap();
    let reference = minilm_reference();
    let expected = minilm_embeddings("embeddings_cls.npy");
    let index = |text: &str| reference.sentences.iter().position(|s| s == text).unwrap();
    let expected = vec![
        expected[index("A man is eating food.")].clone(),
        expected[index("x")].clone(),
    ];
    let (cos, abs) = compare_rows(&rows, &expected);
    assert!(cos >= 0.9999 && abs <= 1e-4, "cos {cos}, abs {abs}");
}

#[test]
fn embed_in_int8_stays_close_to_sentence_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let input = sentences_file(dir.path());
    let output = dir.path().join("int8.npy");
    // The default backend (flex without a GPU): the integer kernels.
    let out = succeeds(
        kiln()
            .args(["embed", "--precision", "int8", "--json", "--model"])
            .arg(minilm_dir())
            .arg("--input-file")
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["precision"], "int8");
    let (cos, _) = compare_rows(&read_rows(&output), &minilm_embeddings("embeddings.npy"));
    assert!((0.99..0.999_999).contains(&cos), "int8 cosine {cos}");
    // explain follows gradients in f32: int8 is refused as a usage error.
    let line = fails_one_line(
        kiln()
            .args([
                "explain",
                "--method",
                "rollout",
                "--precision",
                "int8",
                "--model",
            ])
            .arg(minilm_dir())
            .arg("a text"),
        2,
    );
    assert!(line.contains("--precision int8"), "{line}");
}

/// `--precision bf16`: on a CPU with AVX-512 BF16 the `vdpbf16ps` kernel, cosine >= 0.999 to
/// sentence-transformers; without it (here forced with `KILN_DISABLE_CPU_FEATURES`, and on any
/// CPU that lacks it) one line naming the missing feature, exit 1.
#[test]
fn embed_in_bf16_stays_close_or_names_the_missing_cpu_feature() {
    let dir = tempfile::tempdir().unwrap();
    let input = sentences_file(dir.path());
    let output = dir.path().join("bf16.npy");
    let embed = || {
        let mut cmd = kiln();
        cmd.args([
            "embed",
            "--backend",
            "flex",
            "--precision",
            "bf16",
            "--json",
        ])
        .arg("--model")
        .arg(minilm_dir())
        .arg("--input-file")
        .arg(&input)
        .arg("--output")
        .arg(&output);
        cmd
    };
    if kiln::kernels::cpu_features().avx512_bf16 {
        let out = succeeds(&mut embed());
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["precision"], "bf16");
        let (cos, _) = compare_rows(&read_rows(&output), &minilm_embeddings("embeddings.npy"));
        assert!((0.999..0.999_999_9).contains(&cos), "bf16 cosine {cos}");
        std::fs::remove_file(&output).unwrap();
    }
    let line = fails_one_line(embed().env("KILN_DISABLE_CPU_FEATURES", "avx512_bf16"), 1);
    assert!(line.contains("avx512_bf16"), "{line}");
    assert!(!output.exists(), "no output after the error");
}

#[test]
fn similarity_prints_the_cosine() {
    let out = succeeds(
        kiln()
            .args(["similarity", "--backend", "ndarray", "--model"])
            .arg(minilm_dir())
            .args(["A man is eating food.", "A man is eating a piece of bread."]),
    );
    let cosine: f32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let e = minilm_embeddings("embeddings.npy");
    let expected = kiln_text::cosine(&e[0], &e[1]);
    assert!((cosine - expected).abs() < 1e-4, "{cosine} vs {expected}");
}

#[test]
fn bad_text_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = minilm_dir();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--input-file")
            .arg(&empty),
        2,
    );
    assert!(line.contains("is empty"), "{line}");

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"fine\nalso fine\n\xff\xfe broken\n").unwrap();
    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--input-file")
            .arg(&bad),
        2,
    );
    assert!(line.contains("line 3: invalid UTF-8"), "{line}");

    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(dir.path().join("nope"))
            .arg("hi"),
        2,
    );
    assert!(line.contains("not a directory"), "{line}");

    // A directory without tokenizer.json: the missing file is named.
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(model.join("config.json"), partial.join("config.json")).unwrap();
    std::os::unix::fs::symlink(
        model.join("model.safetensors"),
        partial.join("model.safetensors"),
    )
    .unwrap();
    let line = fails_one_line(
        kiln()
            .args(["embed", "--backend", "ndarray", "--model"])
            .arg(&partial)
            .arg("hi"),
        1,
    );
    assert!(line.contains("missing `tokenizer.json`"), "{line}");

    let lines = dir.path().join("lines.txt");
    std::fs::write(&lines, "one\ntwo\n").unwrap();
    let line = fails_one_line(
        kiln()
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--input-file")
            .arg(&lines)
            .arg("--output")
            .arg(&lines),
        2,
    );
    assert!(line.contains("never overwrites its inputs"), "{line}");
    assert_eq!(std::fs::read_to_string(&lines).unwrap(), "one\ntwo\n");

    let line = fails_one_line(
        kiln()
            .args([
                "embed",
                "--max-seq-length",
                "9999",
                "--backend",
                "ndarray",
                "--model",
            ])
            .arg(&model)
            .arg("hi"),
        2,
    );
    assert!(line.contains("max_position_embeddings"), "{line}");
}
