//! A Hugging Face BERT `config.json`, and the kiln encoder configuration it maps to.

use std::collections::BTreeMap;
use std::path::Path;

use kiln::{Activation, TransformerEncoderConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TextError};

/// The fields of a Hugging Face `BertConfig` that the forward pass depends on, with
/// `transformers`' defaults. Unknown fields are kept and written back on save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `"bert"` (others are rejected with their name).
    #[serde(default)]
    pub model_type: Option<String>,
    /// e.g. `["BertModel"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Model width E.
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer (before any pruning).
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    /// Feed-forward width.
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    /// Feed-forward activation: `"gelu"` (exact, erf) or `"relu"`.
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    /// Dropout on embeddings and sub-layer outputs (training only).
    #[serde(default = "defaults::dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "defaults::dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Rows of the position-embedding table: the longest input the model takes.
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type (segment) table.
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12 for BERT).
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Id of `[PAD]`.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Only `"absolute"` is supported.
    #[serde(default = "defaults::position_embedding_type")]
    pub position_embedding_type: String,
    /// kiln extension, written by structured pruning: heads kept in each layer (the name of
    /// kiln's own `config.json`; files written before it was unified say `kiln_layer_heads`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "kiln_layer_heads"
    )]
    pub layer_heads: Option<Vec<usize>>,
    /// kiln extension, written by structured pruning: feed-forward width of each layer (older
    /// files: `kiln_layer_intermediate_sizes`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "kiln_layer_intermediate_sizes"
    )]
    pub layer_dim_feedforward: Option<Vec<usize>>,
    /// Every other field, kept as it was.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

mod defaults {
    pub fn hidden_size() -> usize {
        768
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn hidden_act() -> String {
        "gelu".into()
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn position_embedding_type() -> String {
        "absolute".into()
    }
}

const SUPPORTED: &str = "kiln-text runs BERT-family checkpoints: model_type \"bert\", \
    absolute positions, gelu or relu";

impl BertConfig {
    /// Reads and checks `config.json`.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let config: Self = crate::json::read_json(path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Rejects what the BERT forward pass here does not implement, naming it.
    pub fn check(&self, path: &Path) -> Result<()> {
        let unsupported = |what, value: &str| TextError::Unsupported {
            path: path.to_path_buf(),
            what,
            value: value.to_string(),
            supported: SUPPORTED,
        };
        match self.model_type.as_deref() {
            Some("bert") => {}
            Some(other) => return Err(unsupported("model_type", other)),
            None => {
                let archs = self.architectures.clone().unwrap_or_default();
                if !archs.iter().any(|a| a.starts_with("Bert")) {
                    return Err(unsupported("architecture", &archs.join(", ")));
                }
            }
        }
        if let Some(arch) = self
            .architectures
            .iter()
            .flatten()
            .find(|a| !a.starts_with("Bert"))
        {
            return Err(unsupported("architecture", arch));
        }
        self.activation()
            .map_err(|_| unsupported("hidden_act", &self.hidden_act))?;
        if self.position_embedding_type != "absolute" {
            return Err(unsupported(
                "position_embedding_type",
                &self.position_embedding_type,
            ));
        }
        self.encoder_config()
            .validate()
            .map_err(|e| TextError::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "relu" => Ok(Activation::Relu),
            other => Err(TextError::Input(format!(
                "unsupported hidden_act `{other}`"
            ))),
        }
    }

    /// The kiln encoder with BERT's layer layout: post-norm, batch-first, one dropout rate.
    /// Parameters of the embeddings (word, position, token type, LayerNorm) and the encoder,
    /// without overflow whatever the config asks for.
    pub fn num_params_exact(&self) -> u128 {
        let h = self.hidden_size as u128;
        let rows = self.vocab_size as u128
            + self.max_position_embeddings as u128
            + self.type_vocab_size as u128;
        rows.saturating_mul(h)
            .saturating_add(2 * h)
            .saturating_add(self.encoder_config().num_params_exact())
    }

    pub fn encoder_config(&self) -> TransformerEncoderConfig {
        TransformerEncoderConfig::new(
            self.hidden_size,
            self.num_attention_heads,
            self.num_hidden_layers,
        )
        .with_dim_feedforward(self.intermediate_size)
        .with_dropout(self.hidden_dropout_prob)
        .with_activation(self.activation().unwrap_or(Activation::Gelu))
        .with_layer_norm_eps(self.layer_norm_eps)
        .with_batch_first(true)
        .with_norm_first(false)
        .with_layer_heads(self.layer_heads.clone())
        .with_layer_dim_feedforward(self.layer_dim_feedforward.clone())
    }

    /// `config.json` text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BertConfig> {
        let c: BertConfig = serde_json::from_str(text).unwrap();
        c.check(Path::new("config.json")).map(|_| c)
    }

    #[test]
    fn minimal_bert_config_takes_transformers_defaults() {
        let c = parse(r#"{"model_type": "bert", "vocab_size": 100}"#).unwrap();
        assert_eq!(c.hidden_size, 768);
        assert_eq!(c.layer_norm_eps, 1e-12);
        let e = c.encoder_config();
        assert!(e.batch_first && !e.norm_first);
        assert_eq!(e.activation, Activation::Gelu);
    }

    #[test]
    fn other_architectures_are_named() {
        let err = parse(r#"{"model_type": "roberta", "vocab_size": 100}"#).unwrap_err();
        assert!(err.to_string().contains("model_type `roberta`"), "{err}");
        let err = parse(r#"{"model_type": "bert", "vocab_size": 100, "hidden_act": "gelu_new"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("hidden_act `gelu_new`"), "{err}");
        let err = parse(r#"{"architectures": ["T5Model"], "vocab_size": 100}"#).unwrap_err();
        assert!(err.to_string().contains("architecture `T5Model`"), "{err}");
    }

    #[test]
    fn unknown_fields_round_trip() {
        let c = parse(r#"{"model_type": "bert", "vocab_size": 100, "foo": [1, 2]}"#).unwrap();
        let back: serde_json::Value = serde_json::from_str(&c.to_json_string()).unwrap();
        assert_eq!(back["foo"], serde_json::json!([1, 2]));
    }

    #[test]
    fn per_layer_sizes_read_the_old_names_and_write_the_one_name() {
        let old = r#"{"model_type": "bert", "vocab_size": 100, "num_hidden_layers": 2,
                      "kiln_layer_heads": [2, 1],
                      "kiln_layer_intermediate_sizes": [8, 4]}"#;
        let c = parse(old).unwrap();
        assert_eq!(c.layer_heads, Some(vec![2, 1]));
        assert_eq!(c.layer_dim_feedforward, Some(vec![8, 4]));
        let back: serde_json::Value = serde_json::from_str(&c.to_json_string()).unwrap();
        assert_eq!(back["layer_heads"], serde_json::json!([2, 1]));
        assert_eq!(back["layer_dim_feedforward"], serde_json::json!([8, 4]));
        assert!(back.get("kiln_layer_heads").is_none());
        assert_eq!(parse(&c.to_json_string()).unwrap(), c);
    }
}
