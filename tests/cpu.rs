//! The ndarray (CPU) tests, in a test binary of their own: CI runs them twice, with the default
//! matrixmultiply GEMM and with OpenBLAS (`--features kiln/blas`), and only this small binary
//! is rebuilt for the second run. `cargo test --test cpu masks::` runs one group.

mod linear_inputs;
mod masks;
mod parity_ndarray;
mod training;
mod weights_io;
