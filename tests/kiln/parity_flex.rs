//! Parity with PyTorch on burn's flex CPU backend (`--backend flex`): max-abs <= 1e-5.
#![cfg(feature = "flex")]

use kiln::backend::{flex_device, Flex};

#[test]
fn matches_pytorch_on_flex() {
    kiln_tests::check_parity::<Flex>(&flex_device(), 1e-5);
}

#[test]
fn attention_kernels_agree_on_flex() {
    let device = flex_device();
    assert!(!kiln::AttentionKernel::Auto.is_fused::<Flex>(&device));
    // Work follows the real tokens on a CPU: text models skip the padding there.
    assert!(kiln::Execution::pack_padding_pays::<Flex>(&device));
    kiln_tests::check_attention_kernels_agree::<Flex>(&device, 1e-5);
}

#[test]
fn batch_split_on_flex_agrees_with_one_pass_and_is_on_by_default() {
    let device = flex_device();
    assert_eq!(
        kiln::BatchSplit::Auto.slices::<Flex>(8, &device),
        rayon::current_num_threads().min(8)
    );
    kiln_tests::check_batch_split_agrees::<Flex>(&device, 1e-5);
}
