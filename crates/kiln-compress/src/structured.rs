//! Structured pruning: remove whole attention heads and feed-forward neurons, so that the
//! matrices shrink and the forward pass gets cheaper.
//!
//! A [`StructurePlan`] lists, per layer, the heads and neurons to keep. [`shrink`] builds the
//! smaller model (per-layer head counts and widths are recorded in the config:
//! `layer_heads` / `layer_dim_feedforward`, which `config.json` stores and loaders read);
//! [`mask_structure`] zeroes the same heads and neurons in place without shrinking, which gives
//! the same outputs and is how the equivalence is tested.
//!
//! Parameter layout (burn stores Linear weights `[in, out]`): head `h` of a layer with `H` heads
//! of width `Dh` owns columns `p * H * Dh + h * Dh .. + Dh` of `in_proj` for `p` in q, k, v and
//! rows `h * Dh .. + Dh` of `out_proj`; neuron `j` owns column `j` of `linear1` (and its bias)
//! and row `j` of `linear2`.

use burn::module::{Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use kiln::{HostTensor, TransformerEncoder};
use serde::{Deserialize, Serialize};

use crate::error::{check_rate, CompressError, Result};
use crate::importance::Importance;

/// The heads and feed-forward neurons each layer keeps (indices into the layer's current
/// heads and neurons, ascending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructurePlan {
    /// Per layer, the kept heads.
    pub heads: Vec<Vec<usize>>,
    /// Per layer, the kept feed-forward neurons.
    pub neurons: Vec<Vec<usize>>,
}

impl StructurePlan {
    /// Keeps everything.
    pub fn keep_all<B: Backend>(encoder: &TransformerEncoder<B>) -> Self {
        Self {
            heads: encoder
                .layers
                .iter()
                .map(|l| (0..l.self_attn.num_heads).collect())
                .collect(),
            neurons: encoder
                .layers
                .iter()
                .map(|l| (0..l.linear1.weight.dims()[1]).collect())
                .collect(),
        }
    }

    /// Keeps the heads chosen by [`select_heads`] at `rate`.
    pub fn with_heads(mut self, importance: &Importance, rate: f64) -> Result<Self> {
        self.heads = select_heads(&importance.heads, rate)?;
        Ok(self)
    }

    /// Keeps the neurons chosen by [`select_neurons`] at `rate`.
    pub fn with_neurons(mut self, importance: &Importance, rate: f64) -> Result<Self> {
        self.neurons = select_neurons(&importance.neurons, rate)?;
        Ok(self)
    }

    /// Checks that the plan fits `encoder`: one entry per layer, indices in range, ascending,
    /// at least one head and one neuron per layer.
    pub fn check<B: Backend>(&self, encoder: &TransformerEncoder<B>) -> Result<()> {
        let layers = encoder.layers.len();
        if self.heads.len() != layers || self.neurons.len() != layers {
            return Err(CompressError::Invalid(format!(
                "plan has {} head lists and {} neuron lists for {layers} layers",
                self.heads.len(),
                self.neurons.len()
            )));
        }
        for (i, layer) in encoder.layers.iter().enumerate() {
            for (what, kept, count) in [
                ("heads", &self.heads[i], layer.self_attn.num_heads),
                ("neurons", &self.neurons[i], layer.linear1.weight.dims()[1]),
            ] {
                if kept.is_empty() {
                    return Err(CompressError::Invalid(format!(
                        "layer {i} would keep no {what} (at least one must stay)"
                    )));
                }
                if kept.windows(2).any(|w| w[0] >= w[1]) || kept[kept.len() - 1] >= count {
                    return Err(CompressError::Invalid(format!(
                        "layer {i}: kept {what} must be ascending indices below {count}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Heads kept per layer (`layer_heads` of the shrunk config).
    pub fn layer_heads(&self) -> Vec<usize> {
        self.heads.iter().map(Vec::len).collect()
    }

    /// Feed-forward widths per layer (`layer_dim_feedforward` of the shrunk config).
    pub fn layer_dim_feedforward(&self) -> Vec<usize> {
        self.neurons.iter().map(Vec::len).collect()
    }
}

/// Chooses the heads to keep: the `round(rate * total)` least important heads of the whole
/// model are removed (Michel et al. 2019 prune globally, with each layer's scores divided by
/// their L2 norm), but every layer keeps at least one head. Returns kept indices per layer.
pub fn select_heads(importance: &[Vec<f32>], rate: f64) -> Result<Vec<Vec<usize>>> {
    check_rate("head pruning", rate)?;
    let mut ranked: Vec<(f32, usize, usize)> = Vec::new();
    for (layer, scores) in importance.iter().enumerate() {
        let norm = scores.iter().map(|s| s * s).sum::<f32>().sqrt();
        for (head, &s) in scores.iter().enumerate() {
            let s = if norm > 0.0 { s / norm } else { s };
            ranked.push((s, layer, head));
        }
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let total = ranked.len();
    let mut remove = ((rate * total as f64).round_ties_even() as usize).min(total);
    let mut kept: Vec<Vec<bool>> = importance.iter().map(|s| vec![true; s.len()]).collect();
    for &(_, layer, head) in &ranked {
        if remove == 0 {
            break;
        }
        if kept[layer].iter().filter(|&&k| k).count() > 1 {
            kept[layer][head] = false;
            remove -= 1;
        }
    }
    Ok(kept
        .into_iter()
        .map(|k| {
            k.iter()
                .enumerate()
                .filter(|(_, &k)| k)
                .map(|(i, _)| i)
                .collect()
        })
        .collect())
}

/// Chooses the feed-forward neurons to keep: in each layer, the `round(rate * width)` least
/// important are removed (uniform widths keep every layer's matmuls the same size).
pub fn select_neurons(importance: &[Vec<f32>], rate: f64) -> Result<Vec<Vec<usize>>> {
    check_rate("feed-forward pruning", rate)?;
    Ok(importance
        .iter()
        .map(|scores| {
            let n = scores.len();
            let remove = ((rate * n as f64).round_ties_even() as usize).min(n - 1);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            let mut kept = order[remove..].to_vec();
            kept.sort_unstable();
            kept
        })
        .collect())
}

fn index_tensor<B: Backend>(indices: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let n = indices.len();
    Tensor::from_data(TensorData::new(indices, [n]), device)
}

/// Replaces a parameter by the entries `indices` along `dim`, as a new trainable leaf.
fn select_param<B: Backend, const D: usize>(
    param: &mut Param<Tensor<B, D>>,
    dim: usize,
    indices: &Tensor<B, 1, Int>,
) {
    let value = param.val();
    let trainable = value.is_require_grad();
    let mut selected = value.select(dim, indices.clone()).detach();
    if trainable {
        selected = selected.require_grad();
    }
    *param = Param::initialized(ParamId::new(), selected);
}

/// Index lists of a layer's plan: `in_proj` columns, `out_proj` rows, neurons.
fn plan_indices(
    heads: &[usize],
    all_heads: usize,
    head_dim: usize,
    neurons: &[usize],
) -> [Vec<i64>; 3] {
    let inner = all_heads * head_dim;
    let head_rows = |offset: usize| {
        heads
            .iter()
            .flat_map(move |&h| (0..head_dim).map(move |d| (offset + h * head_dim + d) as i64))
    };
    let qkv: Vec<i64> = (0..3).flat_map(|p| head_rows(p * inner)).collect();
    let out: Vec<i64> = head_rows(0).collect();
    let ffn: Vec<i64> = neurons.iter().map(|&j| j as i64).collect();
    [qkv, out, ffn]
}

/// The smaller model that keeps only `plan`'s heads and neurons. Its config records the new
/// per-layer head counts and widths, so it saves (`save_dir`) and loads like any other.
pub fn shrink<B: Backend>(
    mut encoder: TransformerEncoder<B>,
    plan: &StructurePlan,
) -> Result<TransformerEncoder<B>> {
    plan.check(&encoder)?;
    for (i, layer) in encoder.layers.iter_mut().enumerate() {
        let device = layer.linear1.weight.device();
        let attn = &mut layer.self_attn;
        let [qkv, out, ffn] = plan_indices(
            &plan.heads[i],
            attn.num_heads,
            attn.head_dim,
            &plan.neurons[i],
        );
        if plan.heads[i].len() != attn.num_heads {
            let qkv = index_tensor::<B>(qkv, &device);
            select_param(&mut attn.in_proj.weight, 1, &qkv);
            if let Some(bias) = attn.in_proj.bias.as_mut() {
                select_param(bias, 0, &qkv);
            }
            select_param(
                &mut attn.out_proj.weight,
                0,
                &index_tensor::<B>(out, &device),
            );
            attn.num_heads = plan.heads[i].len();
        }
        if plan.neurons[i].len() != layer.linear1.weight.dims()[1] {
            let ffn = index_tensor::<B>(ffn, &device);
            select_param(&mut layer.linear1.weight, 1, &ffn);
            if let Some(bias) = layer.linear1.bias.as_mut() {
                select_param(bias, 0, &ffn);
            }
            select_param(&mut layer.linear2.weight, 0, &ffn);
        }
    }
    let config = &mut encoder.config;
    let heads: Vec<usize> = encoder
        .layers
        .iter()
        .map(|l| l.self_attn.num_heads)
        .collect();
    let widths: Vec<usize> = encoder
        .layers
        .iter()
        .map(|l| l.linear1.weight.dims()[1])
        .collect();
    config.layer_heads = heads.iter().any(|&h| h != config.nhead).then_some(heads);
    config.layer_dim_feedforward = widths
        .iter()
        .any(|&f| f != config.dim_feedforward)
        .then_some(widths);
    config.validate()?;
    Ok(encoder)
}

/// The same model with `plan`'s removed heads and neurons switched off in place (their
/// `out_proj` rows and `linear2` rows zeroed): the unshrunk equivalent of [`shrink`].
pub fn mask_structure<B: Backend>(
    mut encoder: TransformerEncoder<B>,
    plan: &StructurePlan,
) -> Result<TransformerEncoder<B>> {
    plan.check(&encoder)?;
    for (i, layer) in encoder.layers.iter_mut().enumerate() {
        let device = layer.linear1.weight.device();
        let attn = &mut layer.self_attn;
        let [_, out, ffn] = plan_indices(
            &plan.heads[i],
            attn.num_heads,
            attn.head_dim,
            &plan.neurons[i],
        );
        // A `[rows, 1]` column of ones at the kept rows, zeros elsewhere.
        let keep_rows = |kept: Vec<i64>, rows: usize| -> Tensor<B, 2> {
            let mut mask = vec![0.0f32; rows];
            kept.into_iter().for_each(|r| mask[r as usize] = 1.0);
            HostTensor::new(vec![rows, 1], mask).to_tensor(&device)
        };
        let mask = keep_rows(out, attn.num_heads * attn.head_dim);
        attn.out_proj.weight = attn.out_proj.weight.clone().map(|w| w * mask);
        let mask = keep_rows(ffn, layer.linear2.weight.dims()[0]);
        layer.linear2.weight = layer.linear2.weight.clone().map(|w| w * mask);
    }
    Ok(encoder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_removed_globally_but_never_all_of_a_layer() {
        // Layer 0's heads are all unimportant; layer 1's matter.
        let scores = vec![vec![0.1, 0.2, 0.3], vec![5.0, 0.01, 6.0]];
        let kept = select_heads(&scores, 0.5).unwrap();
        // 3 of 6 removed; per-layer normalisation makes layer 1's head 1 the least important.
        assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), 3);
        assert!(!kept[1].contains(&1));
        let kept = select_heads(&scores, 0.99).unwrap();
        assert!(kept.iter().all(|k| k.len() == 1), "{kept:?}");
    }

    #[test]
    fn neurons_are_removed_per_layer() {
        let kept = select_neurons(&[vec![3.0, 1.0, 2.0, 0.5]], 0.5).unwrap();
        assert_eq!(kept, vec![vec![0, 2]]);
        assert!(select_neurons(&[vec![1.0]], 1.5).is_err());
    }

    #[test]
    fn indices_follow_the_packed_layout() {
        // 3 heads of width 2, keep heads 0 and 2.
        let [qkv, out, ffn] = plan_indices(&[0, 2], 3, 2, &[1]);
        assert_eq!(qkv, vec![0, 1, 4, 5, 6, 7, 10, 11, 12, 13, 16, 17]);
        assert_eq!(out, vec![0, 1, 4, 5]);
        assert_eq!(ffn, vec![1]);
    }
}
