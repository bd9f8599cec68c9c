//! [`AttentionBias`]: all masks of one forward pass, validated and merged once into what the
//! chosen attention kernel takes, then shared by every layer.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, ElementConversion, Tensor};

use crate::error::{KilnError, Result};
use crate::execution::AttentionPath;
use crate::layout::note_device_read;
use crate::mask::{causal_mask, check_mask_shapes, padding_from_lengths, KeyPaddingMask, SrcMask};

/// PyTorch's mask arguments of one forward pass over a batch of `batch` sequences of `seq`
/// tokens, for layers of `nhead` heads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskInput<'a, B: Backend> {
    pub batch: usize,
    pub seq: usize,
    pub nhead: usize,
    pub src_mask: Option<&'a SrcMask<B>>,
    pub key_padding_mask: Option<&'a KeyPaddingMask<B>>,
    pub is_causal: bool,
}

/// All masks of one forward pass, merged once and shared by every layer.
///
/// Tensors are `[B | 1, H | 1, S, S]` and broadcast against the scores `[B, H, S, S]`.
#[derive(Debug, Clone)]
pub(crate) struct AttentionBias<B: Backend> {
    pub path: AttentionPath,
    /// Explicit path: everything (bool masks as `-inf`, float masks, causal) summed.
    /// Fused path: the float masks only.
    pub additive: Option<Tensor<B, 4>>,
    /// Fused path: the bool masks, OR-ed (`true` = masked).
    pub masked: Option<Tensor<B, 4, Bool>>,
    /// Fused and packed paths: causal masking is left to the kernel.
    pub causal: bool,
    /// Explicit and matmul paths: every query row has at least one key it may attend to, so
    /// the backend's own softmax is exact (else `masked_softmax`
    /// turns all-masked rows into zeros instead of NaN).
    pub rows_attend: bool,
    /// burn's fused op is the kernel ([`AttentionKernel::is_fused`](crate::AttentionKernel::is_fused)): the packed path uses
    /// burn's fused op per sequence (else matmuls on views), and heads are merged by one
    /// transposed copy (else head by head, see `merge_heads`).
    pub fused_kernel: bool,
    /// `H` of a per-head `[B * H, S, S]` mask, which every layer must then have.
    pub mask_heads: Option<usize>,
    /// Packed path: the real length of each sequence.
    pub lengths: Vec<usize>,
}

impl<B: Backend> AttentionBias<B> {
    /// Validates and merges the masks of a padded batch for `path` (not
    /// [`AttentionPath::Packed`]); `fused_kernel` as [`AttentionKernel::is_fused`](crate::AttentionKernel::is_fused)(crate::AttentionKernel::is_fused).
    pub fn new(
        masks: MaskInput<'_, B>,
        path: AttentionPath,
        fused_kernel: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let MaskInput {
            batch,
            seq,
            nhead,
            src_mask,
            key_padding_mask,
            is_causal,
        } = masks;
        // Whether every query row keeps a key, when the host knows: padding given as lengths
        // (a row attends iff its sequence has a real token; key 0 then satisfies causality).
        let rows_attend_on_host = match (src_mask, key_padding_mask) {
            (None, None) => Some(true),
            (None, Some(KeyPaddingMask::Lengths { lengths, .. })) => {
                Some(lengths.iter().all(|&len| len > 0))
            }
            _ => None,
        };
        let mut bools: Vec<Tensor<B, 4, Bool>> = Vec::new();
        let mut floats: Vec<Tensor<B, 4>> = Vec::new();
        let mut mask_heads = None;

        check_mask_shapes(batch, seq, nhead, src_mask, key_padding_mask)?;
        if let Some(mask) = src_mask {
            if mask.dims().len() == 3 {
                mask_heads = Some(nhead);
            }
            match mask.clone() {
                SrcMask::Bool2(t) => bools.push(t.reshape([1, 1, seq, seq])),
                // [B*H, S, S] -> [B, H, S, S]: PyTorch lays the batch-major index out as b*H + h.
                SrcMask::Bool3(t) => bools.push(t.reshape([batch, nhead, seq, seq])),
                SrcMask::Float2(t) => floats.push(t.reshape([1, 1, seq, seq])),
                SrcMask::Float3(t) => floats.push(t.reshape([batch, nhead, seq, seq])),
            }
        }
        if let Some(mask) = key_padding_mask {
            // [B, S] -> [B, 1, 1, S]: the same keys are masked for every head and query.
            match mask {
                KeyPaddingMask::Bool(t) => bools.push(t.clone().reshape([batch, 1, 1, seq])),
                KeyPaddingMask::Float(t) => floats.push(t.clone().reshape([batch, 1, 1, seq])),
                KeyPaddingMask::Lengths { lengths, .. } => bools.push(
                    padding_from_lengths::<B>(lengths, seq, device).reshape([batch, 1, 1, seq]),
                ),
            }
        }

        match path {
            AttentionPath::Packed => {
                unreachable!("packed batches are prepared by AttentionBias::packed")
            }
            AttentionPath::Fused => Ok(Self {
                lengths: Vec::new(),
                path,
                additive: floats.into_iter().reduce(broadcast_add),
                masked: bools.into_iter().reduce(broadcast_or),
                causal: is_causal,
                rows_attend: false,
                fused_kernel: true,
                mask_heads,
            }),
            AttentionPath::Explicit | AttentionPath::Matmul => {
                if is_causal {
                    bools.push(causal_mask::<B>(seq, device).reshape([1, 1, seq, seq]));
                }
                let from_bools = bools.into_iter().map(|mask| {
                    Tensor::<B, 4>::zeros(mask.dims(), device).mask_fill(mask, f32::NEG_INFINITY)
                });
                let additive = floats.into_iter().chain(from_bools).reduce(broadcast_add);
                // Unless the host knows, one read-back per forward pass: does every query row keep
                // a finite score? (Compared with f32::MIN, not -inf: on wgpu a comparison with an
                // infinite scalar held.)
                let rows_attend = rows_attend_on_host.unwrap_or_else(|| {
                    additive.as_ref().is_none_or(|bias| {
                        note_device_read();
                        bias.clone()
                            .max_dim(3)
                            .greater_elem(f32::MIN)
                            .all()
                            .into_scalar()
                            .elem::<bool>()
                    })
                });
                Ok(Self {
                    path,
                    additive,
                    masked: None,
                    causal: false,
                    rows_attend,
                    fused_kernel,
                    mask_heads,
                    lengths: Vec::new(),
                })
            }
        }
    }

    /// Masks of a packed batch: no padding left, only (optionally) causal masking.
    /// `fused_kernel`: attend with burn's fused op per sequence (else matmuls on views).
    pub fn packed(lengths: Vec<usize>, is_causal: bool, fused_kernel: bool) -> Self {
        Self {
            path: AttentionPath::Packed,
            additive: None,
            masked: None,
            causal: is_causal,
            rows_attend: true,
            fused_kernel,
            mask_heads: None,
            lengths,
        }
    }

    /// Checks that a layer with `heads` heads can use these masks.
    pub fn check_heads(&self, heads: usize) -> Result<()> {
        match self.mask_heads {
            Some(h) if h != heads => Err(KilnError::Config(format!(
                "a per-head src_mask has {h} heads, but a layer has {heads} (pruned models take [S, S] masks)"
            ))),
            _ => Ok(()),
        }
    }
}

/// The shape both `a` and `b` broadcast to.
fn broadcast_dims(a: [usize; 4], b: [usize; 4]) -> [usize; 4] {
    std::array::from_fn(|i| a[i].max(b[i]))
}

fn broadcast_add<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 4> {
    let dims = broadcast_dims(a.dims(), b.dims());
    a.expand(dims) + b.expand(dims)
}

fn broadcast_or<B: Backend>(a: Tensor<B, 4, Bool>, b: Tensor<B, 4, Bool>) -> Tensor<B, 4, Bool> {
    let dims = broadcast_dims(a.dims(), b.dims());
    a.expand(dims).bool_or(b.expand(dims))
}
