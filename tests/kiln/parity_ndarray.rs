//! Parity with PyTorch on the ndarray CPU backend: max-abs error <= 1e-5.

use kiln::backend::{cpu_device, Cpu};

#[test]
fn matches_pytorch_on_ndarray() {
    kiln_tests::check_parity::<Cpu>(&cpu_device(), 1e-5);
}
