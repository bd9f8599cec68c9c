//! Which heads and neurons to remove, chosen by Optimal Brain Surgeon on calibration data
//! (Hassibi & Stork 1993, in the structured form of Kurtic et al. 2023, "ZipLM"): the ones whose
//! loss the least-squares update of the rest of the layer makes up for best.
//!
//! A head is a group of `Dh` inputs of its layer's `out_proj`, a neuron one input of `linear2`.
//! With `H = XᵀX + λI` the Gram matrix of a Linear layer's inputs over the original model's real
//! calibration tokens (a column of ones appended for the bias, never removed) and `W` its
//! `[in + 1, out]` weights, removing the input group `G` and updating the remaining weights
//! optimally raises the summed squared output error by
//!
//! ```text
//! ΔE_G = tr(W_Gᵀ (H⁻¹_GG)⁻¹ W_G),    then    W -= H⁻¹_{:,G} (H⁻¹_GG)⁻¹ W_G,
//!                                            H⁻¹ -= H⁻¹_{:,G} (H⁻¹_GG)⁻¹ H⁻¹_{G,:}
//! ```
//!
//! Groups are removed greedily, cheapest first, each choice seeing the updates of the earlier
//! ones. Activation importance ([`crate::importance::activation_importance`]) scores each
//! head or neuron alone; this also sees how well the others can stand in for it, which is what
//! layer-wise reconstruction ([`crate::reconstruct`]) then exploits. How many heads each layer
//! loses is still decided globally by an importance score; OBS picks which ones.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{EncoderOutput, HostTensor, TransformerEncoder};
use nalgebra::DMatrix;

use crate::calibration_batch::{capture, token_mask, with_bias_column, CalibrationBatch};
use crate::error::{CompressError, Result};
use crate::structured::StructurePlan;

/// Per layer, the Gram matrices `XᵀX` (bias column last) of the inputs of `out_proj`
/// (`attention`, `[H·Dh + 1]²`) and of `linear2` (`ffn`, `[F + 1]²`) over real tokens.
#[derive(Debug, Clone)]
pub struct InputGrams {
    /// `out_proj` inputs (the heads' contexts), per layer.
    pub attention: Vec<DMatrix<f64>>,
    /// `linear2` inputs (the neurons' activations), per layer.
    pub ffn: Vec<DMatrix<f64>>,
}

/// `XᵀX` of `x` `[B, S, k]` with a column of ones, over the tokens where `keep` `[B·S, 1]` is 1.
fn gram<B: Backend>(x: Tensor<B, 3>, keep: &Tensor<B, 2>) -> DMatrix<f64> {
    let [b, s, k] = x.dims();
    // Tokens x features, f32 on the device; accumulated in f64 on the host.
    let rows = with_bias_column(x.reshape([b * s, k]), keep); // [B·S, k + 1]
    let xtx = HostTensor::from_tensor(rows.clone().transpose().matmul(rows)).data;
    DMatrix::from_fn(k + 1, k + 1, |i, j| f64::from(xtx[i * (k + 1) + j]))
}

impl InputGrams {
    /// Zero matrices for `encoder`'s shape.
    pub fn zeros<B: Backend>(encoder: &TransformerEncoder<B>) -> Self {
        let square = |n: usize| DMatrix::zeros(n + 1, n + 1);
        Self {
            attention: encoder
                .layers
                .iter()
                .map(|l| square(l.self_attn.out_proj.weight.dims()[0]))
                .collect(),
            ffn: encoder
                .layers
                .iter()
                .map(|l| square(l.linear2.weight.dims()[0]))
                .collect(),
        }
    }

    /// Accumulates the Gram matrices of `encoder` (the original model) over `batches`, calling
    /// `progress()` after each batch. [`crate::calibration::statistics`] computes them in the
    /// same pass as activation importance.
    pub fn collect<B: Backend>(
        encoder: &TransformerEncoder<B>,
        batches: &[CalibrationBatch<B>],
        mut progress: impl FnMut(),
    ) -> Result<Self> {
        if batches.is_empty() {
            return Err(CompressError::Invalid("OBS needs calibration data".into()));
        }
        let mut grams = Self::zeros(encoder);
        for batch in batches {
            grams.add(batch, &capture(encoder, batch)?);
            progress();
        }
        Ok(grams)
    }

    /// Adds `batch`, given `out`, the result of [`capture`] on it.
    pub fn add<B: Backend>(&mut self, batch: &CalibrationBatch<B>, out: &EncoderOutput<B>) {
        let captured = out.linear_inputs.as_ref().expect("capture asks for them");
        let Some(first) = captured.first() else {
            return;
        };
        let [b, s, _] = first.out_proj.dims();
        let (keep, _) = token_mask::<B>(batch.lengths.as_deref(), b, s, &first.out_proj.device());
        let keep: Tensor<B, 2> = keep.reshape([b * s, 1]);
        for (layer, c) in captured.iter().enumerate() {
            self.attention[layer] += gram(c.out_proj.clone(), &keep);
            self.ffn[layer] += gram(c.linear2.clone(), &keep);
        }
    }
}

/// Greedy OBS removal of `remove` of `groups` (lists of input indices of `weight`
/// `[in + 1, out]`, bias row last) under the Gram matrix `gram` `[in + 1]²`, with ridge `ridge`
/// relative to its mean diagonal. Returns the indices of the kept groups, ascending.
pub fn obs_keep(
    gram: &DMatrix<f64>,
    weight: &DMatrix<f64>,
    groups: &[Vec<usize>],
    remove: usize,
    ridge: f64,
) -> Result<Vec<usize>> {
    let n = gram.nrows();
    if weight.nrows() != n || remove >= groups.len().max(1) {
        return Err(CompressError::Invalid(format!(
            "OBS: {} weight rows for a {n}x{n} Gram matrix, {remove} of {} groups to remove",
            weight.nrows(),
            groups.len()
        )));
    }
    let degenerate = || {
        CompressError::Invalid(
            "OBS: the calibration activations are degenerate (too few tokens?); use more data"
                .into(),
        )
    };
    let mut h = gram.clone();
    let features = n - 1;
    let mean_diag = (0..features).map(|i| h[(i, i)]).sum::<f64>() / features.max(1) as f64;
    let lambda = ridge.max(1e-8) * mean_diag.max(f64::MIN_POSITIVE);
    for i in 0..features {
        h[(i, i)] += lambda;
    }
    let mut hinv = h.cholesky().ok_or_else(degenerate)?.inverse();
    let mut w = weight.clone();
    let mut alive: Vec<bool> = vec![true; groups.len()];
    for _ in 0..remove {
        let mut best: Option<(f64, usize)> = None;
        for (g, cols) in groups.iter().enumerate().filter(|(g, _)| alive[*g]) {
            let block = DMatrix::from_fn(cols.len(), cols.len(), |a, b| hinv[(cols[a], cols[b])]);
            let wg = DMatrix::from_fn(cols.len(), w.ncols(), |a, j| w[(cols[a], j)]);
            let Some(chol) = block.cholesky() else {
                continue;
            };
            let cost = wg.component_mul(&chol.solve(&wg)).sum();
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, g));
            }
        }
        let (_, g) = best.ok_or_else(degenerate)?;
        let cols = &groups[g];
        let block_inv = DMatrix::from_fn(cols.len(), cols.len(), |a, b| hinv[(cols[a], cols[b])])
            .cholesky()
            .ok_or_else(degenerate)?
            .inverse();
        let hinv_g = hinv.select_columns(cols); // [n, |G|]
        let left = &hinv_g * &block_inv; // [n, |G|]
        w -= &left * w.select_rows(cols);
        hinv -= &left * hinv_g.transpose();
        alive[g] = false;
    }
    Ok((0..groups.len()).filter(|&g| alive[g]).collect())
}

/// `[in, out]` weights and `[out]` bias of a burn Linear as `[in + 1, out]` (bias row last;
/// zeros without bias).
fn with_bias_row<B: Backend>(linear: &burn::nn::Linear<B>) -> DMatrix<f64> {
    let [inputs, outputs] = linear.weight.dims();
    let w = HostTensor::from_tensor(linear.weight.val()).data;
    let b = linear
        .bias
        .as_ref()
        .map(|b| HostTensor::from_tensor(b.val()).data);
    DMatrix::from_fn(inputs + 1, outputs, |i, j| {
        if i < inputs {
            f64::from(w[i * outputs + j])
        } else {
            b.as_ref().map_or(0.0, |b| f64::from(b[j]))
        }
    })
}

/// `plan` with, in every layer, the same number of heads and neurons kept, but which ones
/// chosen by OBS ([`obs_keep`]) on `grams` of the original `encoder`.
pub fn obs_plan<B: Backend>(
    encoder: &TransformerEncoder<B>,
    grams: &InputGrams,
    plan: &StructurePlan,
    ridge: f64,
) -> Result<StructurePlan> {
    plan.check(encoder)?;
    let mut chosen = plan.clone();
    for (i, layer) in encoder.layers.iter().enumerate() {
        let (heads, dh) = (layer.self_attn.num_heads, layer.self_attn.head_dim);
        if plan.heads[i].len() < heads {
            let groups: Vec<Vec<usize>> = (0..heads)
                .map(|h| (h * dh..(h + 1) * dh).collect())
                .collect();
            chosen.heads[i] = obs_keep(
                &grams.attention[i],
                &with_bias_row(&layer.self_attn.out_proj),
                &groups,
                heads - plan.heads[i].len(),
                ridge,
            )?;
        }
        let width = layer.linear2.weight.dims()[0];
        if plan.neurons[i].len() < width {
            let groups: Vec<Vec<usize>> = (0..width).map(|j| vec![j]).collect();
            chosen.neurons[i] = obs_keep(
                &grams.ffn[i],
                &with_bias_row(&layer.linear2),
                &groups,
                width - plan.neurons[i].len(),
                ridge,
            )?;
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gram matrix (bias column last) of the rows of `x`.
    fn gram_of(x: &[[f64; 4]]) -> DMatrix<f64> {
        let rows = DMatrix::from_fn(x.len(), 5, |t, j| if j < 4 { x[t][j] } else { 1.0 });
        rows.transpose() * rows
    }

    #[test]
    fn removes_an_input_the_others_can_stand_in_for() {
        // Input 2 is the sum of inputs 0 and 1, so any one of the three can go at no cost (the
        // other two take its part). Input 3 is independent and the smallest by activation times
        // weight, which is what activation importance would remove; OBS keeps it.
        let x: Vec<[f64; 4]> = (0..64)
            .map(|t| {
                let (a, b) = (((t * 7) % 11) as f64 - 5.0, ((t * 5) % 13) as f64 - 6.0);
                let c = ((t * 3) % 7) as f64 * 0.1;
                [a, b, a + b, c]
            })
            .collect();
        let weight = DMatrix::from_row_slice(5, 2, &[1., 1., 1., 1., 1., 1., 0.5, -0.5, 0., 0.]);
        let groups: Vec<Vec<usize>> = (0..4).map(|j| vec![j]).collect();
        let kept = obs_keep(&gram_of(&x), &weight, &groups, 1, 1e-9).unwrap();
        assert_eq!(kept.len(), 3);
        assert!(kept.contains(&3), "{kept:?}");
        // Groups of inputs: {0, 1} and {2, 3}; either can go, and one stays.
        let pairs = vec![vec![0, 1], vec![2, 3]];
        assert_eq!(
            obs_keep(&gram_of(&x), &weight, &pairs, 1, 1e-9)
                .unwrap()
                .len(),
            1
        );
        // Removing every group, or a weight of the wrong height, is refused.
        assert!(obs_keep(&gram_of(&x), &weight, &pairs, 2, 1e-9).is_err());
        assert!(obs_keep(
            &gram_of(&x),
            &weight.rows(0, 4).into_owned(),
            &groups,
            1,
            1e-9
        )
        .is_err());
    }
}
