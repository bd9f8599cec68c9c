//! What an attribution explains: one scalar per text computed from its sentence vector.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use kiln::HostTensor;
use kiln_text::TextEncoder;
use serde::Serialize;

use crate::error::{ExplainError, Result};

/// The scalar `f(x)` that gradient attributions explain, computed from a text model's pooled
/// sentence vector `p` (before normalisation).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Component `index` of the sentence embedding as the model outputs it (normalised when
    /// the model normalises).
    Dimension { index: usize },
    /// `‖p‖`, the L2 norm of the pooled vector (before normalisation).
    Norm,
    /// Cosine similarity of `p` to another text's embedding (`--target TEXT`).
    Similarity {
        /// The other text (for reports).
        text: String,
        /// Its embedding.
        #[serde(skip)]
        embedding: Vec<f32>,
    },
}

impl Target {
    /// The cosine similarity to `text`'s embedding under `encoder` (computed with dropout off,
    /// as every attribution forward is, also on autodiff backends).
    pub fn similarity_to<B: Backend>(encoder: &TextEncoder<B>, text: &str) -> Result<Self> {
        let model = encoder.model.clone().without_dropout();
        let batch = encoder.batch_tensors(&encoder.tokenize(&[text])?);
        let embedding = HostTensor::from_tensor(encoder.pipeline.embed_batch(&model, &batch)?).data;
        Ok(Self::Similarity {
            text: text.to_string(),
            embedding,
        })
    }

    /// `f` per batch item.
    ///
    /// # Shapes
    /// - `pooled`: `[B, D]` -> `[B]`
    pub fn value<B: Backend>(
        &self,
        pooled: Tensor<B, 2>,
        normalized: bool,
    ) -> Result<Tensor<B, 1>> {
        let [batch, dim] = pooled.dims();
        let norm = || {
            pooled
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .sqrt()
                .clamp_min(1e-12)
        }; // [B, 1]
        Ok(match self {
            Self::Dimension { index } => {
                if *index >= dim {
                    return Err(ExplainError::Invalid(format!(
                        "target dimension {index} is out of range: embeddings have {dim} dimensions"
                    )));
                }
                let column = pooled.clone().narrow(1, *index, 1);
                let column = if normalized { column / norm() } else { column };
                column.reshape([batch])
            }
            Self::Norm => norm().reshape([batch]),
            Self::Similarity { embedding, .. } => {
                if embedding.len() != dim {
                    return Err(ExplainError::Invalid(format!(
                        "the target embedding has {} dimensions, the model's {dim}",
                        embedding.len()
                    )));
                }
                let len: f32 = embedding
                    .iter()
                    .map(|v| v * v)
                    .sum::<f32>()
                    .sqrt()
                    .max(1e-12);
                let unit: Vec<f32> = embedding.iter().map(|v| v / len).collect();
                // [D] -> [1, D], broadcast over the batch.
                let other =
                    Tensor::<B, 2>::from_data(TensorData::new(unit, [1, dim]), &pooled.device());
                ((pooled.clone() * other).sum_dim(1) / norm()).reshape([batch])
            }
        })
    }

    /// A short description for reports and logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Dimension { index } => format!("embedding dimension {index}"),
            Self::Norm => "norm of the pooled embedding".into(),
            Self::Similarity { text, .. } => format!("cosine similarity to {text:?}"),
        }
    }
}
