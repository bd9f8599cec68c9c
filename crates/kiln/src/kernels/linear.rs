//! How a Linear layer runs: through burn (`f32`), or with int8 weights prepared once.

use std::sync::Arc;

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

#[cfg(feature = "flex")]
use super::int8_gemm::Int8Kernel;
use super::int8_gemm::{pack_linear, PackedInt8};

/// What a Linear layer computes with besides its burn parameters. Not saved with the weights:
/// set by [`TransformerEncoder::with_precision`](crate::TransformerEncoder::with_precision)
/// once the weights are final.
#[derive(Debug, Clone, Default)]
pub enum LinearKernel {
    /// burn's `Linear::forward` in f32.
    #[default]
    Burn,
    /// int8 weights (per output channel) packed for the integer kernels; the layer's burn
    /// weight then holds their dequantized values, which backends without an integer kernel
    /// use with the same per-row activation quantization.
    Int8(Arc<PackedInt8>),
}

impl LinearKernel {
    /// Quantizes `linear`'s weight to int8 per output channel, replaces it with its dequantized
    /// values, and returns the packed kernel. Reads the weight from the device once.
    pub fn int8<B: Backend>(linear: &mut Linear<B>) -> Self {
        let [k, n] = linear.weight.dims();
        let weight = linear
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 weight");
        let bias = linear.bias.as_ref().map(|b| {
            b.val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 bias")
        });
        let (quantized, packed) = pack_linear(&weight, k, n, bias.as_deref());
        let device = linear.weight.device();
        let dequantized =
            Tensor::<B, 2>::from_data(TensorData::new(quantized.dequantize(), [k, n]), &device);
        linear.weight = Param::initialized(linear.weight.id, dequantized);
        Self::Int8(Arc::new(packed))
    }

    /// The precision this kernel computes in.
    pub fn precision(&self) -> super::Precision {
        match self {
            Self::Burn => super::Precision::F32,
            Self::Int8(_) => super::Precision::Int8,
        }
    }
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
        LinearKernel::Int8(packed) => {
            #[cfg(feature = "flex")]
            let x = {
                let mut dims = x.dims();
                match super::flex::host_f32(x) {
                    Ok(host) => {
                        let rows = dims[..D - 1].iter().product();
                        let y =
                            packed.forward(super::flex::values(&host), rows, Int8Kernel::best());
                        dims[D - 1] = packed.n;
                        return super::flex::flex_tensor(y, dims);
                    }
                    Err(x) => x,
                }
            };
            linear.forward(quantize_rows(x))
        }
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
