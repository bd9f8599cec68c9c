//! Attention masks with PyTorch's semantics, validated once per forward pass.
//!
//! Semantics, as in `torch.nn.TransformerEncoder`:
//! - a **bool** mask marks with `true` the positions that may **not** be attended to;
//! - a **float** mask is **added** to the attention scores (`-inf` forbids a position);
//! - `src_mask` is `[S, S]` (shared by the batch and heads) or `[B * nhead, S, S]` (one per
//!   batch element and head, batch-major: index `b * nhead + h`);
//! - `src_key_padding_mask` is `[B, S]`, `true` (or `-inf`) marking padding keys;
//! - `is_causal` forbids every key after the query (`j > i`). kiln applies it together with any
//!   `src_mask` given (PyTorch treats the flag as a hint that `src_mask` is already causal).
//!
//! A query row whose keys are **all** masked gets all-zero attention weights, so its attention
//! output is just the output projection's bias: finite, never NaN (PyTorch's math path yields
//! NaN there; its nested-tensor fast path yields zeros for padded rows).

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, ElementConversion, Tensor};

use crate::error::{KilnError, Result};

/// `src_mask`: a bool or float mask, `[S, S]` or `[B * nhead, S, S]`.
#[derive(Debug, Clone)]
pub enum SrcMask<B: Backend> {
    /// `[S, S]`, `true` = may not attend.
    Bool2(Tensor<B, 2, Bool>),
    /// `[B * nhead, S, S]`, `true` = may not attend.
    Bool3(Tensor<B, 3, Bool>),
    /// `[S, S]`, added to the scores.
    Float2(Tensor<B, 2>),
    /// `[B * nhead, S, S]`, added to the scores.
    Float3(Tensor<B, 3>),
}

impl<B: Backend> SrcMask<B> {
    /// The causal mask of PyTorch's `generate_square_subsequent_mask(S)` as a bool mask:
    /// `true` above the diagonal.
    pub fn causal(seq_len: usize, device: &B::Device) -> Self {
        Self::Bool2(causal_mask(seq_len, device))
    }

    /// The mask's dimensions.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Self::Bool2(t) => t.dims().to_vec(),
            Self::Bool3(t) => t.dims().to_vec(),
            Self::Float2(t) => t.dims().to_vec(),
            Self::Float3(t) => t.dims().to_vec(),
        }
    }
}

impl<B: Backend> From<Tensor<B, 2, Bool>> for SrcMask<B> {
    fn from(t: Tensor<B, 2, Bool>) -> Self {
        Self::Bool2(t)
    }
}
impl<B: Backend> From<Tensor<B, 3, Bool>> for SrcMask<B> {
    fn from(t: Tensor<B, 3, Bool>) -> Self {
        Self::Bool3(t)
    }
}
impl<B: Backend> From<Tensor<B, 2>> for SrcMask<B> {
    fn from(t: Tensor<B, 2>) -> Self {
        Self::Float2(t)
    }
}
impl<B: Backend> From<Tensor<B, 3>> for SrcMask<B> {
    fn from(t: Tensor<B, 3>) -> Self {
        Self::Float3(t)
    }
}

/// `src_key_padding_mask`: `[B, S]`, bool (`true` = padding) or float (added to the scores).
#[derive(Debug, Clone)]
pub enum KeyPaddingMask<B: Backend> {
    /// `true` marks a padding key.
    Bool(Tensor<B, 2, Bool>),
    /// Added to the scores of each key.
    Float(Tensor<B, 2>),
}

impl<B: Backend> KeyPaddingMask<B> {
    /// The lengths of a bool mask that only pads at the end of each sequence (each row is
    /// `false..., true...`), read back from the device; `None` for any other mask.
    pub fn suffix_lengths(&self) -> Option<Vec<usize>> {
        let Self::Bool(mask) = self else {
            return None;
        };
        let [batch, seq] = mask.dims();
        let values: Vec<bool> = mask
            .clone()
            .int()
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .ok()?
            .into_iter()
            .map(|v| v != 0)
            .collect();
        let mut lengths = Vec::with_capacity(batch);
        for row in values.chunks(seq) {
            let len = row.iter().position(|&padded| padded).unwrap_or(seq);
            if row[len..].iter().any(|&padded| !padded) {
                return None;
            }
            lengths.push(len);
        }
        Some(lengths)
    }

    /// A padding mask from sequence lengths: key `j` of item `b` is padding when `j >= lengths[b]`.
    pub fn from_lengths(lengths: &[usize], seq_len: usize, device: &B::Device) -> Self {
        Self::Bool(padding_from_lengths(lengths, seq_len, device))
    }

    /// The mask's dimensions.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Self::Bool(t) => t.dims(),
            Self::Float(t) => t.dims(),
        }
    }
}

impl<B: Backend> From<Tensor<B, 2, Bool>> for KeyPaddingMask<B> {
    fn from(t: Tensor<B, 2, Bool>) -> Self {
        Self::Bool(t)
    }
}
impl<B: Backend> From<Tensor<B, 2>> for KeyPaddingMask<B> {
    fn from(t: Tensor<B, 2>) -> Self {
        Self::Float(t)
    }
}

/// A `[B, S]` bool padding mask from sequence lengths: `[b, j]` is `true` (padding, masked out)
/// when `j >= lengths[b]`.
pub fn padding_from_lengths<B: Backend>(
    lengths: &[usize],
    seq_len: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let values: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..seq_len).map(move |j| j >= len))
        .collect();
    Tensor::from_data(
        burn::tensor::TensorData::new(values, [lengths.len(), seq_len]),
        device,
    )
}

/// `[S, S]`, `true` where key `j` comes after query `i` (`j > i`): PyTorch's
/// `generate_square_subsequent_mask` as a bool mask.
pub fn causal_mask<B: Backend>(seq_len: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    // burn's `tril_mask(_, 0)` is `false` on and below the diagonal, `true` above it.
    Tensor::<B, 2, Bool>::tril_mask([seq_len, seq_len], 0, device)
}

/// Which attention kernel the masks are prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttentionPath {
    /// Scores are materialised and returned (weights asked for, or dropout in training): one
    /// additive bias.
    Explicit,
    /// Scores are materialised by batched matmuls on views of the packed projection, weights
    /// not returned: one additive bias. burn-flex's choice (see [`AttentionKernel`]).
    Matmul,
    /// burn's fused `attention` op: a bool mask, an additive bias and a causal flag.
    Fused,
    /// Padding removed: sequences of `lengths` packed end to end, attention per sequence.
    Packed,
}

/// How attention is computed when its weights are not needed (inference, or training without
/// attention dropout). Every choice gives the same outputs (to float rounding); only speed
/// differs. Set with [`EncoderInput::attention_kernel`](crate::EncoderInput::attention_kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// What measured fastest on the backend (`kiln bench` prints both): `Matmul` on burn-flex,
    /// `Fused` elsewhere (the GPU backends' flash-attention kernels; on ndarray burn's op is
    /// the same math as `Matmul` and ran slightly faster).
    #[default]
    Auto,
    /// burn's fused `burn::tensor::module::attention` op.
    Fused,
    /// Two batched matmuls on views of the packed projection and the backend's softmax.
    Matmul,
}

impl AttentionKernel {
    /// Whether this choice uses burn's fused op on this backend.
    pub fn is_fused<B: Backend>(self, device: &B::Device) -> bool {
        match self {
            Self::Auto => !prefers_matmul_attention::<B>(device),
            Self::Fused => true,
            Self::Matmul => false,
        }
    }
}

/// Whether attention by matmuls beats burn's fused op on this backend: on burn-flex (possibly
/// under autodiff), whose fused op runs one `(batch, head)` at a time on one thread after
/// copying `q`, `k`, `v` element by element into `[B, H, S, Dh]`; the matmul path hands strided
/// views to flex's multi-threaded batched matmul (no copy) and uses its row-parallel softmax.
/// Measured 1.28x faster at "base" and 1.33x at "small" (docs/benchmarks.md).
fn prefers_matmul_attention<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("flex")
}

impl AttentionPath {
    /// The path of a forward pass: `Explicit` when the weights are needed (asked for, or
    /// dropout on them in training); otherwise `Fused` or `Matmul` as `fused_kernel` (the
    /// kernel's [`AttentionKernel::is_fused`] on the backend) says.
    pub fn choose(weights_needed: bool, fused_kernel: bool) -> Self {
        if weights_needed {
            Self::Explicit
        } else if fused_kernel {
            Self::Fused
        } else {
            Self::Matmul
        }
    }
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
    /// the backend's own softmax is exact (else [`masked_softmax`](crate::attention::masked_softmax)
    /// turns all-masked rows into zeros instead of NaN).
    pub rows_attend: bool,
    /// burn's fused op is the kernel ([`AttentionKernel::is_fused`]): the packed path uses
    /// burn's fused op per sequence (else matmuls on views), and heads are merged by one
    /// transposed copy (else head by head, see `merge_heads`).
    pub fused_kernel: bool,
    /// `H` of a per-head `[B * H, S, S]` mask, which every layer must then have.
    pub mask_heads: Option<usize>,
    /// Packed path: the real length of each sequence.
    pub lengths: Vec<usize>,
}

/// Fails with [`KilnError::Shape`] unless `src_mask` is `[S, S]` or `[B * nhead, S, S]` and
/// `key_padding_mask` is `[B, S]`.
pub(crate) fn check_mask_shapes<B: Backend>(
    batch: usize,
    seq: usize,
    nhead: usize,
    src_mask: Option<&SrcMask<B>>,
    key_padding_mask: Option<&KeyPaddingMask<B>>,
) -> Result<()> {
    if let Some(mask) = src_mask {
        let dims = mask.dims();
        let ok = if dims.len() == 3 {
            dims == [batch * nhead, seq, seq]
        } else {
            dims == [seq, seq]
        };
        if !ok {
            return Err(KilnError::shape(
                "src_mask",
                &dims,
                format!(
                    "[S, S] = [{seq}, {seq}] or [B*nhead, S, S] = [{}, {seq}, {seq}]",
                    batch * nhead
                ),
            ));
        }
    }
    if let Some(mask) = key_padding_mask {
        let dims = mask.dims();
        if dims != [batch, seq] {
            return Err(KilnError::shape(
                "src_key_padding_mask",
                &dims,
                format!("[B, S] = [{batch}, {seq}]"),
            ));
        }
    }
    Ok(())
}

impl<B: Backend> AttentionBias<B> {
    /// Validates and merges the masks of a batch of `batch` sequences of `seq` tokens, for
    /// `path`; `fused_kernel` as given to [`AttentionPath::choose`].
    #[allow(clippy::too_many_arguments)] // PyTorch's mask arguments, plus where they go
    pub fn new(
        batch: usize,
        seq: usize,
        nhead: usize,
        src_mask: Option<&SrcMask<B>>,
        key_padding_mask: Option<&KeyPaddingMask<B>>,
        is_causal: bool,
        path: AttentionPath,
        fused_kernel: bool,
        device: &B::Device,
    ) -> Result<Self> {
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
            match mask.clone() {
                KeyPaddingMask::Bool(t) => bools.push(t.reshape([batch, 1, 1, seq])),
                KeyPaddingMask::Float(t) => floats.push(t.reshape([batch, 1, 1, seq])),
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
                // One read-back per forward pass: does every query row keep a finite score? (Compared
                // with f32::MIN, not -inf: on wgpu a comparison with an infinite scalar held.)
                let rows_attend = additive.as_ref().is_none_or(|bias| {
                    bias.clone()
                        .max_dim(3)
                        .greater_elem(f32::MIN)
                        .all()
                        .into_scalar()
                        .elem::<bool>()
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
