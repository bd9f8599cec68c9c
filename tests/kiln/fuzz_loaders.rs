//! A bounded fuzz run of every loader of files a user hands kiln (issue #23): safetensors,
//! the encoder's `config.json`, BERT's `config.json`, a pooling config and `tokenizer.json`.
//! Each starts from a valid file and mutates it, byte by byte (truncations, flipped and inserted
//! bytes, a rewritten header length) and value by value (a JSON leaf replaced by a hostile value:
//! negative, huge, wrong type). The property: the loader returns `Ok` or an error, never
//! panics, and returns promptly (no loader may allocate what a header claims before checking it
//! against the file). proptest runs `PROPTEST_CASES` cases per loader (default 256 here); CI
//! runs the default, a longer local run sets e.g. `PROPTEST_CASES=20000`.

use std::path::{Path, PathBuf};

use kiln::{TensorFile, TransformerEncoderConfig};
use kiln_text::{BertConfig, PoolingConfig, TextTokenizer};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are reported with the shrunk input; nothing is persisted in the repository.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A byte-level mutation of a seed file.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip {
        at: usize,
        value: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// safetensors: the first 8 bytes (the header's length) replaced.
    HeaderLength(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Flip { at, value }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 40), any::<u64>()]
            .prop_map(Mutation::HeaderLength),
    ]
}

fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for m in mutations {
        match m {
            Mutation::Truncate(len) => bytes.truncate(len % (bytes.len() + 1)),
            Mutation::Flip { at, value } if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = *value;
            }
            Mutation::Insert { at, bytes: extra } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, extra.iter().copied());
            }
            Mutation::HeaderLength(len) if bytes.len() >= 8 => {
                bytes[..8].copy_from_slice(&len.to_le_bytes())
            }
            _ => {}
        }
    }
    bytes
}

/// Values that break assumptions: wrong types, zero, negative, huge, fractional.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(1.5)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!(1_000_000_000)),
        Just(json!("")),
        Just(json!("relu")),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "x", null])),
    ]
}

/// Every leaf's path in `value` (object keys and array indices).
fn leaf_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(list) if !list.is_empty() => {
            for (i, v) in list.iter().enumerate() {
                prefix.push(i.to_string());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn replace_at(value: &mut Value, path: &[String], new: Value) {
    let mut slot = value;
    for key in path {
        slot = match slot {
            Value::Object(map) => map.get_mut(key).expect("a path of this value"),
            Value::Array(list) => &mut list[key.parse::<usize>().expect("an index")],
            _ => unreachable!("paths end at leaves"),
        };
    }
    *slot = new;
}

/// The seed with up to three leaves replaced (picked by index modulo the number of leaves),
/// and sometimes a key removed.
fn mutate_json(seed: &Value, edits: &[(usize, Value)], drop_key: Option<usize>) -> String {
    let mut value = seed.clone();
    let mut paths = Vec::new();
    leaf_paths(&value, &mut Vec::new(), &mut paths);
    for (index, new) in edits {
        let path = &paths[index % paths.len()];
        replace_at(&mut value, path, new.clone());
    }
    if let (Some(i), Value::Object(map)) = (drop_key, &mut value) {
        if !map.is_empty() {
            let key = map.keys().nth(i % map.len()).cloned().expect("a key");
            map.remove(&key);
        }
    }
    value.to_string()
}

fn json_edits() -> impl Strategy<Value = (Vec<(usize, Value)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), hostile_value()), 1..4),
        proptest::option::of(any::<usize>()),
    )
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoder")
        .join(case)
}

/// Writes `bytes` to a file named `name` in a new temporary directory (kept alive by the
/// returned guard) and returns its path.
fn file_with(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

const BERT_SEED: &str = r#"{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30,
    "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
    "pad_token_id": 0, "position_embedding_type": "absolute"}"#;

const POOLING_SEED: &str = r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": false,
    "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
    "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode": ["mean"]}"#;

const TOKENIZER_SEED: &str = r###"{"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false,
      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
      "strip_accents": null, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                         "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
      "max_input_chars_per_word": 100,
      "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "##s": 6}}}"###;

#[test]
fn the_seeds_load() {
    // The mutations start from valid files: check they are.
    let weights = std::fs::read(fixture("post_relu").join("model.safetensors")).unwrap();
    TensorFile::from_bytes(&weights, Path::new("seed")).unwrap();
    let config = std::fs::read_to_string(fixture("post_relu").join("config.json")).unwrap();
    TransformerEncoderConfig::from_json_str(&config).unwrap();
    let (_d, bert) = file_with("config.json", BERT_SEED.as_bytes());
    BertConfig::from_json_file(&bert).unwrap();
    let (_d, pooling) = file_with("config.json", POOLING_SEED.as_bytes());
    PoolingConfig::from_json_file(&pooling).unwrap();
    let (_d, tokenizer) = file_with("tokenizer.json", TOKENIZER_SEED.as_bytes());
    let tokenizer = TextTokenizer::from_file(&tokenizer, 8).unwrap();
    assert!(tokenizer.tokenize(&["hello worlds"]).is_ok());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn safetensors_never_panics(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let seed = std::fs::read(fixture("post_relu").join("model.safetensors")).unwrap();
        let bytes = mutate(&seed, &mutations);
        let _ = TensorFile::from_bytes(&bytes, Path::new("fuzz.safetensors"));
    }

    #[test]
    fn encoder_config_never_panics((edits, drop_key) in json_edits(), bytes in proptest::collection::vec(mutation(), 0..2)) {
        let seed: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture("post_relu").join("config.json")).unwrap(),
        )
        .unwrap();
        let text = mutate_json(&seed, &edits, drop_key);
        let text = String::from_utf8_lossy(&mutate(text.as_bytes(), &bytes)).into_owned();
        if let Ok(config) = TransformerEncoderConfig::from_json_str(&text) {
            // What the loaders do next with a config: sizes without overflow.
            let _ = (config.num_params_exact(), config.activation_bytes(8, 128));
        }
    }

    #[test]
    fn bert_config_never_panics((edits, drop_key) in json_edits()) {
        let seed: Value = serde_json::from_str(BERT_SEED).unwrap();
        let (_dir, path) = file_with("config.json", mutate_json(&seed, &edits, drop_key).as_bytes());
        if let Ok(config) = BertConfig::from_json_file(&path) {
            let _ = config.num_params_exact();
            let _ = config.encoder_config().validate();
        }
    }

    #[test]
    fn pooling_config_never_panics((edits, drop_key) in json_edits()) {
        let seed: Value = serde_json::from_str(POOLING_SEED).unwrap();
        let (_dir, path) = file_with("config.json", mutate_json(&seed, &edits, drop_key).as_bytes());
        let _ = PoolingConfig::from_json_file(&path);
    }

    #[test]
    fn tokenizer_never_panics((edits, drop_key) in json_edits(), max_len in 0usize..40) {
        let seed: Value = serde_json::from_str(TOKENIZER_SEED).unwrap();
        let (_dir, path) = file_with("tokenizer.json", mutate_json(&seed, &edits, drop_key).as_bytes());
        if let Ok(tokenizer) = TextTokenizer::from_file(&path, max_len) {
            let _ = tokenizer.tokenize(&["hello worlds", ""]);
        }
    }
}
