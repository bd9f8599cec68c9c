//! all-MiniLM-L6-v2 end to end against sentence-transformers (`scripts/gen_text_fixtures.py`):
//! token ids equal to Python's, embeddings with cosine >= 0.9999 and max-abs <= 1e-4 on ndarray
//! for the shipped model (mean pooling + Normalize), CLS and max pooling, and max_seq_length 128.

use kiln::backend::{cpu_device, Cpu};
use kiln_tests::minilm::{compare_rows, minilm_dir, minilm_embeddings, minilm_reference};
use kiln_text::{Pooling, TextEncoder};

fn encoder() -> TextEncoder<Cpu> {
    TextEncoder::<Cpu>::from_dir(minilm_dir(), &cpu_device()).expect("loading all-MiniLM-L6-v2")
}

fn assert_close(got: &[Vec<f32>], fixture: &str) {
    let (cos, abs) = compare_rows(got, &minilm_embeddings(fixture));
    eprintln!("{fixture}: worst cosine {cos:.7}, worst max-abs {abs:.2e}");
    assert!(cos >= 0.9999, "{fixture}: cosine {cos} < 0.9999");
    assert!(abs <= 1e-4, "{fixture}: max-abs {abs} > 1e-4");
}

#[test]
fn token_ids_equal_the_python_tokenizer() {
    let reference = minilm_reference();
    let encoder = encoder();
    assert_eq!(
        encoder.max_seq_length(),
        256,
        "sentence_bert_config.json's max_seq_length"
    );
    let tokenized = encoder.tokenize(&reference.sentences).unwrap();
    for (i, text) in tokenized.iter().enumerate() {
        assert_eq!(
            text.ids, reference.input_ids[i],
            "ids of sentence {i}: {:?}",
            reference.sentences[i]
        );
        assert_eq!(text.tokens, reference.tokens[i], "tokens of sentence {i}");
    }
    let longest = tokenized.iter().map(|t| t.len()).max().unwrap();
    assert_eq!(
        longest, 256,
        "the long text is truncated to 256, not tokenizer.json's 128"
    );
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = minilm_reference();
    let encoder = encoder().with_batch_size(5);
    let got = encoder.embed(&reference.sentences).unwrap();
    assert_eq!(got.len(), reference.sentences.len());
    assert_eq!(got[0].len(), 384);
    assert_close(&got, "embeddings.npy");
    for row in &got {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "Normalize from modules.json: norm {norm}"
        );
    }
}

#[test]
fn batch_size_and_order_do_not_change_results() {
    let reference = minilm_reference();
    let one_batch = encoder()
        .with_batch_size(64)
        .embed(&reference.sentences)
        .unwrap();
    let mut reversed = reference.sentences.clone();
    reversed.reverse();
    let mut singles = encoder().with_batch_size(1).embed(&reversed).unwrap();
    singles.reverse();
    let (cos, abs) = compare_rows(&one_batch, &singles);
    assert!(cos > 0.99999 && abs < 1e-5, "cos {cos}, abs {abs}");
}

#[test]
fn skipping_the_padding_changes_no_sentence_vector() {
    // One batch of texts from 3 to 256 tokens: packed (the default) and padded agree.
    let reference = minilm_reference();
    let encoder = encoder().with_batch_size(64);
    assert!(encoder.execution().pack_padding, "on by default");
    let packed = encoder.embed(&reference.sentences).unwrap();
    let padded = encoder
        .with_pack_padding(false)
        .embed(&reference.sentences)
        .unwrap();
    let (cos, abs) = compare_rows(&packed, &padded);
    assert!(cos > 0.99999 && abs < 1e-5, "cos {cos}, abs {abs}");
}

#[test]
fn other_poolings_match_sentence_transformers() {
    let reference = minilm_reference();
    for (pooling, fixture) in [
        (Pooling::Cls, "embeddings_cls.npy"),
        (Pooling::Max, "embeddings_max.npy"),
    ] {
        let encoder = encoder().with_pooling(pooling).with_normalize(false);
        assert_close(&encoder.embed(&reference.sentences).unwrap(), fixture);
    }
}

#[test]
fn max_seq_length_override_matches_sentence_transformers() {
    let reference = minilm_reference();
    let mut encoder = encoder();
    encoder.set_max_seq_length(128).unwrap();
    assert_close(
        &encoder.embed(&reference.sentences).unwrap(),
        "embeddings_len128.npy",
    );
    let err = encoder.set_max_seq_length(1000).unwrap_err().to_string();
    assert!(err.contains("max_position_embeddings (512)"), "{err}");
}

#[test]
fn similar_sentences_score_higher() {
    let encoder = encoder();
    let close = encoder
        .similarity("A man is eating food.", "A man is eating a piece of bread.")
        .unwrap();
    let far = encoder
        .similarity("A man is eating food.", "A monkey is playing drums.")
        .unwrap();
    assert!(close > far + 0.3, "close {close}, far {far}");
}

/// A copy of the model directory (weights and tokenizer linked, not copied) with `edit` applied
/// to its config.json.
fn edited_model(mut edit: impl FnMut(&mut serde_json::Value)) -> tempfile::TempDir {
    let src = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let target = dir.path().join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap();
                std::fs::copy(inner.path(), target.join(inner.file_name())).unwrap();
            }
        } else if entry.file_name() == "config.json" {
            let mut config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
            edit(&mut config);
            std::fs::write(&target, config.to_string()).unwrap();
        } else {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        }
    }
    dir
}

fn load_error(dir: &std::path::Path) -> String {
    TextEncoder::<Cpu>::from_dir(dir, &cpu_device())
        .map(|_| ())
        .expect_err("loading should fail")
        .to_string()
}

#[test]
fn a_missing_file_is_named() {
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        let dir = edited_model(|_| {});
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = load_error(dir.path());
        assert!(err.contains(&format!("missing `{file}`")), "{file}: {err}");
    }
}

#[test]
fn an_unsupported_architecture_is_named() {
    let dir = edited_model(|c| c["model_type"] = "roberta".into());
    let err = load_error(dir.path());
    assert!(err.contains("unsupported model_type `roberta`"), "{err}");
}

#[test]
fn a_config_that_does_not_match_the_weights_names_the_key() {
    let dir = edited_model(|c| c["intermediate_size"] = 1000.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("encoder.layer.0.intermediate.dense.weight") && err.contains("[1536, 384]"),
        "{err}"
    );
    let dir = edited_model(|c| c["num_hidden_layers"] = 5.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("unexpected weight") && err.contains("encoder.layer.5."),
        "{err}"
    );
    let dir = edited_model(|c| c["num_hidden_layers"] = 7.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("missing weight `encoder.layer.6.attention.self.query.weight`"),
        "{err}"
    );
}

/// int8 Linear layers (integer kernels on flex): every sentence vector keeps cosine >= 0.99 to
/// sentence-transformers' f32 one (the stated int8 tolerance of text models).
#[cfg(feature = "flex")]
#[test]
fn int8_embeddings_stay_close_to_sentence_transformers() {
    use kiln::backend::{flex_device, Flex};
    let reference = minilm_reference();
    let encoder = TextEncoder::<Flex>::from_dir(minilm_dir(), &flex_device())
        .unwrap()
        .with_precision(kiln::Precision::Int8);
    assert_eq!(encoder.precision(), kiln::Precision::Int8);
    let got = encoder.embed(&reference.sentences).unwrap();
    let (cos, abs) = compare_rows(&got, &minilm_embeddings("embeddings.npy"));
    eprintln!("int8: worst cosine {cos:.5}, worst max-abs {abs:.2e}");
    assert!(cos >= 0.99, "int8 cosine {cos} < 0.99");
    assert!(
        cos < 0.999_999,
        "int8 quantizes: the vectors cannot be f32's exactly"
    );
}

/// bf16 Linear layers: every sentence vector keeps cosine >= 0.999 to sentence-transformers' f32
/// one (the stated bf16 tolerance of text models), on whichever bf16 kernel this CPU runs.
#[cfg(feature = "flex")]
#[test]
fn bf16_embeddings_stay_close_to_sentence_transformers() {
    use kiln::backend::{flex_device, Flex};
    let reference = minilm_reference();
    let encoder = TextEncoder::<Flex>::from_dir(minilm_dir(), &flex_device())
        .unwrap()
        .with_precision(kiln::Precision::Bf16);
    assert_eq!(encoder.precision(), kiln::Precision::Bf16);
    let got = encoder.embed(&reference.sentences).unwrap();
    let (cos, abs) = compare_rows(&got, &minilm_embeddings("embeddings.npy"));
    eprintln!("bf16: worst cosine {cos:.6}, worst max-abs {abs:.2e}");
    assert!(cos >= 0.999, "bf16 cosine {cos} < 0.999");
    assert!(
        cos < 0.999_999_9,
        "bf16 rounds: the vectors cannot be f32's exactly"
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn embeddings_match_sentence_transformers_on_wgpu() {
    use kiln::backend::{gpu_device, Gpu};
    let reference = minilm_reference();
    let encoder = TextEncoder::<Gpu>::from_dir(minilm_dir(), &gpu_device()).unwrap();
    let got = encoder.embed(&reference.sentences).unwrap();
    let (cos, abs) = compare_rows(&got, &minilm_embeddings("embeddings.npy"));
    eprintln!("wgpu: worst cosine {cos:.7}, worst max-abs {abs:.2e}");
    assert!(cos >= 0.999, "cosine {cos} < 0.999 on wgpu");
}
