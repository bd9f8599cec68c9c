//! all-MiniLM-L6-v2 for the text-model tests: fetched on first use by `scripts/fetch_minilm.sh`
//! (idempotent, locked), and the sentence-transformers reference in `tests/fixtures/minilm/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The model directory, fetching it if needed. `KILN_MINILM_DIR` points at another copy.
/// Panics (the test fails, it never skips) when the model cannot be had.
pub fn minilm_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KILN_MINILM_DIR") {
            return PathBuf::from(dir);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/fetch_minilm.sh"))
            .current_dir(root)
            .output()
            .expect("running scripts/fetch_minilm.sh");
        assert!(
            out.status.success(),
            "scripts/fetch_minilm.sh failed (all-MiniLM-L6-v2 is needed by this test): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.join(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// The reference: texts, Python token ids and tokens.
pub struct MiniLmReference {
    /// The texts.
    pub sentences: Vec<String>,
    /// Token ids from the Python tokenizer (max_seq_length 256).
    pub input_ids: Vec<Vec<u32>>,
    /// Tokens from the Python tokenizer.
    pub tokens: Vec<Vec<String>>,
}

/// `tests/fixtures/minilm/sentences.json`.
pub fn minilm_reference() -> MiniLmReference {
    let path = crate::fixtures_dir().join("minilm/sentences.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    MiniLmReference {
        sentences: strings(&json["sentences"]),
        input_ids: json["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect(),
        tokens: json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect(),
    }
}

/// A committed `[N, D]` f32 `.npy` of `tests/fixtures/minilm/`, as rows.
pub fn minilm_embeddings(name: &str) -> Vec<Vec<f32>> {
    let path = crate::fixtures_dir().join("minilm").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = npy.into_vec().unwrap();
    data.chunks(shape[1]).map(<[f32]>::to_vec).collect()
}

/// Worst cosine and worst max-abs difference between two sets of rows.
pub fn compare_rows(got: &[Vec<f32>], expected: &[Vec<f32>]) -> (f32, f32) {
    assert_eq!(got.len(), expected.len(), "row count");
    let mut worst_cos = 1.0f32;
    let mut worst_abs = 0.0f32;
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.len(), e.len(), "row length");
        worst_cos = worst_cos.min(kiln_text::cosine(g, e));
        for (a, b) in g.iter().zip(e) {
            worst_abs = worst_abs.max((a - b).abs());
        }
    }
    (worst_cos, worst_abs)
}
