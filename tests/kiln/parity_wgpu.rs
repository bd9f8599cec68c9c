//! Parity with PyTorch on the wgpu backend (lavapipe's software Vulkan in CI): max-abs <= 1e-4.
//! There is no skip: without a wgpu adapter these tests fail.
#![cfg(feature = "wgpu")]

use kiln::backend::{gpu_device, Gpu};

#[test]
fn matches_pytorch_on_wgpu() {
    kiln_tests::check_parity::<Gpu>(&gpu_device(), 1e-4);
}
