//! `MultiHeadAttention`: self-attention with PyTorch's packed input projection.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::bias::AttentionBias;
use crate::config::MultiHeadAttentionConfig;
use crate::execution::AttentionPath;
use crate::kernels::{linear_forward, try_packed_attention, LinearKernel};

/// Multi-head self-attention, the counterpart of `torch.nn.MultiheadAttention` used as
/// self-attention (`query = key = value`).
///
/// Parameters (burn stores Linear weights as `[in, out]`, the transpose of PyTorch):
/// - `in_proj`: `[E, 3 * H * Dh]` weight, `[3 * H * Dh]` bias: PyTorch's `in_proj_weight`
///   (`[3E, E]`, rows `q | k | v`) and `in_proj_bias`;
/// - `out_proj`: `[H * Dh, E]`: PyTorch's `out_proj.weight` / `out_proj.bias`.
#[derive(Module, Debug)]
pub struct MultiHeadAttention<B: Backend> {
    /// The packed query/key/value projection.
    pub in_proj: Linear<B>,
    /// The output projection.
    pub out_proj: Linear<B>,
    /// Dropout on the attention weights (training only).
    pub dropout: Dropout,
    /// Number of heads `H`.
    pub num_heads: usize,
    /// Width of one head `Dh`.
    pub head_dim: usize,
    /// How `in_proj` computes (f32 through burn unless a precision was set).
    pub in_proj_kernel: LinearKernel,
    /// How `out_proj` computes.
    pub out_proj_kernel: LinearKernel,
}

impl MultiHeadAttentionConfig {
    /// A new attention block initialised as PyTorch does: `in_proj_weight` Xavier-uniform,
    /// `out_proj.weight` Kaiming-uniform (`U(-1/sqrt(in), 1/sqrt(in))`), biases zero.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiHeadAttention<B> {
        let head_dim = self.resolved_head_dim();
        let inner = self.num_heads * head_dim;
        let mut in_proj = LinearConfig::new(self.embed_dim, 3 * inner)
            .with_bias(self.bias)
            .with_initializer(Initializer::XavierUniform { gain: 1.0 })
            .init(device);
        let mut out_proj = LinearConfig::new(inner, self.embed_dim)
            .with_bias(self.bias)
            .init(device);
        for bias in [&mut in_proj.bias, &mut out_proj.bias]
            .into_iter()
            .flatten()
        {
            *bias = Initializer::Zeros.init(bias.dims(), device);
        }
        MultiHeadAttention {
            in_proj,
            out_proj,
            dropout: DropoutConfig::new(self.dropout).init(),
            num_heads: self.num_heads,
            head_dim,
            in_proj_kernel: LinearKernel::default(),
            out_proj_kernel: LinearKernel::default(),
        }
    }
}

/// Output of [`MultiHeadAttention::forward`].
#[derive(Debug, Clone)]
pub(crate) struct AttentionOutput<B: Backend> {
    /// `[B, S, E]`.
    pub output: Tensor<B, 3>,
    /// Per-head attention weights `[B, H, S, S]`, when asked for.
    pub weights: Option<Tensor<B, 4>>,
    /// The input of `out_proj` (the heads' contexts side by side, `[B, S, H*Dh]`), when asked
    /// for (activation-aware pruning reads it).
    pub context: Option<Tensor<B, 3>>,
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Self-attention over a batch-first input.
    ///
    /// # Shapes
    /// - `x`: `[B, S, E]`
    /// - output: `[B, S, E]`; weights `[B, H, S, S]` (rows sum to 1, or 0 where every key is masked)
    /// - context (with `keep_context`): `[B, S, H*Dh]`
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        bias: &AttentionBias<B>,
        keep_context: bool,
    ) -> AttentionOutput<B> {
        if let AttentionPath::Packed = bias.path {
            return self.forward_packed(x, bias, keep_context);
        }
        let [batch, seq, _] = x.dims();
        let (h, dh) = (self.num_heads, self.head_dim);
        let qkv = linear_forward(&self.in_proj, &self.in_proj_kernel, x);
        // Without masks, a batch is `B` sequences of length `S` end to end: on the CPU, the
        // packed kernel computes every sequence and head at once.
        let unmasked = bias.additive.is_none() && bias.masked.is_none();
        let qkv = if unmasked && bias.path != AttentionPath::Explicit {
            let packed = qkv.reshape([1, batch * seq, 3 * h * dh]);
            match try_packed_attention(
                packed,
                &vec![seq; batch],
                h,
                dh,
                bias.causal,
                self.in_proj_kernel.precision(),
            ) {
                Ok(context) => {
                    // [1, B*S, H*Dh] -> [B, S, H*Dh]
                    let context = context.reshape([batch, seq, h * dh]);
                    return self.project(context, None, keep_context);
                }
                Err(packed) => packed.reshape([batch, seq, 3 * h * dh]),
            }
        } else {
            qkv
        };

        // [B, S, 3*H*Dh] -> [B, S, 3, H, Dh] -> [3, B, H, S, Dh] (a view: nothing is copied)
        let qkv = qkv.reshape([batch, seq, 3, h, dh]).permute([2, 0, 3, 1, 4]);
        // Each [1, B, H, S, Dh], still views.
        let [q, k, v] = [0, 1, 2].map(|i| qkv.clone().narrow(0, i, 1));

        let (context, weights) = match bias.path {
            AttentionPath::Fused | AttentionPath::Packed => {
                let full = [batch, h, seq, seq];
                let [q, k, v] = [q, k, v].map(|t| t.reshape([batch, h, seq, dh]));
                let context = attention(
                    q,
                    k,
                    v,
                    bias.masked.clone().map(|m| m.expand(full)),
                    bias.additive.clone().map(|b| b.expand(full)),
                    AttentionModuleOptions {
                        scale: None,
                        softcap: None,
                        is_causal: bias.causal,
                    },
                );
                (context, None)
            }
            AttentionPath::Matmul | AttentionPath::Explicit => {
                let (context, weights) =
                    self.matmul_attention(q, k, v, bias.additive.as_ref(), false, bias.rows_attend);
                let weights = (bias.path == AttentionPath::Explicit).then_some(weights);
                (context, weights)
            }
        };

        let context = merge_heads(context, bias.fused_kernel);
        self.project(context, weights, keep_context)
    }

    /// `softmax(q kᵀ / sqrt(Dh) + bias) v` by two batched matmuls on views, and the attention
    /// weights (after dropout is applied to the copy used for the context, as PyTorch does).
    ///
    /// `rows_attend` says every query row keeps at least one finite score, so the backend's
    /// softmax is exact; otherwise [`masked_softmax`] gives all-masked rows zero weights.
    ///
    /// # Shapes
    /// - `q`, `k`, `v`: `[1, B, H, S, Dh]`, any strides (views of the packed projection)
    /// - `additive`: broadcastable to `[B, H, S, S]`
    /// - returns the context `[B, H, S, Dh]` and the weights `[B, H, S, S]`
    fn matmul_attention(
        &self,
        q: Tensor<B, 5>,
        k: Tensor<B, 5>,
        v: Tensor<B, 5>,
        additive: Option<&Tensor<B, 4>>,
        causal: bool,
        rows_attend: bool,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [_, batch, h, seq, dh] = q.dims();
        let scale = (dh as f64).powf(-0.5);
        // [1, B, H, S, Dh] x [1, B, H, Dh, S] -> [1, B, H, S, S] -> [B, H, S, S]
        let mut scores = q
            .matmul(k.swap_dims(3, 4))
            .reshape([batch, h, seq, seq])
            .mul_scalar(scale);
        if let Some(additive) = additive {
            scores = scores + additive.clone().expand([batch, h, seq, seq]);
        }
        if causal {
            let future = crate::mask::causal_mask::<B>(seq, &scores.device())
                .reshape([1, 1, seq, seq])
                .expand([batch, h, seq, seq]);
            scores = scores.mask_fill(future, f32::NEG_INFINITY);
        }
        let weights = if rows_attend {
            softmax(scores, 3)
        } else {
            masked_softmax(scores)
        };
        // [1, B, H, S, S] x [1, B, H, S, Dh] -> [1, B, H, S, Dh] -> [B, H, S, Dh]
        let context = self
            .dropout
            .forward(weights.clone())
            .reshape([1, batch, h, seq, seq])
            .matmul(v)
            .reshape([batch, h, seq, dh]);
        (context, weights)
    }
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Self-attention over sequences packed end to end, without padding.
    ///
    /// # Shapes
    /// - `x`: `[1, N, E]`, `N = sum(lengths)`: sequence `i` is rows `offset_i..offset_i + len_i`
    /// - output: `[1, N, E]`; context (with `keep_context`): `[1, N, H*Dh]`
    fn forward_packed(
        &self,
        x: Tensor<B, 3>,
        bias: &AttentionBias<B>,
        keep_context: bool,
    ) -> AttentionOutput<B> {
        let (h, dh) = (self.num_heads, self.head_dim);
        // The projections run once over all real tokens: [1, N, 3*H*Dh].
        let qkv = linear_forward(&self.in_proj, &self.in_proj_kernel, x);
        // On the CPU, one kernel for every sequence and head (host memory, no per-sequence ops).
        let qkv = match try_packed_attention(
            qkv,
            &bias.lengths,
            h,
            dh,
            bias.causal,
            self.in_proj_kernel.precision(),
        ) {
            Ok(context) => return self.project(context, None, keep_context),
            Err(qkv) => qkv,
        };
        let mut contexts = Vec::with_capacity(bias.lengths.len());
        let mut offset = 0;
        for &len in bias.lengths.iter().filter(|&&len| len > 0) {
            // [1, len, 3*H*Dh] -> [1, len, 3, H, Dh] -> [3, 1, H, len, Dh] (a view)
            let seq_qkv = qkv
                .clone()
                .narrow(1, offset, len)
                .reshape([1, len, 3, h, dh])
                .permute([2, 0, 3, 1, 4]);
            // Each [1, 1, H, len, Dh].
            let [q, k, v] = [0, 1, 2].map(|i| seq_qkv.clone().narrow(0, i, 1));
            let context = if bias.fused_kernel {
                let options = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: bias.causal,
                };
                let [q, k, v] = [q, k, v].map(|t| t.reshape([1, h, len, dh]));
                attention(q, k, v, None, None, options)
            } else {
                self.matmul_attention(q, k, v, None, bias.causal, true).0
            };
            contexts.push(merge_heads(context, bias.fused_kernel));
            offset += len;
        }
        let context = Tensor::cat(contexts, 1);
        self.project(context, None, keep_context)
    }

    /// `out_proj` of the heads' contexts side by side, with the weights, and the context itself
    /// when `keep_context`.
    ///
    /// # Shapes
    /// - `context`: `[B, S, H*Dh]`; output `[B, S, E]`
    fn project(
        &self,
        context: Tensor<B, 3>,
        weights: Option<Tensor<B, 4>>,
        keep_context: bool,
    ) -> AttentionOutput<B> {
        AttentionOutput {
            context: keep_context.then(|| context.clone()),
            output: linear_forward(&self.out_proj, &self.out_proj_kernel, context),
            weights,
        }
    }
}

/// The heads' contexts side by side: `[B, H, S, Dh] -> [B, S, H*Dh]`.
///
/// With `one_copy`, one transposed copy (`swap_dims(1, 2)`). Otherwise head by head: each
/// head's `[B, S, Dh]` slice is a 2-D strided copy and the concatenation copies rows of `Dh`,
/// which on burn-flex is several times faster than its element-by-element 4-D transpose (used
/// where the matmul attention kernel is; a GPU would rather launch one kernel than `H`).
fn merge_heads<B: Backend>(context: Tensor<B, 4>, one_copy: bool) -> Tensor<B, 3> {
    let [batch, h, seq, dh] = context.dims();
    if one_copy || h == 1 {
        // [B, H, S, Dh] -> [B, S, H, Dh] -> [B, S, H*Dh]
        return context.swap_dims(1, 2).reshape([batch, seq, h * dh]);
    }
    // H x [B, 1, S, Dh] -> H x [B, S, Dh] -> [B, S, H*Dh]
    let heads = (0..h)
        .map(|i| context.clone().narrow(1, i, 1).reshape([batch, seq, dh]))
        .collect();
    Tensor::cat(heads, 2)
}

/// Softmax over the last dimension that yields zeros (not NaN) for rows that are all `-inf`.
///
/// The row maximum is clamped to a finite value and detached (softmax is shift-invariant, so
/// this changes neither the value nor the gradient), and the denominator is kept positive.
pub(crate) fn masked_softmax<B: Backend, const D: usize>(scores: Tensor<B, D>) -> Tensor<B, D> {
    let max = scores.clone().max_dim(D - 1).clamp_min(f32::MIN).detach();
    let exp = (scores - max).exp();
    let sum = exp.clone().sum_dim(D - 1).clamp_min(f32::MIN_POSITIVE);
    exp / sum
}
