//! `TransformerEncoderLayer`: self-attention and feed-forward blocks, post- or pre-norm.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::MultiHeadAttention;
use crate::config::{Activation, TransformerEncoderLayerConfig};
use crate::encoder::{check_src, to_batch_first};
use crate::error::Result;
use crate::mask::{AttentionBias, AttentionPath, KeyPaddingMask, SrcMask};

/// One encoder layer, the counterpart of `torch.nn.TransformerEncoderLayer`, with the same
/// parameter names (`self_attn`, `linear1`, `linear2`, `norm1`, `norm2`).
///
/// - post-norm (`norm_first = false`): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`
/// - pre-norm (`norm_first = true`): `x = x + sa(norm1(x)); x = x + ff(norm2(x))`
#[derive(Module, Debug)]
pub struct TransformerEncoderLayer<B: Backend> {
    /// Self-attention block.
    pub self_attn: MultiHeadAttention<B>,
    /// Feed-forward up-projection `E -> F`.
    pub linear1: Linear<B>,
    /// Feed-forward down-projection `F -> E`.
    pub linear2: Linear<B>,
    /// LayerNorm of the attention block.
    pub norm1: LayerNorm<B>,
    /// LayerNorm of the feed-forward block.
    pub norm2: LayerNorm<B>,
    /// Dropout after the activation.
    pub dropout: Dropout,
    /// Dropout on the attention branch.
    pub dropout1: Dropout,
    /// Dropout on the feed-forward branch.
    pub dropout2: Dropout,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Pre-norm (`true`) or post-norm.
    pub norm_first: bool,
    /// Layout of the tensors handed to [`Self::forward`].
    pub batch_first: bool,
}

impl TransformerEncoderLayerConfig {
    /// A new layer, initialised as PyTorch does.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerEncoderLayer<B> {
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_bias(self.bias)
                .init(device)
        };
        let norm = || {
            LayerNormConfig::new(self.d_model)
                .with_epsilon(self.layer_norm_eps)
                .with_bias(self.bias)
                .init(device)
        };
        let dropout = || DropoutConfig::new(self.dropout).init();
        TransformerEncoderLayer {
            self_attn: self.attention_config().init(device),
            linear1: linear(self.d_model, self.dim_feedforward),
            linear2: linear(self.dim_feedforward, self.d_model),
            norm1: norm(),
            norm2: norm(),
            dropout: dropout(),
            dropout1: dropout(),
            dropout2: dropout(),
            activation: self.activation,
            norm_first: self.norm_first,
            batch_first: self.batch_first,
        }
    }
}

impl<B: Backend> TransformerEncoderLayer<B> {
    /// PyTorch's `forward(src, src_mask, src_key_padding_mask, is_causal)` on this one layer.
    ///
    /// # Shapes
    /// - `src`: `[B, S, E]` if `batch_first`, else `[S, B, E]`; output: the same
    /// - `src_mask`: `[S, S]` or `[B * nhead, S, S]`; `src_key_padding_mask`: `[B, S]`
    pub fn forward(
        &self,
        src: Tensor<B, 3>,
        src_mask: Option<&SrcMask<B>>,
        src_key_padding_mask: Option<&KeyPaddingMask<B>>,
        is_causal: bool,
    ) -> Result<Tensor<B, 3>> {
        let d_model = self.linear1.weight.dims()[0];
        let [batch, seq] = check_src(&src, d_model, self.batch_first)?;
        let heads = self.self_attn.num_heads;
        let path = if B::ad_enabled(&src.device()) && self.self_attn.dropout.prob > 0.0 {
            AttentionPath::Explicit
        } else {
            AttentionPath::Fused
        };
        let bias = AttentionBias::new(
            batch,
            seq,
            heads,
            src_mask,
            src_key_padding_mask,
            is_causal,
            path,
            &src.device(),
        )?;
        let x = to_batch_first(src, self.batch_first);
        let (y, _) = self.forward_batch_first(x, &bias);
        Ok(to_batch_first(y, self.batch_first))
    }

    /// The layer on a batch-first input with prepared masks.
    ///
    /// # Shapes
    /// - `x`: `[B, S, E]`; output `[B, S, E]`, weights `[B, H, S, S]` on the explicit path
    pub(crate) fn forward_batch_first(
        &self,
        x: Tensor<B, 3>,
        bias: &AttentionBias<B>,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 4>>) {
        if self.norm_first {
            let attn = self.self_attn.forward(self.norm1.forward(x.clone()), bias);
            let x = x + self.dropout1.forward(attn.output);
            let x = x.clone() + self.feed_forward(self.norm2.forward(x));
            (x, attn.weights)
        } else {
            let attn = self.self_attn.forward(x.clone(), bias);
            let x = self.norm1.forward(x + self.dropout1.forward(attn.output));
            let x = self.norm2.forward(x.clone() + self.feed_forward(x));
            (x, attn.weights)
        }
    }

    /// `dropout2(linear2(dropout(activation(linear1(x)))))`.
    fn feed_forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = self.linear1.forward(x);
        let hidden = match self.activation {
            Activation::Relu => relu(hidden),
            Activation::Gelu => gelu(hidden),
        };
        let out = self.linear2.forward(self.dropout.forward(hidden));
        self.dropout2.forward(out)
    }
}
