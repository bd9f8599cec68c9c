//! Weights I/O: `model.safetensors` with PyTorch's `state_dict` names.
//!
//! The mapping between kiln's parameters and PyTorch's keys is one declarative list of
//! [`WeightSlot`]s, built by [`TransformerEncoder::weight_slots`]: the PyTorch key (or keys, concatenated
//! along dim 0, for checkpoints that store q/k/v apart), the PyTorch shape, and whether the
//! tensor is transposed on the way in (burn's Linear weights are `[in, out]`, PyTorch's `[out, in]`).
//! Loading fills every slot and reports what was applied, missing, unused or mis-shaped.
//!
//! One concept per file, everything re-exported here:
//! - `host`: [`HostTensor`], [`TensorFile`] (tensors by name, in memory), and the conversion of
//!   stored dtypes (f16, bf16, f64, integers, int8 + per-row scales) to f32;
//! - `codec`: the safetensors format ([`TensorFile::read`], [`TensorFile::write`], ...);
//!   files are written through [`write_atomic`] (re-exported from [`crate::atomic`]);
//! - `slots`: [`WeightSlot`], [`SlotTarget`], [`load_slots`], [`read_slots`], [`LoadReport`];
//! - `encoder_map`: [`TransformerEncoder`]'s slots and its directory format
//!   ([`TransformerEncoder::from_dir`], [`TransformerEncoder::save_dir`]).
//!
//! Imports run one way: `codec` and `slots` use `host` only; `encoder_map` uses the three.

mod codec;
mod encoder_map;
mod host;
mod slots;

pub use crate::atomic::write_atomic;
pub use codec::stores_int8;
pub use encoder_map::check_file_holds;
pub use host::{HostTensor, TensorFile, INT8_SCALE_SUFFIX};
pub use slots::{
    allow_nonfinite_weights, layer_norm_slots, linear_slots, load_slots, nonfinite_weights_allowed,
    read_slots, LoadReport, SlotTarget, WeightSlot,
};

#[cfg(doc)]
use crate::encoder::TransformerEncoder;
