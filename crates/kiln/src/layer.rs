//! `TransformerEncoderLayer`: self-attention and feed-forward blocks, post- or pre-norm.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::{AttentionOutput, MultiHeadAttention};
use crate::bias::{AttentionBias, MaskInput};
use crate::config::{Activation, TransformerEncoderLayerConfig};
use crate::error::Result;
use crate::execution::{AttentionKernel, AttentionPath};
use crate::input::LinearInputs;
use crate::kernels::{linear_forward, try_fused_feed_forward, LinearKernel, Precision};
use crate::layout::{check_src, to_batch_first};
use crate::mask::{KeyPaddingMask, SrcMask};

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
    /// How `linear1` computes (f32 through burn unless a precision was set).
    pub linear1_kernel: LinearKernel,
    /// How `linear2` computes.
    pub linear2_kernel: LinearKernel,
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
            linear1_kernel: LinearKernel::default(),
            linear2_kernel: LinearKernel::default(),
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
        let device = src.device();
        let masks = MaskInput {
            batch,
            seq,
            nhead: self.self_attn.num_heads,
            src_mask,
            key_padding_mask: src_key_padding_mask,
            is_causal,
        };
        let training_dropout = B::ad_enabled(&device) && self.self_attn.dropout.prob > 0.0;
        let fused_kernel = AttentionKernel::Auto.is_fused::<B>(&device);
        let path = AttentionPath::padded(training_dropout, fused_kernel);
        let bias = AttentionBias::new(masks, path, fused_kernel, &device)?;
        let x = to_batch_first(src, self.batch_first);
        let y = self.forward_batch_first(x, &bias, false).output;
        Ok(to_batch_first(y, self.batch_first))
    }

    /// The layer on a batch-first input with prepared masks; with `capture`, also the inputs of
    /// its four Linear layers.
    ///
    /// # Shapes
    /// - `x`: `[B, S, E]`; output `[B, S, E]`, weights `[B, H, S, S]` on the explicit path
    pub(crate) fn forward_batch_first(
        &self,
        x: Tensor<B, 3>,
        bias: &AttentionBias<B>,
        capture: bool,
    ) -> LayerOutput<B> {
        // `attn_input` is the input of in_proj, `ff_input` that of linear1.
        let (attn_input, residual) = if self.norm_first {
            (self.norm1.forward(x.clone()), x)
        } else {
            (x.clone(), x)
        };
        let kept_attn_input = capture.then(|| attn_input.clone());
        let AttentionOutput {
            output: attn_output,
            weights,
            context,
        } = self.self_attn.forward(attn_input, bias, capture);
        let attn_output = self.dropout1.forward(attn_output);
        let (output, ff_input, hidden) = if self.norm_first {
            // x = x + sa(norm1(x)); x = x + ff(norm2(x))
            let x = residual + attn_output;
            let ff_input = self.norm2.forward(x.clone());
            let (ff, hidden) = self.feed_forward(ff_input.clone(), capture);
            (x + ff, ff_input, hidden)
        } else {
            // x = norm1(x + sa(x)); x = norm2(x + ff(x))
            let ff_input = self.norm1.forward(residual + attn_output);
            let (ff, hidden) = self.feed_forward(ff_input.clone(), capture);
            (self.norm2.forward(ff_input.clone() + ff), ff_input, hidden)
        };
        let linear_inputs = match (kept_attn_input, context, hidden) {
            (Some(in_proj), Some(out_proj), Some(linear2)) => Some(LinearInputs {
                in_proj,
                out_proj,
                linear1: ff_input,
                linear2,
            }),
            _ => None,
        };
        LayerOutput {
            output,
            weights,
            linear_inputs,
        }
    }

    /// `dropout2(linear2(dropout(activation(linear1(x)))))`, and with `capture` the input of
    /// `linear2` (`[B, S, F]`).
    fn feed_forward(&self, x: Tensor<B, 3>, capture: bool) -> (Tensor<B, 3>, Option<Tensor<B, 3>>) {
        // bf16 on burn-flex (no autodiff, so no dropout): one fused host computation, unless
        // the hidden values are asked for.
        let x = if capture {
            x
        } else {
            let (first, second) = (&self.linear1_kernel, &self.linear2_kernel);
            match try_fused_feed_forward(first, self.activation, second, x) {
                Ok(out) => return (self.dropout2.forward(out), None),
                Err(x) => x,
            }
        };
        let hidden = linear_forward(&self.linear1, &self.linear1_kernel, x);
        let hidden = match self.activation {
            Activation::Relu => crate::kernels::relu(hidden),
            Activation::Gelu => crate::kernels::gelu(hidden),
        };
        let hidden = self.dropout.forward(hidden);
        let kept = capture.then(|| hidden.clone());
        let out = linear_forward(&self.linear2, &self.linear2_kernel, hidden);
        (self.dropout2.forward(out), kept)
    }
}

impl<B: Backend> TransformerEncoderLayer<B> {
    /// Prepares the four Linear layers to compute in `precision` (see [`Precision`]): int8
    /// quantizes (bf16 rounds) their weights once, reading them from the device, and keeps the
    /// packed values; f32 packs the weights for kiln's f32 kernel where the backend runs it
    /// (burn-flex on a CPU with AVX-512), else goes back to burn's Linear (weights already
    /// rounded stay so).
    pub fn set_precision(&mut self, precision: Precision) {
        let attn = &mut self.self_attn;
        match precision {
            Precision::F32 => {
                attn.in_proj_kernel = LinearKernel::f32(&attn.in_proj);
                attn.out_proj_kernel = LinearKernel::f32(&attn.out_proj);
                self.linear1_kernel = LinearKernel::f32(&self.linear1);
                self.linear2_kernel = LinearKernel::f32(&self.linear2);
            }
            Precision::Int8 => {
                attn.in_proj_kernel = LinearKernel::int8(&mut attn.in_proj);
                attn.out_proj_kernel = LinearKernel::int8(&mut attn.out_proj);
                self.linear1_kernel = LinearKernel::int8(&mut self.linear1);
                self.linear2_kernel = LinearKernel::int8(&mut self.linear2);
            }
            Precision::Bf16 => {
                attn.in_proj_kernel = LinearKernel::bf16(&mut attn.in_proj);
                attn.out_proj_kernel = LinearKernel::bf16(&mut attn.out_proj);
                self.linear1_kernel = LinearKernel::bf16(&mut self.linear1);
                self.linear2_kernel = LinearKernel::bf16(&mut self.linear2);
            }
        }
    }

    /// The precision the layer's Linear layers compute in.
    pub fn precision(&self) -> Precision {
        self.linear1_kernel.precision()
    }
}

/// What one layer's forward pass returns.
pub(crate) struct LayerOutput<B: Backend> {
    /// `[B, S, E]`.
    pub output: Tensor<B, 3>,
    /// `[B, H, S, S]`, on the explicit attention path.
    pub weights: Option<Tensor<B, 4>>,
    /// The Linear layers' inputs, when captured.
    pub linear_inputs: Option<LinearInputs<B>>,
}
