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
use burn::tensor::{Bool, Tensor};

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

    /// A bool mask given row-major on the host (`true` = may not attend): [`Self::Bool2`] for
    /// a `shape` of `[S, S]`, [`Self::Bool3`] for `[B * nhead, S, S]`, `None` for any other
    /// rank. `values.len()` must be the product of `shape`.
    pub fn from_bool_values(
        values: Vec<bool>,
        shape: &[usize],
        device: &B::Device,
    ) -> Option<Self> {
        debug_assert_eq!(values.len(), shape.iter().product::<usize>());
        let data = burn::tensor::TensorData::new(values, shape.to_vec());
        match shape.len() {
            2 => Some(Self::Bool2(Tensor::from_data(data, device))),
            3 => Some(Self::Bool3(Tensor::from_data(data, device))),
            _ => None,
        }
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

/// `src_key_padding_mask`: `[B, S]`, bool (`true` = padding) or float (added to the scores),
/// or the real length of each sequence.
#[derive(Debug, Clone)]
pub enum KeyPaddingMask<B: Backend> {
    /// `true` marks a padding key.
    Bool(Tensor<B, 2, Bool>),
    /// Added to the scores of each key.
    Float(Tensor<B, 2>),
    /// Padding at the end of each sequence, given on the host: sequence `b` has `lengths[b]`
    /// real tokens out of `seq_len`. The same mask as the bool one
    /// [`padding_from_lengths`] builds, but the encoder can skip the padding with it
    /// ([`Execution::pack_padding`](crate::Execution::pack_padding)) without reading a mask
    /// back from the device, and builds the bool tensor only where the padded path needs it.
    Lengths {
        /// Real tokens per sequence, each at most `seq_len`.
        lengths: Vec<usize>,
        /// `S`, the padded length.
        seq_len: usize,
    },
}

impl<B: Backend> KeyPaddingMask<B> {
    /// Padding after `lengths[b]` real tokens of sequence `b` (key `j` is padding when
    /// `j >= lengths[b]`), kept on the host ([`Self::Lengths`]).
    pub fn from_lengths(lengths: &[usize], seq_len: usize) -> Self {
        Self::Lengths {
            lengths: lengths.to_vec(),
            seq_len,
        }
    }

    /// A `[B, S]` bool mask given row-major on the host (`true` = padding). A mask whose rows
    /// only pad their end becomes lengths ([`Self::Lengths`]): the same mask, built on the
    /// device only where the encoder's path needs it; any other becomes a bool tensor on
    /// `device`. `values.len()` must be `batch * seq`.
    pub fn from_bool_values(
        values: Vec<bool>,
        [batch, seq]: [usize; 2],
        device: &B::Device,
    ) -> Self {
        debug_assert_eq!(values.len(), batch * seq);
        match suffix_lengths(&values, seq) {
            Some(lengths) if lengths.len() == batch => Self::from_lengths(&lengths, seq),
            _ => Self::Bool(Tensor::from_data(
                burn::tensor::TensorData::new(values, [batch, seq]),
                device,
            )),
        }
    }

    /// The mask's dimensions, `[B, S]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Self::Bool(t) => t.dims(),
            Self::Float(t) => t.dims(),
            Self::Lengths { lengths, seq_len } => [lengths.len(), *seq_len],
        }
    }

    /// The sequence lengths, for a mask given as lengths.
    pub fn lengths(&self) -> Option<&[usize]> {
        match self {
            Self::Lengths { lengths, .. } => Some(lengths),
            _ => None,
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

/// The real lengths of a row-major `[B, S]` bool mask whose rows are `false..., true...`
/// (`true` = padding); `None` if any row has padding before a real token (or `seq` is 0).
pub fn suffix_lengths(values: &[bool], seq: usize) -> Option<Vec<usize>> {
    if seq == 0 {
        return None;
    }
    values
        .chunks(seq)
        .map(|row| {
            let len = row.iter().position(|&padded| padded).unwrap_or(seq);
            row[len..].iter().all(|&padded| padded).then_some(len)
        })
        .collect()
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
        if let Some(&len) = mask
            .lengths()
            .and_then(|l| l.iter().find(|&&len| len > seq))
        {
            return Err(KilnError::shape(
                "src_key_padding_mask",
                &[len],
                format!("sequence lengths of at most S = {seq}"),
            ));
        }
    }
    Ok(())
}
