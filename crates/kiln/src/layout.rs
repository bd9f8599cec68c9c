//! Tensor layouts of PyTorch's encoder API: checking `src`, moving between sequence-first and
//! batch-first, and the device reads a forward pass may make.
//!
//! Inside kiln every layer works batch-first (`[B, S, E]`); the encoder converts a
//! sequence-first input (`batch_first = false`, PyTorch's default) on the way in and out.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{KilnError, Result};

/// Checks `src` against the model width and returns `[B, S]`.
///
/// # Shapes
/// - `src`: `[B, S, E]` if `batch_first`, else `[S, B, E]`, with `E = d_model` and `B, S > 0`
pub fn check_src<B: Backend>(
    src: &Tensor<B, 3>,
    d_model: usize,
    batch_first: bool,
) -> Result<[usize; 2]> {
    let dims = src.dims();
    let layout = if batch_first {
        "[B, S, E]"
    } else {
        "[S, B, E]"
    };
    if dims[2] != d_model || dims[0] == 0 || dims[1] == 0 {
        return Err(KilnError::shape(
            "src",
            &dims,
            format!("{layout} with E = d_model = {d_model} and B, S > 0"),
        ));
    }
    Ok(if batch_first {
        [dims[0], dims[1]]
    } else {
        [dims[1], dims[0]]
    })
}

/// `[S, B, E] <-> [B, S, E]` when the model is not batch-first; identity otherwise (the swap is
/// its own inverse, so the same call converts in both directions).
pub fn to_batch_first<B: Backend>(x: Tensor<B, 3>, batch_first: bool) -> Tensor<B, 3> {
    if batch_first {
        x
    } else {
        x.swap_dims(0, 1)
    }
}

/// Fails with [`KilnError::NonFinite`] if `t` holds NaN or inf. Reads one count back from the
/// device (a synchronisation on a GPU).
pub fn ensure_finite<B: Backend, const D: usize>(t: &Tensor<B, D>, what: &str) -> Result<()> {
    note_device_read();
    let bad = t.clone().is_finite().bool_not().int().sum().into_scalar();
    let count: i64 = burn::tensor::ElementConversion::elem(bad);
    if count > 0 {
        return Err(KilnError::NonFinite {
            what: what.to_string(),
            count: count as usize,
        });
    }
    Ok(())
}

static DEVICE_READS: AtomicUsize = AtomicUsize::new(0);

/// How many times kiln's forward passes (and [`ensure_finite`]) have read a value back from
/// the device to the host in this process.
///
/// A read-back stalls a GPU queue until everything before it has run, so the forward pass
/// avoids them: padding given as host-side lengths ([`KeyPaddingMask::Lengths`](crate::KeyPaddingMask::Lengths))
/// needs none on any path. What is left is the one check of a merged additive mask on the
/// explicit and matmul attention paths (does every query row keep a key it may attend to?)
/// when the masks are device tensors. Tests read this counter to hold the line.
pub fn device_reads() -> usize {
    DEVICE_READS.load(Ordering::Relaxed)
}

/// Counts one device-to-host read (see [`device_reads`]).
pub(crate) fn note_device_read() {
    DEVICE_READS.fetch_add(1, Ordering::Relaxed);
}
