//! The bridge between burn-flex tensors and kiln's host kernels: a flex tensor's storage is
//! host memory, so a kernel reads and writes it in place, with no copy and no device read.
//!
//! Modules stay generic over `B: Backend`; a kernel call hands its tensor here, which returns
//! the flex tensor when `B` is burn-flex (its primitive is a [`FlexTensor`]) and gives the
//! tensor back otherwise, so the caller takes its generic path (other backends, autodiff).

use std::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

/// Whether `B`'s float tensors are burn-flex tensors (not under autodiff, whose tensors wrap
/// them): the backend whose tensors this bridge hands to kiln's host kernels.
pub(crate) fn is_flex<B: Backend>() -> bool {
    std::any::TypeId::of::<B::FloatTensorPrimitive>() == std::any::TypeId::of::<FlexTensor>()
}

/// The contiguous f32 host data of a burn-flex tensor, or the tensor back when `B` is not
/// burn-flex (or the tensor is quantized or not f32).
pub(crate) fn host_f32<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> std::result::Result<FlexTensor, Tensor<B, D>> {
    let primitive = x.into_primitive();
    let TensorPrimitive::Float(float) = primitive else {
        return Err(Tensor::from_primitive(primitive));
    };
    let boxed: Box<dyn Any> = Box::new(float);
    match boxed.downcast::<FlexTensor>() {
        Ok(flex) if flex.dtype() == DType::F32 => {
            if flex.as_slice::<f32>().is_some() {
                Ok(*flex)
            } else {
                Ok(flex.to_contiguous())
            }
        }
        Ok(flex) => Err(from_flex_primitive(*flex)),
        Err(other) => {
            let float = *other
                .downcast::<B::FloatTensorPrimitive>()
                .expect("a tensor primitive is the backend's own type");
            Err(Tensor::from_primitive(TensorPrimitive::Float(float)))
        }
    }
}

/// The burn tensor of a flex tensor that [`host_f32`] returned for the same `B`.
pub(crate) fn from_flex_primitive<B: Backend, const D: usize>(flex: FlexTensor) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(flex);
    let float = *boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("only called when B is burn-flex");
    Tensor::from_primitive(TensorPrimitive::Float(float))
}

/// A burn-flex tensor of `shape` holding `values` (moved, not copied). Only called when
/// [`host_f32`] returned a flex tensor for the same `B`.
pub(crate) fn flex_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
) -> Tensor<B, D> {
    from_flex_primitive(FlexTensor::from_data(TensorData::new(values, shape)))
}

/// The f32 values of a contiguous flex tensor.
pub(crate) fn values(flex: &FlexTensor) -> &[f32] {
    flex.as_slice::<f32>()
        .expect("host_f32 returns contiguous f32 tensors")
}

/// The f32 values of a contiguous flex tensor, to write in place (copied first if shared).
pub(crate) fn values_mut(flex: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = flex
        .layout()
        .contiguous_offsets()
        .expect("host_f32 returns contiguous f32 tensors");
    &mut flex.storage_mut::<f32>()[start..end]
}
