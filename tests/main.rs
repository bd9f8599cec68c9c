//! kiln's workspace-level tests, in one test binary: one link and one instantiation of the
//! backends' generic code instead of one per file (most of the test build's time).
//! Run one group with a filter: `cargo test --test kiln parity_ndarray::`.

mod compression;
mod cross_backend;
mod masks;
mod parity_flex;
mod parity_ndarray;
mod parity_wgpu;
mod text_minilm;
mod training;
mod weights_io;
