//! The ndarray (CPU) tests of the core (`tests/kiln/`), in a test binary of their own: CI runs
//! them twice, with the default matrixmultiply GEMM and with OpenBLAS (`--features kiln/blas`),
//! and only this small binary is rebuilt for the second run. `cargo test --test cpu masks::`
//! runs one group.

#[path = "kiln/fuzz_loaders.rs"]
mod fuzz_loaders;
#[path = "kiln/linear_inputs.rs"]
mod linear_inputs;
#[path = "kiln/masks.rs"]
mod masks;
#[path = "kiln/parity_ndarray.rs"]
mod parity_ndarray;
#[path = "kiln/training.rs"]
mod training;
#[path = "kiln/weights_io.rs"]
mod weights_io;
