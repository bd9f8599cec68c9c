//! kiln's workspace-level tests, in one test binary: one link and one instantiation of the
//! backends' generic code instead of one per file (most of the test build's time).
//! Run one group with a filter: `cargo test --test kiln text_minilm::`. The ndarray-only tests
//! are in `tests/cpu.rs` (`--test cpu`), which CI builds a second time with OpenBLAS.
//!
//! The files are grouped by the crate they test: `tests/kiln/` (the core), `tests/text/`
//! (kiln-text), `tests/compress/` (kiln-compress), `tests/explain/` (kiln-explain).

// The core on flex and wgpu, and across backends.
#[path = "kiln/cross_backend.rs"]
mod cross_backend;
#[path = "kiln/parity_flex.rs"]
mod parity_flex;
#[path = "kiln/parity_wgpu.rs"]
mod parity_wgpu;
#[path = "kiln/precision.rs"]
mod precision;

// kiln-text: all-MiniLM-L6-v2 against sentence-transformers.
#[path = "text/text_minilm.rs"]
mod text_minilm;

// kiln-compress.
#[path = "compress/compression.rs"]
mod compression;

// kiln-explain.
#[path = "explain/explain.rs"]
mod explain;
