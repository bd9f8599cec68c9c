//! How a Linear layer runs: through burn, or with f32, int8 or bf16 weights packed once.

use std::sync::Arc;

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::bf16_gemm::{round_to_bf16, Bf16Kernel, PackedBf16};
use super::f32_gemm::{F32Kernel, PackedF32};
use super::int8_gemm::{pack_linear, Int8Kernel, PackedInt8};

/// What a Linear layer computes with besides its burn parameters. Not saved with the weights:
/// set by [`TransformerEncoder::with_precision`](crate::TransformerEncoder::with_precision)
/// once the weights are final.
#[derive(Debug, Clone, Default)]
pub enum LinearKernel {
    /// burn's `Linear::forward` in f32.
    #[default]
    Burn,
    /// f32 weights packed for kiln's f32 kernel (burn-flex on a CPU with AVX-512); the layer's
    /// burn weight keeps the same values, which every other backend uses.
    F32(Arc<PackedF32>),
    /// int8 weights (per output channel) packed for the integer kernels; the layer's burn
    /// weight then holds their dequantized values, which backends without an integer kernel
    /// use with the same per-row activation quantization.
    Int8(Arc<PackedInt8>),
    /// bf16 weights packed for the `vdpbf16ps` kernel; the layer's burn weight then holds the
    /// same rounded values, which backends without the kernel multiply in f32.
    Bf16(Arc<PackedBf16>),
}

impl LinearKernel {
    /// The f32 kernel for `linear` on `B`: its weight and bias packed once when `B` runs kiln's
    /// packed f32 kernel ([`super::packs_f32`]), else burn's `Linear` ([`Self::Burn`]). Reads
    /// the weight from the device once; the packed copy does not follow later changes to the
    /// burn weight (prepare the kernel once the weights are final).
    pub fn f32<B: Backend>(linear: &Linear<B>) -> Self {
        if !super::packs_f32::<B>() {
            return Self::Burn;
        }
        let (weight, bias, [k, n]) = host_weight_and_bias(linear);
        Self::F32(Arc::new(PackedF32::new(&weight, k, n, bias.as_deref())))
    }

    /// Quantizes `linear`'s weight to int8 per output channel, replaces it with its dequantized
    /// values, and returns the packed kernel. Reads the weight from the device once.
    pub fn int8<B: Backend>(linear: &mut Linear<B>) -> Self {
        let (weight, bias, [k, n]) = host_weight_and_bias(linear);
        let (quantized, packed) = pack_linear(&weight, k, n, bias.as_deref());
        replace_weight(linear, quantized.dequantize());
        Self::Int8(Arc::new(packed))
    }

    /// Rounds `linear`'s weight to bf16, replaces it with the rounded values, and returns the
    /// packed kernel. Reads the weight from the device once.
    pub fn bf16<B: Backend>(linear: &mut Linear<B>) -> Self {
        let (weight, bias, [k, n]) = host_weight_and_bias(linear);
        let packed = PackedBf16::new(&weight, k, n, bias.as_deref());
        replace_weight(linear, round_to_bf16(&weight));
        Self::Bf16(Arc::new(packed))
    }

    /// The precision this kernel computes in.
    pub fn precision(&self) -> super::Precision {
        match self {
            Self::Burn | Self::F32(_) => super::Precision::F32,
            Self::Int8(_) => super::Precision::Int8,
            Self::Bf16(_) => super::Precision::Bf16,
        }
    }
}

/// A Linear layer's weight (`[K, N]`) and bias on the host, with the weight's dims.
fn host_weight_and_bias<B: Backend>(
    linear: &Linear<B>,
) -> (Vec<f32>, Option<Vec<f32>>, [usize; 2]) {
    let dims = linear.weight.dims();
    let host = |t: Tensor<B, 1>| -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 values")
    };
    let weight = host(linear.weight.val().flatten::<1>(0, 1));
    let bias = linear.bias.as_ref().map(|b| host(b.val()));
    (weight, bias, dims)
}

/// Replaces `linear`'s weight with `values` (same `[K, N]`), keeping its parameter id.
fn replace_weight<B: Backend>(linear: &mut Linear<B>, values: Vec<f32>) {
    let device = linear.weight.device();
    let dims = linear.weight.dims();
    let weight = Tensor::<B, 2>::from_data(TensorData::new(values, dims), &device);
    linear.weight = Param::initialized(linear.weight.id, weight);
}

/// `linear(x)` as `kernel` says.
///
/// # Shapes
/// - `x`: `[..., K]`; output `[..., N]`
pub(crate) fn linear_forward<B: Backend, const D: usize>(
    linear: &Linear<B>,
    kernel: &LinearKernel,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match kernel {
        LinearKernel::Burn => linear.forward(x),
        LinearKernel::F32(packed) => {
            match on_flex_rows(x, packed.n, |x, rows| {
                packed.forward(x, rows, F32Kernel::best())
            }) {
                Ok(y) => y,
                Err(x) => linear.forward(x),
            }
        }
        LinearKernel::Int8(packed) => {
            match on_flex_rows(x, packed.n, |x, rows| {
                packed.forward(x, rows, Int8Kernel::best())
            }) {
                Ok(y) => y,
                Err(x) => linear.forward(quantize_rows(x)),
            }
        }
        LinearKernel::Bf16(packed) => {
            match on_flex_rows(x, packed.n, |x, rows| {
                packed.forward(x, rows, Bf16Kernel::best())
            }) {
                Ok(y) => y,
                Err(x) => linear.forward(x),
            }
        }
    }
}

/// `linear2(activation(linear1(x)))`, a feed-forward block, where both Linear layers run the
/// bf16 kernel on burn-flex: the first layer's store applies the activation and rounds its
/// output to bf16 straight into the second layer's input layout
/// ([`PackedBf16::forward_activation_rounded`]; the same values as the layers one by one).
/// Elsewhere the tensor back (the caller runs the layers one by one).
///
/// # Shapes
/// - `x`: `[..., K]`; output `[..., N]` of `linear2`
pub(crate) fn try_fused_feed_forward<B: Backend, const D: usize>(
    linear1: &LinearKernel,
    activation: crate::config::Activation,
    linear2: &LinearKernel,
    x: Tensor<B, D>,
) -> std::result::Result<Tensor<B, D>, Tensor<B, D>> {
    let (LinearKernel::Bf16(first), LinearKernel::Bf16(second)) = (linear1, linear2) else {
        return Err(x);
    };
    on_flex_rows(x, second.n, |x, rows| {
        let kernel = Bf16Kernel::best();
        let hidden = first.forward_activation_rounded(x, rows, kernel, activation, second);
        second.forward_rounded(&hidden, rows, kernel)
    })
}

/// `kernel(values, rows)` over a burn-flex tensor seen as `[rows, K]`, giving `[..., n]`; or the
/// tensor back on any other backend.
#[cfg_attr(not(feature = "flex"), allow(unused_variables))]
fn on_flex_rows<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    n: usize,
    kernel: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> std::result::Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    {
        let mut dims = x.dims();
        let host = super::flex::host_f32(x)?;
        let rows = dims[..D - 1].iter().product();
        let y = kernel(super::flex::values(&host), rows);
        dims[D - 1] = n;
        Ok(super::flex::flex_tensor(y, dims))
    }
    #[cfg(not(feature = "flex"))]
    {
        Err(x)
    }
}

/// Each row (last dimension) through the per-row u8 quantization the integer kernels apply,
/// in tensor ops: `scale * (floor(clamp(x / scale + zp, 0, 255) + 0.5) - zp)`.
pub(crate) fn quantize_rows<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let lo = x.clone().min_dim(D - 1).clamp_max(0.0);
    let hi = x.clone().max_dim(D - 1).clamp_min(0.0);
    let range = hi - lo.clone();
    let scale = range
        .clone()
        .div_scalar(255.0)
        .mask_fill(range.equal_elem(0.0), 1.0);
    let zero_point = lo.neg().div(scale.clone()).round().clamp(0.0, 255.0);
    // Half up after the clamp, as the host kernels round.
    let q = (x.div(scale.clone()) + zero_point.clone())
        .clamp(0.0, 255.0)
        .add_scalar(0.5)
        .floor();
    (q - zero_point) * scale
}
