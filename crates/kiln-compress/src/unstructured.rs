//! Unstructured pruning: zero individual weights of the Linear layers, with masks.
//!
//! The prunable weights are the four Linear weights of each layer (`self_attn.in_proj_weight`,
//! `self_attn.out_proj.weight`, `linear1.weight`, `linear2.weight`); biases, LayerNorms and
//! embeddings are left alone, as in the usual PyTorch recipes. `rate` is PyTorch's `amount`:
//! `round(rate * n)` weights are pruned per tensor ([`UnstructuredMethod::Magnitude`], like
//! `prune.l1_unstructured`; [`UnstructuredMethod::Random`], like `prune.random_unstructured`) or
//! across all of them ([`UnstructuredMethod::GlobalMagnitude`], like `prune.global_unstructured`
//! with `L1Unstructured`). Ties in magnitude go to the lower index, so results are reproducible.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{HostTensor, TransformerEncoder, TransformerEncoderLayer};
use rand::SeedableRng;
use serde::Serialize;

use crate::error::{check_rate, Result};

/// One of the four Linear weights of an encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearKind {
    /// `self_attn.in_proj_weight` (q, k, v packed).
    InProj,
    /// `self_attn.out_proj.weight`.
    OutProj,
    /// `linear1.weight` (feed-forward up).
    Linear1,
    /// `linear2.weight` (feed-forward down).
    Linear2,
}

impl LinearKind {
    /// All four, in state_dict order.
    pub const ALL: [Self; 4] = [Self::InProj, Self::OutProj, Self::Linear1, Self::Linear2];

    /// The PyTorch `state_dict` name within a layer.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::InProj => "self_attn.in_proj_weight",
            Self::OutProj => "self_attn.out_proj.weight",
            Self::Linear1 => "linear1.weight",
            Self::Linear2 => "linear2.weight",
        }
    }

    /// The weight parameter (burn layout `[in, out]`) of `layer`.
    pub fn param<B: Backend>(self, layer: &TransformerEncoderLayer<B>) -> &Param<Tensor<B, 2>> {
        match self {
            Self::InProj => &layer.self_attn.in_proj.weight,
            Self::OutProj => &layer.self_attn.out_proj.weight,
            Self::Linear1 => &layer.linear1.weight,
            Self::Linear2 => &layer.linear2.weight,
        }
    }
}

/// How weights are chosen for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnstructuredMethod {
    /// The smallest `|w|` of each tensor (`l1_unstructured`).
    Magnitude,
    /// The smallest `|w|` across all prunable tensors (`global_unstructured`).
    GlobalMagnitude,
    /// Uniformly random weights of each tensor, seeded (`random_unstructured`): the baseline.
    Random {
        /// The seed.
        seed: u64,
    },
}

/// The mask of one weight tensor: `1` keeps, `0` prunes; burn's `[in, out]` layout.
#[derive(Debug, Clone)]
pub struct WeightMask {
    /// Layer index.
    pub layer: usize,
    /// Which weight.
    pub kind: LinearKind,
    /// The parameter the mask belongs to (masks follow the parameter through training).
    pub id: ParamId,
    /// The mask values.
    pub mask: HostTensor,
}

impl WeightMask {
    /// `layers.{i}.{name}`.
    pub fn name(&self) -> String {
        format!("layers.{}.{}", self.layer, self.kind.torch_name())
    }

    /// Number of pruned entries.
    pub fn pruned(&self) -> usize {
        self.mask.data.iter().filter(|&&m| m == 0.0).count()
    }
}

/// The masks of an unstructured pruning: apply them once to prune, and again after every
/// optimiser step to keep pruned weights at zero while fine-tuning.
#[derive(Debug, Clone, Default)]
pub struct PruningMasks {
    /// One mask per pruned tensor.
    pub masks: Vec<WeightMask>,
}

impl PruningMasks {
    /// Pruned entries over all masks.
    pub fn pruned(&self) -> usize {
        self.masks.iter().map(WeightMask::pruned).sum()
    }

    /// Entries covered by the masks.
    pub fn total(&self) -> usize {
        self.masks.iter().map(|m| m.mask.data.len()).sum()
    }

    /// Zeroes the pruned weights of `encoder`, on the encoder's device.
    pub fn prune<B: Backend>(&self, encoder: TransformerEncoder<B>) -> TransformerEncoder<B> {
        let device = encoder
            .layers
            .first()
            .map(|l| l.linear1.weight.device())
            .unwrap_or_default();
        self.apply(encoder, &device)
    }

    /// The masks uploaded to `device`, ready to apply repeatedly.
    pub fn on_device<B: Backend>(&self, device: &B::Device) -> DeviceMasks<B> {
        DeviceMasks {
            by_id: self
                .masks
                .iter()
                .map(|m| (m.id, m.mask.to_tensor::<B, 2>(device)))
                .collect(),
        }
    }

    /// Zeroes the pruned weights of any module holding the masked parameters (an encoder, a
    /// text model, ...). Parameters keep their identity and their `require_grad`.
    pub fn apply<B: Backend, M: Module<B>>(&self, module: M, device: &B::Device) -> M {
        self.on_device::<B>(device).apply(module)
    }
}

/// [`PruningMasks`] on a device, keyed by parameter.
#[derive(Debug, Clone)]
pub struct DeviceMasks<B: Backend> {
    by_id: HashMap<ParamId, Tensor<B, 2>>,
}

impl<B: Backend> DeviceMasks<B> {
    /// Multiplies each masked parameter of `module` by its mask.
    pub fn apply<M: Module<B>>(&self, module: M) -> M {
        module.map(&mut MaskMapper { masks: self })
    }
}

struct MaskMapper<'a, B: Backend> {
    masks: &'a DeviceMasks<B>,
}

impl<B: Backend> ModuleMapper<B> for MaskMapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(mask) = self.masks.by_id.get(&param.id) else {
            return param;
        };
        let mask = mask.clone();
        param.map(|t| {
            let mask: Tensor<B, D> = mask.reshape(t.shape());
            if t.is_require_grad() {
                // A fresh leaf: the masking itself is not part of any graph.
                (t.detach() * mask).detach().require_grad()
            } else {
                t * mask
            }
        })
    }
}

/// The prunable weights of `encoder`, copied to the host, in layer and state_dict order.
pub(crate) fn prunable<B: Backend>(
    encoder: &TransformerEncoder<B>,
) -> Vec<(usize, LinearKind, ParamId, HostTensor)> {
    let mut out = Vec::new();
    for (i, layer) in encoder.layers.iter().enumerate() {
        for kind in LinearKind::ALL {
            let param = kind.param(layer);
            out.push((i, kind, param.id, HostTensor::from_tensor(param.val())));
        }
    }
    out
}

/// PyTorch's count of weights to prune: Python's `round(rate * n)` (half to even).
pub(crate) fn prune_count(rate: f64, n: usize) -> usize {
    ((rate * n as f64).round_ties_even() as usize).min(n)
}

/// Indices of the `k` smallest `|values|`, ties to the lower index.
pub(crate) fn smallest(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    if k == 0 {
        return Vec::new();
    }
    let key = |&i: &usize| (values[i].abs(), i);
    order.select_nth_unstable_by(k - 1, |a, b| {
        let (va, ia) = key(a);
        let (vb, ib) = key(b);
        va.total_cmp(&vb).then(ia.cmp(&ib))
    });
    order.truncate(k);
    order
}

/// Computes the masks of `method` at `rate` (`0 <= rate < 1`) for `encoder`'s Linear weights,
/// without changing the model.
pub fn unstructured_masks<B: Backend>(
    encoder: &TransformerEncoder<B>,
    method: UnstructuredMethod,
    rate: f64,
) -> Result<PruningMasks> {
    check_rate("unstructured pruning", rate)?;
    let weights = prunable(encoder);
    let mut masks: Vec<WeightMask> = weights
        .iter()
        .map(|(layer, kind, id, w)| WeightMask {
            layer: *layer,
            kind: *kind,
            id: *id,
            mask: HostTensor::new(w.shape.clone(), vec![1.0; w.data.len()]),
        })
        .collect();
    match method {
        UnstructuredMethod::Magnitude => {
            for (mask, (_, _, _, w)) in masks.iter_mut().zip(&weights) {
                for i in smallest(&w.data, prune_count(rate, w.data.len())) {
                    mask.mask.data[i] = 0.0;
                }
            }
        }
        UnstructuredMethod::GlobalMagnitude => {
            let all: Vec<f32> = weights
                .iter()
                .flat_map(|(.., w)| w.data.iter().copied())
                .collect();
            let offsets: Vec<usize> = weights
                .iter()
                .scan(0, |acc, (.., w)| {
                    let start = *acc;
                    *acc += w.data.len();
                    Some(start)
                })
                .collect();
            for flat in smallest(&all, prune_count(rate, all.len())) {
                let t = offsets.partition_point(|&start| start <= flat) - 1;
                masks[t].mask.data[flat - offsets[t]] = 0.0;
            }
        }
        UnstructuredMethod::Random { seed } => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for mask in &mut masks {
                let n = mask.mask.data.len();
                for i in rand::seq::index::sample(&mut rng, n, prune_count(rate, n)) {
                    mask.mask.data[i] = 0.0;
                }
            }
        }
    }
    Ok(PruningMasks { masks })
}

/// Prunes `encoder` (`method` at `rate`) and returns it with its masks.
pub fn prune_unstructured<B: Backend>(
    encoder: TransformerEncoder<B>,
    method: UnstructuredMethod,
    rate: f64,
) -> Result<(TransformerEncoder<B>, PruningMasks)> {
    let masks = unstructured_masks(&encoder, method, rate)?;
    Ok((masks.prune(encoder), masks))
}

/// Zeros in one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct WeightSparsity {
    /// `layers.{i}.{name}`.
    pub name: String,
    /// Entries.
    pub numel: usize,
    /// Entries equal to zero.
    pub zeros: usize,
    /// `zeros / numel`.
    pub sparsity: f64,
}

/// Zeros per layer and over the model's prunable weights (measured on the values, so it is
/// true after fine-tuning and after a save/load round trip).
#[derive(Debug, Clone, Serialize)]
pub struct SparsityReport {
    /// Per tensor.
    pub weights: Vec<WeightSparsity>,
    /// Per layer (the four tensors together), named `layers.{i}`.
    pub layers: Vec<WeightSparsity>,
    /// All prunable weights.
    pub total: WeightSparsity,
}

fn sparsity(name: String, numel: usize, zeros: usize) -> WeightSparsity {
    WeightSparsity {
        name,
        numel,
        zeros,
        sparsity: if numel == 0 {
            0.0
        } else {
            zeros as f64 / numel as f64
        },
    }
}

/// Measures the sparsity of `encoder`'s Linear weights.
pub fn sparsity_report<B: Backend>(encoder: &TransformerEncoder<B>) -> SparsityReport {
    let mut weights = Vec::new();
    let mut layers = Vec::new();
    let (mut all_n, mut all_z) = (0, 0);
    for (i, layer) in encoder.layers.iter().enumerate() {
        let (mut layer_n, mut layer_z) = (0, 0);
        for kind in LinearKind::ALL {
            let zeros_t = kind
                .param(layer)
                .val()
                .equal_elem(0.0)
                .int()
                .sum()
                .into_scalar();
            let zeros: i64 = burn::tensor::ElementConversion::elem(zeros_t);
            let numel = kind.param(layer).shape().num_elements();
            weights.push(sparsity(
                format!("layers.{i}.{}", kind.torch_name()),
                numel,
                zeros as usize,
            ));
            layer_n += numel;
            layer_z += zeros as usize;
        }
        layers.push(sparsity(format!("layers.{i}"), layer_n, layer_z));
        all_n += layer_n;
        all_z += layer_z;
    }
    SparsityReport {
        weights,
        layers,
        total: sparsity("all".into(), all_n, all_z),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_breaks_ties_by_index() {
        assert_eq!(
            {
                let mut v = smallest(&[3.0, -1.0, 1.0, 0.5, -0.5], 3);
                v.sort();
                v
            },
            vec![1, 3, 4]
        );
        let mut v = smallest(&[1.0, 1.0, 1.0, 1.0], 2);
        v.sort();
        assert_eq!(v, vec![0, 1]);
        assert!(smallest(&[1.0], 0).is_empty());
    }

    #[test]
    fn counts_round_like_pytorch() {
        assert_eq!(prune_count(0.2, 10), 2);
        assert_eq!(prune_count(0.25, 10), 2); // Python's round(2.5) == 2
        assert_eq!(prune_count(0.35, 10), 4); // round(3.5) == 4
        assert_eq!(prune_count(0.0, 10), 0);
    }
}
