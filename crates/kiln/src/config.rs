//! Configurations, with PyTorch's names and defaults, and the `config.json` file format.

use std::collections::BTreeMap;
use std::path::Path;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{KilnError, Result};

/// The feed-forward activation (`activation=` in PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`, PyTorch's default.
    #[default]
    Relu,
    /// Exact GELU, `x * Φ(x)` with the erf form (PyTorch's `"gelu"`, not the tanh approximation).
    Gelu,
}

impl std::str::FromStr for Activation {
    type Err = KilnError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(Self::Relu),
            "gelu" => Ok(Self::Gelu),
            other => Err(KilnError::Config(format!(
                "unknown activation `{other}` (expected \"relu\" or \"gelu\")"
            ))),
        }
    }
}

/// How the layers of a [`TransformerEncoder`](crate::TransformerEncoder) are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerInit {
    /// Every layer draws its own random weights.
    #[default]
    Independent,
    /// PyTorch's behaviour: `nn.TransformerEncoder` deep-copies one layer, so all layers start
    /// with identical weights (they are still separate parameters).
    Cloned,
}

/// Configuration of a [`MultiHeadAttention`](crate::MultiHeadAttention) (self-attention with
/// PyTorch's packed input projection).
#[derive(Config, Debug)]
pub struct MultiHeadAttentionConfig {
    /// Model width `E` (PyTorch's `embed_dim`).
    pub embed_dim: usize,
    /// Number of heads `H`.
    pub num_heads: usize,
    /// Dropout on the attention weights, active in training only.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Whether the projections have biases (`in_proj_bias`, `out_proj.bias`).
    #[config(default = true)]
    pub bias: bool,
    /// Width of one head `Dh`; defaults to `embed_dim / num_heads`. Set explicitly for models
    /// whose heads were pruned (then `H * Dh != E`).
    #[config(default = "None")]
    pub head_dim: Option<usize>,
}

impl MultiHeadAttentionConfig {
    /// The head width `Dh`.
    pub fn resolved_head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.embed_dim / self.num_heads.max(1))
    }

    /// Checks the shape parameters.
    pub fn validate(&self) -> Result<()> {
        if self.embed_dim == 0 {
            return Err(KilnError::Config("embed_dim (d_model) must be > 0".into()));
        }
        if self.head_dim.is_none() {
            if self.num_heads == 0 {
                return Err(KilnError::Config("nhead must be > 0".into()));
            }
            if !self.embed_dim.is_multiple_of(self.num_heads) {
                return Err(KilnError::Config(format!(
                    "d_model ({}) must be divisible by nhead ({})",
                    self.embed_dim, self.num_heads
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(KilnError::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// Configuration of a [`TransformerEncoderLayer`](crate::TransformerEncoderLayer): the fields,
/// defaults and meaning of `torch.nn.TransformerEncoderLayer`'s arguments.
#[derive(Config, Debug)]
pub struct TransformerEncoderLayerConfig {
    /// Model width `E`.
    pub d_model: usize,
    /// Number of attention heads.
    pub nhead: usize,
    /// Hidden width of the feed-forward block.
    #[config(default = 2048)]
    pub dim_feedforward: usize,
    /// Dropout probability (attention weights, feed-forward, residual branches).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Feed-forward activation.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Epsilon of both LayerNorms.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// `true`: tensors are `[B, S, E]`; `false` (PyTorch's default): `[S, B, E]`.
    #[config(default = false)]
    pub batch_first: bool,
    /// `true`: pre-norm (LayerNorm before each block); `false`: post-norm.
    #[config(default = false)]
    pub norm_first: bool,
    /// Whether Linear and LayerNorm layers have biases.
    #[config(default = true)]
    pub bias: bool,
    /// Heads kept in this layer after structured pruning (`None`: `nhead`). Heads keep the
    /// width `d_model / nhead`.
    #[config(default = "None")]
    pub kept_heads: Option<usize>,
}

impl TransformerEncoderLayerConfig {
    /// Checks the shape parameters.
    pub fn validate(&self) -> Result<()> {
        self.attention_config().validate()?;
        if self.dim_feedforward == 0 {
            return Err(KilnError::Config("dim_feedforward must be > 0".into()));
        }
        // Negated on purpose: a NaN epsilon fails too.
        if !(self.layer_norm_eps > 0.0) {
            return Err(KilnError::Config("layer_norm_eps must be > 0".into()));
        }
        Ok(())
    }

    /// The attention block's configuration.
    pub fn attention_config(&self) -> MultiHeadAttentionConfig {
        let mut cfg = MultiHeadAttentionConfig::new(self.d_model, self.nhead)
            .with_dropout(self.dropout)
            .with_bias(self.bias);
        if let Some(kept) = self.kept_heads {
            cfg.num_heads = kept;
            cfg.head_dim = Some(self.d_model / self.nhead.max(1));
        }
        cfg
    }
}

/// Configuration of a [`TransformerEncoder`](crate::TransformerEncoder), flat, with PyTorch's
/// field names. This is exactly what `config.json` holds.
#[derive(Config, Debug)]
pub struct TransformerEncoderConfig {
    /// Model width `E`.
    pub d_model: usize,
    /// Number of attention heads.
    pub nhead: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Hidden width of the feed-forward blocks.
    #[config(default = 2048)]
    pub dim_feedforward: usize,
    /// Dropout probability.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Feed-forward activation.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Epsilon of the LayerNorms.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// `true`: `[B, S, E]`; `false`: `[S, B, E]`.
    #[config(default = false)]
    pub batch_first: bool,
    /// Pre-norm (`true`) or post-norm (`false`).
    #[config(default = false)]
    pub norm_first: bool,
    /// Biases in Linear and LayerNorm layers.
    #[config(default = true)]
    pub bias: bool,
    /// A final LayerNorm after the last layer (PyTorch's `norm=` argument).
    #[config(default = false)]
    pub final_norm: bool,
    /// Epsilon of the final LayerNorm (`None`: `layer_norm_eps`).
    #[config(default = "None")]
    pub final_norm_eps: Option<f64>,
    /// Whether the final LayerNorm has a bias (`nn.LayerNorm`'s default: yes).
    #[config(default = true)]
    pub final_norm_bias: bool,
    /// Per-layer head counts after structured pruning (`None`: `nhead` everywhere).
    #[config(default = "None")]
    pub layer_heads: Option<Vec<usize>>,
    /// Per-layer feed-forward widths after structured pruning (`None`: `dim_feedforward`).
    #[config(default = "None")]
    pub layer_dim_feedforward: Option<Vec<usize>>,
    /// Independent per-layer init, or PyTorch's deep copy.
    #[config(default = "LayerInit::Independent")]
    pub layer_init: LayerInit,
}

impl TransformerEncoderConfig {
    /// The configuration of layer `index`.
    pub fn layer_config(&self, index: usize) -> TransformerEncoderLayerConfig {
        let heads = self
            .layer_heads
            .as_ref()
            .and_then(|h| h.get(index).copied());
        let ffn = self
            .layer_dim_feedforward
            .as_ref()
            .and_then(|f| f.get(index).copied())
            .unwrap_or(self.dim_feedforward);
        TransformerEncoderLayerConfig::new(self.d_model, self.nhead)
            .with_dim_feedforward(ffn)
            .with_dropout(self.dropout)
            .with_activation(self.activation)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_batch_first(self.batch_first)
            .with_norm_first(self.norm_first)
            .with_bias(self.bias)
            .with_kept_heads(heads.filter(|&h| h != self.nhead))
    }

    /// Heads of layer `index`.
    pub fn heads_of_layer(&self, index: usize) -> usize {
        self.layer_config(index).attention_config().num_heads
    }

    /// Checks everything a model built from this config needs.
    pub fn validate(&self) -> Result<()> {
        if self.num_layers == 0 {
            return Err(KilnError::Config("num_layers must be > 0".into()));
        }
        for (name, list) in [
            ("layer_heads", &self.layer_heads),
            ("layer_dim_feedforward", &self.layer_dim_feedforward),
        ] {
            if let Some(list) = list {
                if list.len() != self.num_layers {
                    return Err(KilnError::Config(format!(
                        "{name} has {} entries but num_layers is {}",
                        list.len(),
                        self.num_layers
                    )));
                }
            }
        }
        if let Some(heads) = &self.layer_heads {
            if let Some(i) = heads.iter().position(|&h| h == 0 || h > self.nhead) {
                return Err(KilnError::Config(format!(
                    "layer_heads[{i}] = {} must be in 1..={}",
                    heads[i], self.nhead
                )));
            }
        }
        // Without per-layer lists every layer is alike: check one, not a million.
        let distinct = if self.layer_heads.is_none() && self.layer_dim_feedforward.is_none() {
            1
        } else {
            self.num_layers
        };
        for i in 0..distinct {
            self.layer_config(i).validate()?;
        }
        Ok(())
    }

    /// Number of trainable parameters of a model with this config (saturating at `usize::MAX`
    /// for configs no machine could hold).
    pub fn num_params(&self) -> usize {
        usize::try_from(self.num_params_exact()).unwrap_or(usize::MAX)
    }

    /// [`Self::num_params`] without overflow, whatever the config asks for.
    pub fn num_params_exact(&self) -> u128 {
        let e = self.d_model as u128;
        let b = u128::from(self.bias);
        let dh = (self.d_model / self.nhead.max(1)) as u128;
        // Saturating: a hostile config's sizes overflow even u128.
        let sum = |terms: &[u128]| terms.iter().fold(0u128, |a, &t| a.saturating_add(t));
        let per_layer = |i: usize| {
            let cfg = self.layer_config(i);
            let inner = (cfg.attention_config().num_heads as u128).saturating_mul(dh);
            let f = cfg.dim_feedforward as u128;
            let ie = inner.saturating_mul(e);
            let ef = e.saturating_mul(f);
            sum(&[
                ie.saturating_mul(3),
                inner.saturating_mul(3 * b), // in_proj
                ie,
                e * b, // out_proj
                ef,
                f * b,
                ef,
                e * b,                         // linear1, linear2
                (e + e * b).saturating_mul(2), // norm1, norm2
            ])
        };
        let layers = if self.layer_heads.is_none() && self.layer_dim_feedforward.is_none() {
            // Every layer alike: no loop over a million layers.
            per_layer(0).saturating_mul(self.num_layers as u128)
        } else {
            (0..self.num_layers).fold(0u128, |a, i| a.saturating_add(per_layer(i)))
        };
        let final_norm = if self.final_norm {
            e + e * u128::from(self.final_norm_bias)
        } else {
            0
        };
        layers.saturating_add(final_norm)
    }

    /// Bytes of f32 activations a forward pass of `batch` sequences of `seq` tokens keeps live at
    /// its peak (one layer's projections and feed-forward, plus the attention scores of the
    /// padded path): what the memory budget checks before a batch is run.
    pub fn activation_bytes(&self, batch: usize, seq: usize) -> u128 {
        // Saturating, as in `num_params_exact`.
        let tokens = batch as u128 * seq as u128;
        let e = self.d_model as u128;
        let (mut width, mut heads) = (0u128, 0u128);
        for i in 0..self.num_layers.min(1 << 16) {
            let cfg = self.layer_config(i);
            let h = cfg.attention_config().num_heads as u128;
            let inner = h.saturating_mul(cfg.attention_config().resolved_head_dim() as u128);
            // input, q|k|v, context, output, feed-forward hidden, residual.
            let layer = (3 * e)
                .saturating_add(inner.saturating_mul(4))
                .saturating_add(cfg.dim_feedforward as u128);
            width = width.max(layer);
            heads = heads.max(h);
        }
        let scores = (2 * batch as u128)
            .saturating_mul(heads)
            .saturating_mul(seq as u128 * seq as u128);
        tokens
            .saturating_mul(width)
            .saturating_add(scores)
            .saturating_mul(4)
    }

    /// Multiply-accumulate FLOPs (2 per MAC) per token of a forward pass at sequence length `seq`.
    pub fn flops_per_token(&self, seq: usize) -> f64 {
        let e = self.d_model as f64;
        let dh = (self.d_model / self.nhead.max(1)) as f64;
        let s = seq as f64;
        let mut total = 0.0;
        for i in 0..self.num_layers {
            let cfg = self.layer_config(i);
            let inner = cfg.attention_config().num_heads as f64 * dh;
            let f = cfg.dim_feedforward as f64;
            total += 2.0 * (3.0 * inner * e + inner * e + 2.0 * e * f); // projections + FFN
            total += 2.0 * 2.0 * s * inner; // QK^T and AV
        }
        total
    }

    /// Reads `config.json` (PyTorch field names; absent fields take PyTorch's defaults).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::input_file::read_regular_text(path, crate::input_file::MAX_JSON_BYTES)?;
        Self::from_json_str(&text).map_err(|e| match e {
            KilnError::Json { reason, .. } => KilnError::Json {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// Parses the `config.json` format from a string.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let file: EncoderConfigFile = serde_json::from_str(text).map_err(|e| KilnError::Json {
            path: "config.json".into(),
            reason: e.to_string(),
        })?;
        for key in file.unknown.keys() {
            tracing::warn!("config.json: ignoring unknown field `{key}`");
        }
        let config = file.into_config()?;
        config.validate()?;
        Ok(config)
    }

    /// The `config.json` text of this config.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&EncoderConfigFile::from_config(self))
            .expect("config serialises")
    }
}

/// The on-disk `config.json`: PyTorch's argument names, every field optional but the three sizes.
#[derive(Debug, Serialize, Deserialize)]
struct EncoderConfigFile {
    d_model: usize,
    nhead: usize,
    num_layers: usize,
    #[serde(default = "defaults::dim_feedforward")]
    dim_feedforward: usize,
    #[serde(default = "defaults::dropout")]
    dropout: f64,
    #[serde(default)]
    activation: Activation,
    #[serde(default = "defaults::layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    batch_first: bool,
    #[serde(default)]
    norm_first: bool,
    #[serde(default = "defaults::yes")]
    bias: bool,
    #[serde(default)]
    final_norm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_norm_eps: Option<f64>,
    #[serde(default = "defaults::yes", skip_serializing_if = "defaults::is_true")]
    final_norm_bias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer_heads: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer_dim_feedforward: Option<Vec<usize>>,
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, serde_json::Value>,
}

mod defaults {
    pub fn dim_feedforward() -> usize {
        2048
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
    pub fn yes() -> bool {
        true
    }
    pub fn is_true(b: &bool) -> bool {
        *b
    }
}

impl EncoderConfigFile {
    fn into_config(self) -> Result<TransformerEncoderConfig> {
        Ok(TransformerEncoderConfig {
            d_model: self.d_model,
            nhead: self.nhead,
            num_layers: self.num_layers,
            dim_feedforward: self.dim_feedforward,
            dropout: self.dropout,
            activation: self.activation,
            layer_norm_eps: self.layer_norm_eps,
            batch_first: self.batch_first,
            norm_first: self.norm_first,
            bias: self.bias,
            final_norm: self.final_norm,
            final_norm_eps: self.final_norm_eps,
            final_norm_bias: self.final_norm_bias,
            layer_heads: self.layer_heads,
            layer_dim_feedforward: self.layer_dim_feedforward,
            layer_init: LayerInit::Independent,
        })
    }

    fn from_config(c: &TransformerEncoderConfig) -> Self {
        Self {
            d_model: c.d_model,
            nhead: c.nhead,
            num_layers: c.num_layers,
            dim_feedforward: c.dim_feedforward,
            dropout: c.dropout,
            activation: c.activation,
            layer_norm_eps: c.layer_norm_eps,
            batch_first: c.batch_first,
            norm_first: c.norm_first,
            bias: c.bias,
            final_norm: c.final_norm,
            final_norm_eps: c.final_norm_eps,
            final_norm_bias: c.final_norm_bias,
            layer_heads: c.layer_heads.clone(),
            layer_dim_feedforward: c.layer_dim_feedforward.clone(),
            unknown: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_pytorch_defaults() {
        let c = TransformerEncoderConfig::from_json_str(
            r#"{"d_model": 8, "nhead": 2, "num_layers": 1}"#,
        )
        .unwrap();
        assert_eq!(c.dim_feedforward, 2048);
        assert_eq!(c.dropout, 0.1);
        assert_eq!(c.activation, Activation::Relu);
        assert_eq!(c.layer_norm_eps, 1e-5);
        assert!(!c.batch_first && !c.norm_first && c.bias && !c.final_norm);
    }

    #[test]
    fn round_trips_through_json() {
        let c = TransformerEncoderConfig::new(16, 4, 3)
            .with_activation(Activation::Gelu)
            .with_final_norm(true)
            .with_layer_heads(Some(vec![4, 2, 3]));
        let back = TransformerEncoderConfig::from_json_str(&c.to_json_string()).unwrap();
        assert_eq!(back.activation, Activation::Gelu);
        assert!(back.final_norm);
        assert_eq!(back.layer_heads, Some(vec![4, 2, 3]));
    }

    #[test]
    fn rejects_indivisible_heads() {
        let err = TransformerEncoderConfig::from_json_str(
            r#"{"d_model": 10, "nhead": 3, "num_layers": 1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("divisible"), "{err}");
    }

    #[test]
    fn rejects_unknown_activation() {
        let err = TransformerEncoderConfig::from_json_str(
            r#"{"d_model": 8, "nhead": 2, "num_layers": 1, "activation": "tanh"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("tanh"), "{err}");
    }

    #[test]
    fn counts_parameters_like_pytorch() {
        // sum(p.numel() for p in nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32), 2).parameters())
        let c = TransformerEncoderConfig::new(16, 4, 2).with_dim_feedforward(32);
        assert_eq!(
            c.num_params(),
            2 * (3 * 16 * 16 + 3 * 16 + 16 * 16 + 16 + 16 * 32 + 32 + 32 * 16 + 16 + 4 * 16)
        );
    }
}
