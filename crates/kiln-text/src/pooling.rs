//! Sentence pooling (sentence-transformers' `Pooling` module) and `Normalize`.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use serde_json::Value;

use crate::error::{Result, TextError};

/// How token vectors become one sentence vector. Padding never contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's vector (`[CLS]`).
    Cls,
    /// Element-wise maximum over real tokens.
    Max,
    /// Mean over real tokens.
    Mean,
    /// Sum over real tokens divided by the square root of their number.
    MeanSqrtLen,
}

impl Pooling {
    /// sentence-transformers' name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Max => "max",
            Self::Mean => "mean",
            Self::MeanSqrtLen => "mean_sqrt_len_tokens",
        }
    }

    /// Parses a mode name (`cls`, `max`, `mean`, `mean_sqrt_len_tokens`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Cls, Self::Max, Self::Mean, Self::MeanSqrtLen]
            .into_iter()
            .find(|p| p.name() == name)
    }

    /// Pools `tokens` over the real positions of each item.
    ///
    /// # Shapes
    /// - `tokens`: `[B, S, E]`, `padding`: `[B, S]` (`true` = padding) -> `[B, E]`
    pub fn pool<B: Backend>(
        self,
        tokens: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 2> {
        let [batch, seq, dim] = tokens.dims();
        // [B, S] -> [B, S, 1]: 1.0 for real tokens.
        let real = padding.clone().bool_not().float().reshape([batch, seq, 1]);
        match self {
            Self::Cls => tokens.narrow(1, 0, 1).reshape([batch, dim]),
            Self::Max => tokens
                .mask_fill(
                    padding.reshape([batch, seq, 1]).expand([batch, seq, dim]),
                    f32::NEG_INFINITY,
                )
                .max_dim(1)
                .reshape([batch, dim]),
            Self::Mean | Self::MeanSqrtLen => {
                let count = real.clone().sum_dim(1).clamp_min(1e-9); // [B, 1, 1]
                let sum = (tokens * real).sum_dim(1); // [B, 1, E]
                let denominator = if self == Self::Mean {
                    count
                } else {
                    count.sqrt()
                };
                (sum / denominator).reshape([batch, dim])
            }
        }
    }
}

/// The pooling of a sentence-transformers model: one mode, or several concatenated in
/// sentence-transformers' order (cls, max, mean, mean_sqrt_len_tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolingConfig {
    /// The modes, in concatenation order.
    pub modes: Vec<Pooling>,
}

impl Default for PoolingConfig {
    /// Mean pooling, sentence-transformers' default for a plain Hugging Face model.
    fn default() -> Self {
        Self::single(Pooling::Mean)
    }
}

impl PoolingConfig {
    /// One mode.
    pub fn single(mode: Pooling) -> Self {
        Self { modes: vec![mode] }
    }

    /// Reads `1_Pooling/config.json`, in both the legacy (`pooling_mode_mean_tokens: true`, ...)
    /// and the current (`pooling_mode: "mean"` or a list) formats.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let bad = |reason: String| TextError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let json: Value = crate::json::read_json(path)?;
        let mut names: Vec<String> = Vec::new();
        match json.get("pooling_mode") {
            Some(Value::String(s)) => names.push(s.clone()),
            Some(Value::Array(list)) => {
                for v in list {
                    let s = v
                        .as_str()
                        .ok_or_else(|| bad(format!("pooling_mode entry {v} is not a string")))?;
                    names.push(s.to_string());
                }
            }
            Some(other) => {
                return Err(bad(format!("pooling_mode {other} is not a string or list")))
            }
            None => {
                for (key, name) in [
                    ("pooling_mode_cls_token", "cls"),
                    ("pooling_mode_max_tokens", "max"),
                    ("pooling_mode_mean_tokens", "mean"),
                    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                    ("pooling_mode_weightedmean_tokens", "weightedmean"),
                    ("pooling_mode_lasttoken", "lasttoken"),
                ] {
                    if json.get(key).and_then(Value::as_bool) == Some(true) {
                        names.push(name.to_string());
                    }
                }
            }
        }
        if names.is_empty() {
            return Err(bad("no pooling mode is switched on".into()));
        }
        let modes = names
            .iter()
            .map(|n| {
                Pooling::from_name(n).ok_or_else(|| TextError::Unsupported {
                    path: path.to_path_buf(),
                    what: "pooling mode",
                    value: n.clone(),
                    supported: "kiln-text pools with cls, max, mean and mean_sqrt_len_tokens",
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { modes })
    }

    /// Pools a batch.
    ///
    /// # Shapes
    /// - `tokens`: `[B, S, E]`, `padding`: `[B, S]` (`true` = padding) -> `[B, E * modes]`
    pub fn pool<B: Backend>(
        &self,
        tokens: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 2> {
        let pooled: Vec<Tensor<B, 2>> = self
            .modes
            .iter()
            .map(|m| m.pool(tokens.clone(), padding.clone()))
            .collect();
        Tensor::cat(pooled, 1)
    }
}

/// Scales each row to unit L2 norm, as `torch.nn.functional.normalize` (norm floored at 1e-12).
///
/// # Shapes
/// - `x`: `[B, E]` -> `[B, E]`
pub fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// A `[B, S]` padding mask (`true` = padding) from lengths (the core's, re-exported).
pub use kiln::padding_from_lengths as padding_mask;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use kiln::backend::Cpu;

    fn batch() -> (Tensor<Cpu, 3>, Tensor<Cpu, 2, Bool>) {
        let device = Default::default();
        // item 0: two real tokens [1,2], [3,-4]; third is padding with a huge value.
        let tokens = Tensor::<Cpu, 3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, -4.0, 100.0, 100.0], [1, 3, 2]),
            &device,
        );
        (tokens, padding_mask(&[2], 3, &device))
    }

    fn values(t: Tensor<Cpu, 2>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    #[test]
    fn padding_never_contributes() {
        let (tokens, pad) = batch();
        assert_eq!(
            values(Pooling::Mean.pool(tokens.clone(), pad.clone())),
            vec![2.0, -1.0]
        );
        assert_eq!(
            values(Pooling::Max.pool(tokens.clone(), pad.clone())),
            vec![3.0, 2.0]
        );
        assert_eq!(
            values(Pooling::Cls.pool(tokens.clone(), pad.clone())),
            vec![1.0, 2.0]
        );
        let s = values(Pooling::MeanSqrtLen.pool(tokens, pad));
        assert!((s[0] - 4.0 / 2f32.sqrt()).abs() < 1e-6 && (s[1] + 2.0 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn normalize_gives_unit_rows() {
        let device = Default::default();
        let x = Tensor::<Cpu, 2>::from_data(
            TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0], [2, 2]),
            &device,
        );
        assert_eq!(values(normalize(x)), vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn both_pooling_config_formats_parse() {
        let dir = std::env::temp_dir().join(format!("kiln-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let legacy = dir.join("legacy.json");
        std::fs::write(&legacy, r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#).unwrap();
        assert_eq!(
            PoolingConfig::from_json_file(&legacy).unwrap(),
            PoolingConfig::single(Pooling::Mean)
        );
        let current = dir.join("current.json");
        std::fs::write(&current, r#"{"pooling_mode": ["cls", "max"]}"#).unwrap();
        assert_eq!(
            PoolingConfig::from_json_file(&current).unwrap().modes,
            vec![Pooling::Cls, Pooling::Max]
        );
        let weighted = dir.join("weighted.json");
        std::fs::write(&weighted, r#"{"pooling_mode": "weightedmean"}"#).unwrap();
        let err = PoolingConfig::from_json_file(&weighted)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pooling mode `weightedmean`"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
