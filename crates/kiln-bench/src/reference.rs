//! burn's own `burn::nn::transformer::TransformerEncoder` carrying a kiln model's weights, for
//! side-by-side comparison. burn's post-norm layer applies `norm_1` after attention and
//! `norm_2` after the feed-forward block, as PyTorch's `norm1`/`norm2` do.

use burn::module::Param;
use burn::nn::transformer::{
    TransformerEncoder as BurnEncoder, TransformerEncoderConfig as BurnConfig,
};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::Backend;
use burn::tensor::Tensor;
use kiln::{Activation, TransformerEncoder};

fn copy_linear<B: Backend>(to: &mut Linear<B>, weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) {
    to.weight = Param::initialized(to.weight.id, weight);
    if let (Some(b), Some(slot)) = (bias, to.bias.as_mut()) {
        *slot = Param::initialized(slot.id, b);
    }
}

fn copy_norm<B: Backend>(to: &mut LayerNorm<B>, from: &LayerNorm<B>) {
    to.gamma = Param::initialized(to.gamma.id, from.gamma.val());
    if let (Some(b), Some(slot)) = (from.beta.as_ref(), to.beta.as_mut()) {
        *slot = Param::initialized(slot.id, b.val());
    }
}

/// burn's encoder with `model`'s weights. Supports what burn's encoder supports: post-norm,
/// GELU, biases, no final norm, every layer with `nhead` heads.
pub fn burn_encoder_from<B: Backend>(
    model: &TransformerEncoder<B>,
    device: &B::Device,
) -> BurnEncoder<B> {
    let c = &model.config;
    assert!(!c.norm_first && c.activation == Activation::Gelu && c.bias && !c.final_norm);
    let mut burn = BurnConfig::new(c.d_model, c.dim_feedforward, c.nhead, c.num_layers)
        .with_dropout(0.0)
        .with_layer_norm_eps(c.layer_norm_eps)
        .init::<B>(device);
    let e = c.d_model;
    for (to, from) in burn.layers.iter_mut().zip(&model.layers) {
        let attn = &from.self_attn;
        // kiln's packed in_proj is [E, 3E] (q | k | v along the output dim).
        let w = attn.in_proj.weight.val();
        let b = attn.in_proj.bias.as_ref().map(|b| b.val());
        let part = |i: usize| {
            (
                w.clone().narrow(1, i * e, e),
                b.clone().map(|b| b.narrow(0, i * e, e)),
            )
        };
        let (wq, bq) = part(0);
        let (wk, bk) = part(1);
        let (wv, bv) = part(2);
        copy_linear(&mut to.mha.query, wq, bq);
        copy_linear(&mut to.mha.key, wk, bk);
        copy_linear(&mut to.mha.value, wv, bv);
        copy_linear(
            &mut to.mha.output,
            attn.out_proj.weight.val(),
            attn.out_proj.bias.as_ref().map(|b| b.val()),
        );
        copy_linear(
            &mut to.pwff.linear_inner,
            from.linear1.weight.val(),
            from.linear1.bias.as_ref().map(|b| b.val()),
        );
        copy_linear(
            &mut to.pwff.linear_outer,
            from.linear2.weight.val(),
            from.linear2.bias.as_ref().map(|b| b.val()),
        );
        copy_norm(&mut to.norm_1, &from.norm1);
        copy_norm(&mut to.norm_2, &from.norm2);
    }
    burn
}
