//! kiln's workspace-level tests, in one test binary: one link and one instantiation of the
//! backends' generic code instead of one per file (most of the test build's time).
//! Run one group with a filter: `cargo test --test kiln text_minilm::`. The ndarray-only tests
//! are in `tests/cpu.rs` (`--test cpu`), which CI builds a second time with OpenBLAS.

mod compression;
mod cross_backend;
mod explain;
mod parity_flex;
mod parity_wgpu;
mod text_minilm;
