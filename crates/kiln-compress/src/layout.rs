//! Tensor layout: the `[B, S, E]` view of an encoder input or output in the model's layout.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `[B, S, E]` from the model's layout.
pub(crate) fn batch_first<B: Backend>(t: Tensor<B, 3>, batch_first: bool) -> Tensor<B, 3> {
    if batch_first {
        t
    } else {
        t.swap_dims(0, 1)
    }
}
