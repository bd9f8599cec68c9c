//! What one forward pass takes and returns: PyTorch's inputs plus requests for extra outputs.
//! How it runs (packing, threads, attention kernel) is the encoder's
//! [`Execution`](crate::Execution), not part of the input.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::mask::{KeyPaddingMask, SrcMask};

/// The inputs of one forward pass, with PyTorch's argument names.
#[derive(Debug, Clone)]
pub struct EncoderInput<B: Backend> {
    /// `[B, S, E]` if `batch_first`, else `[S, B, E]`.
    pub src: Tensor<B, 3>,
    /// `[S, S]` or `[B * nhead, S, S]`, bool (`true` = masked) or float (added).
    pub src_mask: Option<SrcMask<B>>,
    /// `[B, S]`, `true` = padding; or the real length of each sequence
    /// ([`KeyPaddingMask::Lengths`]), which lets the encoder skip the padding without reading
    /// a mask back from the device.
    pub src_key_padding_mask: Option<KeyPaddingMask<B>>,
    /// Apply the causal mask.
    pub is_causal: bool,
    /// Return each layer's per-head attention weights.
    pub need_weights: bool,
    /// Return each layer's output (before the final norm).
    pub output_hidden_states: bool,
    /// Return the inputs of every layer's Linear layers ([`LinearInputs`], batch-first,
    /// padding included); padding is then never skipped.
    pub output_linear_inputs: bool,
}

impl<B: Backend> EncoderInput<B> {
    /// Input `src` with no masks.
    pub fn new(src: Tensor<B, 3>) -> Self {
        Self {
            src,
            src_mask: None,
            src_key_padding_mask: None,
            is_causal: false,
            need_weights: false,
            output_hidden_states: false,
            output_linear_inputs: false,
        }
    }
    /// Sets `src_mask` (bool or float, 2-D or 3-D).
    pub fn src_mask(mut self, mask: impl Into<SrcMask<B>>) -> Self {
        self.src_mask = Some(mask.into());
        self
    }
    /// Sets `src_key_padding_mask`.
    pub fn key_padding_mask(mut self, mask: impl Into<KeyPaddingMask<B>>) -> Self {
        self.src_key_padding_mask = Some(mask.into());
        self
    }
    /// Sets `is_causal`.
    pub fn causal(mut self, is_causal: bool) -> Self {
        self.is_causal = is_causal;
        self
    }
    /// Asks for per-layer attention weights.
    pub fn need_weights(mut self, yes: bool) -> Self {
        self.need_weights = yes;
        self
    }
    /// Asks for per-layer hidden states.
    pub fn output_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }
    /// Asks for the inputs of every layer's Linear layers.
    pub fn output_linear_inputs(mut self, yes: bool) -> Self {
        self.output_linear_inputs = yes;
        self
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// The encoder's output, in the input's layout (`[B, S, E]` or `[S, B, E]`).
    pub output: Tensor<B, 3>,
    /// Per layer, the attention weights `[B, H, S, S]` (PyTorch's `need_weights=True,
    /// average_attn_weights=False`), when asked for.
    pub attentions: Option<Vec<Tensor<B, 4>>>,
    /// Per layer, its output in the input's layout (before the final norm), when asked for.
    pub hidden_states: Option<Vec<Tensor<B, 3>>>,
    /// Per layer, the inputs of its Linear layers (batch-first `[B, S, ·]`), when asked for.
    pub linear_inputs: Option<Vec<LinearInputs<B>>>,
}

/// The inputs of one layer's four Linear layers, as one forward pass saw them: what
/// activation-aware pruning (Wanda: `|W_ij| * ||X_j||`) and layer-wise reconstruction read.
/// Batch-first, padding positions included (callers mask them out).
#[derive(Debug, Clone)]
pub struct LinearInputs<B: Backend> {
    /// Input of `self_attn.in_proj` `[B, S, E]`: the layer input (post-norm) or `norm1` of it
    /// (pre-norm).
    pub in_proj: Tensor<B, 3>,
    /// Input of `self_attn.out_proj` `[B, S, H*Dh]`: the heads' contexts side by side.
    pub out_proj: Tensor<B, 3>,
    /// Input of `linear1` `[B, S, E]`: `norm1(x + sa(x))` (post-norm) or `norm2(x)` (pre-norm).
    pub linear1: Tensor<B, 3>,
    /// Input of `linear2` `[B, S, F]`: the activation's output.
    pub linear2: Tensor<B, 3>,
}
