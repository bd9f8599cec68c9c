//! Activation-aware unstructured pruning: Wanda (Sun et al. 2023, "A Simple and Effective
//! Pruning Approach for Large Language Models").
//!
//! Magnitude pruning ranks a weight by `|W_ij|`; Wanda ranks it by `|W_ij| * ||X_j||`, where
//! `||X_j||` is the L2 norm of input feature `j` of that Linear layer over calibration tokens
//! (padding excluded). A small weight on a feature that is always large matters more than a
//! large weight on a feature that is nearly zero; the scores come from one forward pass over a
//! few hundred sentences, with no gradients and no weight update. As in the paper, weights
//! compete within each output neuron: every output row of every Linear weight loses its
//! `round(rate * d_in)` lowest-scoring inputs (so a packed `in_proj` is pruned exactly as
//! separate q, k, v projections would be).
//!
//! [`ActivationNorms`] gathers the norms from [`kiln::EncoderOutput::linear_inputs`] of
//! calibration batches ([`ActivationNorms::from_batches`]); `text::activation_norms` and
//! `plain::activation_norms` make the batches.

use burn::tensor::backend::Backend;
use kiln::{HostTensor, LinearInputs, TransformerEncoder};
use serde::Serialize;

use crate::calibration_batch::{capture, token_mask, CalibrationBatch};
use crate::error::{check_rate, CompressError, Result};
use crate::unstructured::{prunable, prune_count, smallest, LinearKind, PruningMasks, WeightMask};

/// Per layer and Linear weight, the sum over calibration tokens of each input feature's square.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationNorms {
    /// `[layer][kind as in LinearKind::ALL][input feature]`.
    pub sum_squares: Vec<[Vec<f64>; 4]>,
    /// Calibration tokens seen (padding excluded).
    pub tokens: usize,
}

impl ActivationNorms {
    /// Empty sums sized for `encoder`'s layers.
    pub fn new<B: Backend>(encoder: &TransformerEncoder<B>) -> Self {
        Self {
            sum_squares: encoder
                .layers
                .iter()
                .map(|layer| LinearKind::ALL.map(|kind| vec![0.0; kind.param(layer).dims()[0]]))
                .collect(),
            tokens: 0,
        }
    }

    /// The norms over `batches`: one capturing forward pass each, padding left out. Calls
    /// `progress(batch)` after each.
    pub fn from_batches<B: Backend>(
        encoder: &TransformerEncoder<B>,
        batches: &[CalibrationBatch<B>],
        mut progress: impl FnMut(&CalibrationBatch<B>),
    ) -> Result<Self> {
        let mut norms = Self::new(encoder);
        for batch in batches {
            let out = capture(encoder, batch)?;
            norms.accumulate(
                &out.linear_inputs.unwrap_or_default(),
                batch.lengths.as_deref(),
            )?;
            progress(batch);
        }
        Ok(norms)
    }

    /// Adds one forward pass's captured inputs. `lengths[b]` real tokens start sequence `b`
    /// (the rest is padding and is left out); `None` means no padding.
    ///
    /// # Shapes
    /// - each captured input: `[B, S, D]`
    pub fn accumulate<B: Backend>(
        &mut self,
        inputs: &[LinearInputs<B>],
        lengths: Option<&[usize]>,
    ) -> Result<()> {
        if inputs.len() != self.sum_squares.len() {
            return Err(CompressError::Invalid(format!(
                "activation norms: {} layers captured, the model has {}",
                inputs.len(),
                self.sum_squares.len()
            )));
        }
        let Some(first) = inputs.first() else {
            return Ok(());
        };
        let [batch, seq, _] = first.in_proj.dims();
        let (keep, real) = token_mask::<B>(lengths, batch, seq, &first.in_proj.device());
        for (sums, captured) in self.sum_squares.iter_mut().zip(inputs) {
            let tensors = [
                &captured.in_proj,
                &captured.out_proj,
                &captured.linear1,
                &captured.linear2,
            ];
            for ((sum, tensor), kind) in sums.iter_mut().zip(tensors).zip(LinearKind::ALL) {
                let dim = tensor.dims()[2];
                if dim != sum.len() {
                    return Err(CompressError::Invalid(format!(
                        "activation norms: {} input has {dim} features, the weight {}",
                        kind.torch_name(),
                        sum.len()
                    )));
                }
                // [B, S, D] -> sum over B and S of x^2 -> [D]
                let squares = (tensor.clone() * keep.clone()).powi_scalar(2);
                let per_feature =
                    HostTensor::from_tensor(squares.sum_dim(0).sum_dim(1).reshape([dim]));
                for (acc, v) in sum.iter_mut().zip(per_feature.data) {
                    *acc += f64::from(v);
                }
            }
        }
        self.tokens += real;
        Ok(())
    }

    /// `||X_j||` of `kind`'s inputs in `layer`.
    pub fn norms(&self, layer: usize, kind: LinearKind) -> Vec<f32> {
        let index = LinearKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.sum_squares[layer][index]
            .iter()
            .map(|s| s.sqrt() as f32)
            .collect()
    }
}

/// Wanda's masks at `rate` (`0 <= rate < 1`) for `encoder`'s Linear weights, without changing
/// the model: in each output row, the `round(rate * d_in)` smallest `|W_ij| * ||X_j||`.
pub fn wanda_masks<B: Backend>(
    encoder: &TransformerEncoder<B>,
    norms: &ActivationNorms,
    rate: f64,
) -> Result<PruningMasks> {
    check_rate("wanda pruning", rate)?;
    if norms.tokens == 0 {
        return Err(CompressError::Invalid(
            "wanda pruning needs activation norms from at least one calibration token".into(),
        ));
    }
    if norms.sum_squares.len() != encoder.layers.len() {
        return Err(CompressError::Invalid(format!(
            "activation norms of {} layers for a model of {}",
            norms.sum_squares.len(),
            encoder.layers.len()
        )));
    }
    let mut masks = Vec::new();
    for (layer, kind, id, weight) in prunable(encoder) {
        // burn's layout: [in, out]; output neuron `o` is column `o`.
        let [d_in, d_out] = [weight.shape[0], weight.shape[1]];
        let feature_norms = norms.norms(layer, kind);
        if feature_norms.len() != d_in {
            return Err(CompressError::Invalid(format!(
                "activation norms of layers.{layer}.{} have {} features, the weight {d_in} inputs",
                kind.torch_name(),
                feature_norms.len()
            )));
        }
        let mut mask = vec![1.0f32; weight.data.len()];
        let k = prune_count(rate, d_in);
        let mut scores = vec![0.0f32; d_in];
        for o in 0..d_out {
            for (i, score) in scores.iter_mut().enumerate() {
                *score = weight.data[i * d_out + o].abs() * feature_norms[i];
            }
            for i in smallest(&scores, k) {
                mask[i * d_out + o] = 0.0;
            }
        }
        masks.push(WeightMask {
            layer,
            kind,
            id,
            mask: HostTensor::new(weight.shape.clone(), mask),
        });
    }
    Ok(PruningMasks { masks })
}

/// Prunes `encoder` with Wanda at `rate` and returns it with its masks.
pub fn prune_wanda<B: Backend>(
    encoder: TransformerEncoder<B>,
    norms: &ActivationNorms,
    rate: f64,
) -> Result<(TransformerEncoder<B>, PruningMasks)> {
    let masks = wanda_masks(&encoder, norms, rate)?;
    Ok((masks.prune(encoder), masks))
}
