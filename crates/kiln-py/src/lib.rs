//! `kiln._kiln`, the Rust half of the `kiln` Python package (the Python half, with the type
//! stubs and `kiln.embed_corpus`, is `python/kiln/`). Built with maturin: `pip install
//! ./crates/kiln-py`.
//!
//! - [`text::TextEncoder`]: `kiln.TextEncoder`, a sentence encoder (kiln-text's `TextEncoder`);
//! - [`encoder::TransformerEncoder`]: `kiln.TransformerEncoder`, PyTorch's encoder (the core's).
//!
//! Both load once, are shared between Python threads, and release the GIL while kiln computes.
//! Errors become `FileNotFoundError`, `ValueError`, `TypeError`, `MemoryError` or `RuntimeError`
//! ([`errors`]); a Rust panic becomes a `RuntimeError`, never a crash of the interpreter.

mod arrays;
mod backend;
mod encoder;
mod errors;
mod text;

use pyo3::prelude::*;

/// kiln's Rust extension. Import its classes from ``kiln``: ``kiln.TextEncoder``,
/// ``kiln.TransformerEncoder``.
#[pymodule]
fn _kiln(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<text::TextEncoder>()?;
    m.add_class::<encoder::TransformerEncoder>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
