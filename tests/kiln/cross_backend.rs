//! One random model gives the same output on ndarray and wgpu.
#![cfg(feature = "wgpu")]

use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, gpu_device, Cpu, Gpu};
use kiln::weights::load_slots;
use kiln::{
    Activation, EncoderInput, HostTensor, KeyPaddingMask, TransformerEncoder,
    TransformerEncoderConfig,
};
use kiln_tests::max_abs_diff;

fn run<B: burn::prelude::Backend>(
    model: &TransformerEncoder<B>,
    src: &HostTensor,
    lengths: &[usize],
    device: &B::Device,
) -> (HostTensor, Vec<HostTensor>) {
    let seq = src.shape[1];
    let input = EncoderInput::new(src.to_tensor::<B, 3>(device))
        .key_padding_mask(KeyPaddingMask::from_lengths(lengths, seq))
        .need_weights(true);
    let out = model.run(input).unwrap();
    let weights = out
        .attentions
        .unwrap()
        .into_iter()
        .map(HostTensor::from_tensor)
        .collect();
    (HostTensor::from_tensor(out.output), weights)
}

#[test]
fn ndarray_and_wgpu_agree() {
    let config = TransformerEncoderConfig::new(32, 4, 3)
        .with_dim_feedforward(64)
        .with_activation(Activation::Gelu)
        .with_batch_first(true)
        .with_final_norm(true);
    let cpu = cpu_device();
    let gpu = gpu_device();
    let mut cpu_model = config.init::<Cpu>(&cpu);
    let weights = cpu_model.state_dict();
    let mut gpu_model = config.init::<Gpu>(&gpu);
    load_slots(gpu_model.weight_slots(""), &weights, &gpu)
        .into_result()
        .unwrap();

    let src = HostTensor::from_tensor(Tensor::<Cpu, 3>::random(
        [3, 9, 32],
        Distribution::Normal(0.0, 1.0),
        &cpu,
    ));
    let lengths = [9, 5, 2];
    let (y_cpu, w_cpu) = run(&cpu_model, &src, &lengths, &cpu);
    let (y_gpu, w_gpu) = run(&gpu_model, &src, &lengths, &gpu);
    let err = max_abs_diff(&y_cpu, &y_gpu);
    assert!(err <= 1e-4, "output differs by {err}");
    for (a, b) in w_cpu.iter().zip(&w_gpu) {
        let err = max_abs_diff(a, b);
        assert!(err <= 1e-4, "attention weights differ by {err}");
    }

    // The fused (no-weights) path agrees too.
    let fast_gpu = gpu_model
        .forward(
            src.to_tensor(&gpu),
            None,
            Some(KeyPaddingMask::from_lengths(&lengths, 9)),
            false,
        )
        .unwrap();
    let err = max_abs_diff(&y_cpu, &HostTensor::from_tensor(fast_gpu));
    assert!(err <= 1e-4, "fused wgpu path differs by {err}");
}

#[test]
fn wgpu_adapter_is_present() {
    let adapters = kiln::backend::wgpu_adapters();
    assert!(
        !adapters.is_empty(),
        "no wgpu adapter: install a Vulkan driver (CI: apt-get install mesa-vulkan-drivers)"
    );
    println!("wgpu adapters: {adapters:?}");
}

#[test]
fn attention_kernels_agree_and_auto_is_fused_on_wgpu() {
    let device = gpu_device();
    assert!(kiln::AttentionKernel::Auto.is_fused::<Gpu>(&device));
    // One queue on the GPU: the batch is never split across threads by default.
    assert_eq!(kiln::BatchSplit::Auto.slices::<Gpu>(8, &device), 1);
    // Padded batches beat packed ones on a GPU: text models keep the padding there.
    assert!(!kiln::Execution::pack_padding_pays::<Gpu>(&device));
    kiln_tests::check_attention_kernels_agree::<Gpu>(&device, 1e-4);
}
