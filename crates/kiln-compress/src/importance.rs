//! Importance of attention heads and feed-forward neurons, to choose what structured pruning
//! removes.
//!
//! - [`GradientImportance`]: Michel et al. 2019 ("Are Sixteen Heads Really Better than One?"):
//!   `I_h = E_x |∂L/∂ξ_h|` with `ξ_h` a gate on head `h`'s output. Gating head `h` scales the
//!   rows of `out_proj` it feeds, so `∂L/∂ξ_h` at `ξ = 1` is `Σ W ⊙ ∂L/∂W` over those rows:
//!   the score comes from ordinary parameter gradients, no gates in the forward pass. The same
//!   holds for neuron `j` of the feed-forward block (row `j` of `linear2`). The absolute value
//!   is taken per batch, then averaged over batches.
//! - [`activation_importance`]: from one forward pass over calibration data, no gradients: a
//!   head's score is the size of what it adds to the attention output,
//!   `sqrt(Σ_t ‖c_{t,h} W_o[h]‖²)` (its context times its `out_proj` rows, over real tokens);
//!   a neuron's is `‖h_j‖ · ‖linear2[j, :]‖` (its activation norm times its outgoing weights,
//!   Wanda's score at the neuron level). With layer-wise reconstruction this keeps more of the
//!   model than the gradient score (docs/compression.md).
//! - [`weight_norm_importance`]: no data needed: a head's score is the L2 norm of its q, k, v
//!   and output weights; a neuron's is `‖linear1[:, j]‖ · ‖linear2[j, :]‖`.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use kiln::{EncoderOutput, HostTensor, TransformerEncoder};

use crate::calibration_batch::{capture, token_mask, CalibrationBatch};
use crate::error::Result;
use serde::Serialize;

/// Scores per layer: one per head, one per feed-forward neuron (higher = more important).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    /// `heads[layer][head]`.
    pub heads: Vec<Vec<f32>>,
    /// `neurons[layer][neuron]`.
    pub neurons: Vec<Vec<f32>>,
}

/// Accumulates Michel et al.'s gradient importance over batches.
///
/// ```text
/// let mut acc = GradientImportance::new(&model);
/// for batch in batches {
///     let grads = loss(&model, batch).backward();
///     acc.accumulate(&model, &grads);
/// }
/// let importance = acc.finish();
/// ```
#[derive(Debug, Clone)]
pub struct GradientImportance {
    heads: Vec<Vec<f64>>,
    neurons: Vec<Vec<f64>>,
    batches: usize,
}

fn to_vec<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    HostTensor::from_tensor(t).data
}

/// Zero per-head and per-neuron sums for `encoder`'s shape: `[layer][head]`, `[layer][neuron]`.
fn zero_sums<B: Backend>(encoder: &TransformerEncoder<B>) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let layers = &encoder.layers;
    (
        layers
            .iter()
            .map(|l| vec![0.0; l.self_attn.num_heads])
            .collect(),
        layers
            .iter()
            .map(|l| vec![0.0; l.linear2.weight.dims()[0]])
            .collect(),
    )
}

impl GradientImportance {
    /// An empty accumulator for `encoder`'s shape.
    pub fn new<B: Backend>(encoder: &TransformerEncoder<B>) -> Self {
        let (heads, neurons) = zero_sums(encoder);
        Self {
            heads,
            neurons,
            batches: 0,
        }
    }

    /// Adds one batch's `|∂L/∂ξ|` from the gradients of a loss computed with `encoder`.
    pub fn accumulate<B: AutodiffBackend>(
        &mut self,
        encoder: &TransformerEncoder<B>,
        grads: &B::Gradients,
    ) {
        for (i, layer) in encoder.layers.iter().enumerate() {
            let attn = &layer.self_attn;
            // [H*Dh, E] ⊙ grad -> [H, Dh*E] -> [H]
            let w = attn.out_proj.weight.val();
            if let Some(g) = w.grad(grads) {
                let [rows, cols] = g.dims();
                let per_head = (w.inner() * g)
                    .reshape([attn.num_heads, rows / attn.num_heads * cols])
                    .sum_dim(1)
                    .abs()
                    .reshape([attn.num_heads]);
                for (acc, v) in self.heads[i].iter_mut().zip(to_vec(per_head)) {
                    *acc += v as f64;
                }
            }
            // [F, E] ⊙ grad -> [F]
            let w = layer.linear2.weight.val();
            if let Some(g) = w.grad(grads) {
                let f = g.dims()[0];
                let per_neuron = (w.inner() * g).sum_dim(1).abs().reshape([f]);
                for (acc, v) in self.neurons[i].iter_mut().zip(to_vec(per_neuron)) {
                    *acc += v as f64;
                }
            }
        }
        self.batches += 1;
    }

    /// Batches accumulated so far.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The mean scores.
    pub fn finish(self) -> Importance {
        let n = self.batches.max(1) as f64;
        let mean = |v: Vec<Vec<f64>>| -> Vec<Vec<f32>> {
            v.into_iter()
                .map(|l| l.into_iter().map(|x| (x / n) as f32).collect())
                .collect()
        };
        Importance {
            heads: mean(self.heads),
            neurons: mean(self.neurons),
        }
    }
}

/// Activation importance (see the module docs) of `encoder` over calibration `batches`,
/// calling `progress()` after each batch. [`crate::calibration::statistics`] computes it in the
/// same pass as OBS's Gram matrices.
pub fn activation_importance<B: Backend>(
    encoder: &TransformerEncoder<B>,
    batches: &[CalibrationBatch<B>],
    mut progress: impl FnMut(),
) -> Result<Importance> {
    let mut sums = ActivationSums::new(encoder);
    for batch in batches {
        sums.add(encoder, batch, &capture(encoder, batch)?);
        progress();
    }
    Ok(sums.finish(encoder))
}

/// The running sums of [`activation_importance`]: per head `Σ_t ‖c_{t,h} W_o[h]‖²`, per neuron
/// `Σ_t h_j²`, over real tokens.
#[derive(Debug, Clone)]
pub struct ActivationSums {
    heads: Vec<Vec<f64>>,
    neurons: Vec<Vec<f64>>,
}

impl ActivationSums {
    /// Zero sums for `encoder`'s shape.
    pub fn new<B: Backend>(encoder: &TransformerEncoder<B>) -> Self {
        let (heads, neurons) = zero_sums(encoder);
        Self { heads, neurons }
    }

    /// Adds `batch`, given `out`, the result of [`capture`]`(encoder, batch)`.
    pub fn add<B: Backend>(
        &mut self,
        encoder: &TransformerEncoder<B>,
        batch: &CalibrationBatch<B>,
        out: &EncoderOutput<B>,
    ) {
        let captured = out.linear_inputs.as_ref().expect("capture asks for them");
        for (i, (layer, captured)) in encoder.layers.iter().zip(captured).enumerate() {
            let attn = &layer.self_attn;
            let (h, dh) = (attn.num_heads, attn.head_dim);
            let [b, s, _] = captured.out_proj.dims();
            let (keep, _) =
                token_mask::<B>(batch.lengths.as_deref(), b, s, &captured.out_proj.device());
            // [B, S, H*Dh] -> [B*S, H, Dh] -> [H, B*S, Dh]
            let context = (captured.out_proj.clone() * keep.clone())
                .reshape([b * s, h, dh])
                .swap_dims(0, 1);
            // out_proj [H*Dh, E] -> [H, Dh, E]; [H, B*S, Dh] x [H, Dh, E] -> [H, B*S, E] -> [H]
            let e = attn.out_proj.weight.dims()[1];
            let w = attn.out_proj.weight.val().reshape([h, dh, e]);
            let per_head = context
                .matmul(w)
                .powi_scalar(2)
                .sum_dim(2)
                .sum_dim(1)
                .reshape([h]);
            for (acc, v) in self.heads[i].iter_mut().zip(to_vec(per_head)) {
                *acc += f64::from(v);
            }
            // [B, S, F] -> [F]
            let f = captured.linear2.dims()[2];
            let per_neuron = (captured.linear2.clone() * keep)
                .powi_scalar(2)
                .sum_dim(0)
                .sum_dim(1)
                .reshape([f]);
            for (acc, v) in self.neurons[i].iter_mut().zip(to_vec(per_neuron)) {
                *acc += f64::from(v);
            }
        }
    }

    /// The scores: heads `sqrt(sum)`, neurons `sqrt(sum) · ‖linear2[j, :]‖`.
    pub fn finish<B: Backend>(self, encoder: &TransformerEncoder<B>) -> Importance {
        let neurons = encoder
            .layers
            .iter()
            .zip(self.neurons)
            .map(|(layer, sums)| {
                // ‖linear2[j, :]‖ per neuron: [F, E] -> [F]
                let f = sums.len();
                let w = layer.linear2.weight.val();
                let out_norms = to_vec(w.powi_scalar(2).sum_dim(1).sqrt().reshape([f]));
                sums.iter()
                    .zip(out_norms)
                    .map(|(s, n)| (s.sqrt() as f32) * n)
                    .collect()
            })
            .collect();
        Importance {
            heads: self
                .heads
                .into_iter()
                .map(|l| l.into_iter().map(|v| v.sqrt() as f32).collect())
                .collect(),
            neurons,
        }
    }
}

/// Weight-norm importance (no data): heads by the L2 norm of their q, k, v columns and
/// `out_proj` rows, neurons by `‖linear1[:, j]‖ · ‖linear2[j, :]‖`.
pub fn weight_norm_importance<B: Backend>(encoder: &TransformerEncoder<B>) -> Importance {
    let mut heads = Vec::new();
    let mut neurons = Vec::new();
    for layer in &encoder.layers {
        let attn = &layer.self_attn;
        let (h, dh) = (attn.num_heads, attn.head_dim);
        let e = attn.in_proj.weight.dims()[0];
        // in_proj [E, 3*H*Dh] -> [E, 3, H, Dh] -> sum of squares over E, 3, Dh -> [H]
        let qkv = attn
            .in_proj
            .weight
            .val()
            .powi_scalar(2)
            .reshape([e, 3, h, dh])
            .sum_dim(0)
            .sum_dim(1)
            .sum_dim(3)
            .reshape([h]);
        // out_proj [H*Dh, E] -> [H, Dh*E] -> [H]
        let out = attn
            .out_proj
            .weight
            .val()
            .powi_scalar(2)
            .reshape([h, dh * e])
            .sum_dim(1)
            .reshape([h]);
        heads.push(to_vec((qkv + out).sqrt()));
        // linear1 [E, F]: column norms; linear2 [F, E]: row norms.
        let f = layer.linear1.weight.dims()[1];
        let up = layer
            .linear1
            .weight
            .val()
            .powi_scalar(2)
            .sum_dim(0)
            .sqrt()
            .reshape([f]);
        let down = layer
            .linear2
            .weight
            .val()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .reshape([f]);
        neurons.push(to_vec(up * down));
    }
    Importance { heads, neurons }
}

/// A label-free loss for [`GradientImportance`]: the projection of the output on a fixed random
/// direction per row, `Σ y ⊙ r` with `r ~ N(0, 1)` (seeded). Its gate gradients measure how
/// strongly each head or neuron moves the output, in expectation over directions.
pub fn random_projection_loss<B: Backend, const D: usize>(
    output: Tensor<B, D>,
    seed: u64,
) -> Tensor<B, 1> {
    use rand::{Rng, SeedableRng};
    let shape = output.shape();
    let rng = rand::rngs::StdRng::seed_from_u64(seed);
    let values: Vec<f32> = rng
        .sample_iter(rand_distr::StandardNormal)
        .take(shape.num_elements())
        .collect();
    let direction: Tensor<B, D> = Tensor::from_data(
        burn::tensor::TensorData::new(values, shape),
        &output.device(),
    );
    (output * direction).sum()
}
