//! The arithmetic of the Linear layers (`TransformerEncoder::with_precision`).
//!
//! f32 (`Precision::F32`): on burn-flex on a CPU with AVX-512 the weights are packed once for
//! kiln's f32 kernel; the outputs stay within f32's parity tolerance (1e-5) of PyTorch's and
//! keep kiln's invariances.
//!
//! int8 (`Precision::Int8`): on burn-flex they
//! run the integer kernels, elsewhere the generic path of tensor ops; both give the same numbers,
//! close to f32 at int8's own tolerance, and keep kiln's invariances (batch == one sequence at
//! a time; packed == padded up to an activation rounding to the neighbouring int8 level).
//!
//! Stated tolerance against f32 (PyTorch's outputs of the committed fixtures, tiny random
//! models whose outputs have a std near 1): max-abs <= 0.08 and mean-abs <= 0.01 at real
//! tokens. The integer kernels and the generic path agree to 1e-5 (f32 rounding; a value that
//! rounds to the other u8 level would move an output by about one quantization step).
//!
//! bf16 (`Precision::Bf16`): stated tolerance against f32 on the same fixtures: max-abs <= 0.04
//! and mean-abs <= 0.006 at real tokens, on the kernel (flex: `vdpbf16ps` where the CPU has it,
//! attention's products included, the portable kernel elsewhere) and on the generic path
//! (rounded weights, f32 activations and attention).
#![cfg(feature = "flex")]

use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, flex_device, Cpu, Flex};
use kiln::kernels::{F32Kernel, LinearKernel};
use kiln::{
    Activation, EncoderInput, Execution, HostTensor, KeyPaddingMask, Precision, TransformerEncoder,
    TransformerEncoderConfig,
};
use kiln_tests::{encoder_cases, max_abs_diff};

#[test]
fn packed_f32_equals_pytorch_on_every_fixture() {
    let flex = flex_device();
    let packs = F32Kernel::best() == F32Kernel::Avx512;
    for case in encoder_cases() {
        let model = case.model::<Flex>(&flex).with_precision(Precision::F32);
        assert_eq!(model.precision(), Precision::F32);
        for layer in &model.layers {
            // Packed where the CPU has AVX-512; burn's Linear elsewhere.
            assert_eq!(
                matches!(layer.linear1_kernel, LinearKernel::F32(_)),
                packs,
                "{}",
                case.name
            );
        }
        let out = HostTensor::from_tensor(model.run(case.input::<Flex>(&flex)).unwrap().output);
        let max_err = case.output_errors(&out).iter().fold(0f32, |m, &e| m.max(e));
        assert!(max_err <= 1e-5, "{}: {max_err:.3e} from PyTorch", case.name);
    }
    // ndarray has no packed kernel: f32 stays burn's Linear there.
    let cpu = cpu_device();
    let case = &encoder_cases()[0];
    let model = case.model::<Cpu>(&cpu).with_precision(Precision::F32);
    assert!(matches!(model.layers[0].linear1_kernel, LinearKernel::Burn));
}

#[test]
fn packed_f32_keeps_packed_equal_to_padded_and_batch_equal_to_one_at_a_time() {
    // burn's own Linear layers (the model before `with_precision`) as a fourth path.
    let (model, src) = random_model(None);
    let burn_rows = rows_on_three_paths(&model, &src);
    let model = model.with_precision(Precision::F32);
    for (rows, burn) in rows_on_three_paths(&model, &src).iter().zip(&burn_rows) {
        for (e, values) in rows.values().enumerate() {
            let values = [burn.padded[e], values[0], values[1], values[2]];
            assert!(
                values.iter().all(|v| (v - values[0]).abs() <= 1e-5),
                "{}[{e}]: burn, padded, packed, alone {values:?}",
                rows.at
            );
        }
    }
}

#[test]
fn int8_is_close_to_pytorch_f32_on_every_fixture_and_both_paths_agree() {
    let (flex, cpu) = (flex_device(), cpu_device());
    let mut report = Vec::new();
    for case in encoder_cases() {
        let model = case.model::<Flex>(&flex).with_precision(Precision::Int8);
        assert_eq!(model.precision(), Precision::Int8);
        let out = HostTensor::from_tensor(model.run(case.input::<Flex>(&flex)).unwrap().output);
        let errors = case.output_errors(&out);
        let max_err = errors.iter().fold(0f32, |m, &e| m.max(e));
        let mean_err = errors.iter().sum::<f32>() / errors.len() as f32;
        // The same quantized model through the generic path (ndarray has no integer kernel).
        let generic = case.model::<Cpu>(&cpu).with_precision(Precision::Int8);
        let generic_out =
            HostTensor::from_tensor(generic.run(case.input::<Cpu>(&cpu)).unwrap().output);
        let between = max_abs_diff(&out, &generic_out);
        report.push(format!(
            "{:<34} int8 vs f32: max {max_err:.3e} mean {mean_err:.3e}; kernel vs generic {between:.2e}",
            case.name
        ));
        assert!(
            max_err <= 0.08 && mean_err <= 0.01 && between <= 1e-5,
            "{}: above int8's tolerance:\n{}",
            case.name,
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// A tiny random GELU model (`d_model` 48, 2 layers) in `precision` (`None`: as initialized,
/// burn's Linear layers), and a random batch `[3, 9, 48]` for it.
fn random_model(
    precision: impl Into<Option<Precision>>,
) -> (TransformerEncoder<Flex>, Tensor<Flex, 3>) {
    let device = flex_device();
    let config = TransformerEncoderConfig::new(48, 4, 2)
        .with_dim_feedforward(80)
        .with_activation(Activation::Gelu)
        .with_batch_first(true);
    let mut model = config.init::<Flex>(&device);
    if let Some(precision) = precision.into() {
        model = model.with_precision(precision);
    }
    let src = Tensor::<Flex, 3>::random([3, 9, 48], Distribution::Default, &device);
    (model, src)
}

/// One real token's output row on the three paths of [`rows_on_three_paths`].
struct TokenRows {
    /// `[sequence, position]`.
    at: String,
    padded: Vec<f32>,
    packed: Vec<f32>,
    alone: Vec<f32>,
}

impl TokenRows {
    /// `[padded, packed, alone]` per feature.
    fn values(&self) -> impl Iterator<Item = [f32; 3]> + '_ {
        (0..self.padded.len()).map(|e| [self.padded[e], self.packed[e], self.alone[e]])
    }
}

/// The max-abs difference of two rows.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// `src`'s three sequences, of lengths 9, 4 and 6 (the rest padding), through `model` as one
/// padded batch, as a packed one and one sequence at a time: the rows of every real token.
fn rows_on_three_paths(model: &TransformerEncoder<Flex>, src: &Tensor<Flex, 3>) -> Vec<TokenRows> {
    let lengths = [9, 4, 6];
    let run = |execution: Execution| {
        let input = EncoderInput::new(src.clone())
            .key_padding_mask(KeyPaddingMask::from_lengths(&lengths, 9));
        HostTensor::from_tensor(model.run_with(&execution, input).unwrap().output)
    };
    let padded = run(Execution::default());
    let packed = run(Execution::default().with_pack_padding(true));
    let row = |data: &[f32], at: usize| data[at * 48..(at + 1) * 48].to_vec();
    let mut rows = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        let one = src.clone().narrow(0, b, 1).narrow(1, 0, len);
        let alone = HostTensor::from_tensor(model.run(EncoderInput::new(one)).unwrap().output);
        for s in 0..len {
            rows.push(TokenRows {
                at: format!("[{b}, {s}]"),
                padded: row(&padded.data, b * 9 + s),
                packed: row(&packed.data, b * 9 + s),
                alone: row(&alone.data, s),
            });
        }
    }
    rows
}

#[test]
fn int8_packed_equals_padded_and_batch_equals_one_at_a_time() {
    // Packed and alone run the same kernels on the same rows. The padded batch runs its
    // attention in another order, so its f32 sums differ in the last bits; where such a
    // difference moves an activation across a rounding boundary of its int8 step, that row
    // moves by about one quantization step (a few 1e-3 here; most rows do not move at all).
    // A masking error would move the padded sequences by O(1).
    assert_three_paths_agree(Precision::Int8, 2e-2, 1e-4);
}

/// On [`random_model`] in `precision`, every real token's packed row is within `to_padded` of
/// its padded row and within `to_alone` of its row computed alone.
fn assert_three_paths_agree(precision: Precision, to_padded: f32, to_alone: f32) {
    let (model, src) = random_model(precision);
    for rows in rows_on_three_paths(&model, &src) {
        let padded = max_diff(&rows.padded, &rows.packed);
        let alone = max_diff(&rows.packed, &rows.alone);
        assert!(
            padded <= to_padded,
            "{precision} {}: padded vs packed {padded:.2e}",
            rows.at
        );
        assert!(
            alone <= to_alone,
            "{precision} {}: packed vs alone {alone:.2e}",
            rows.at
        );
    }
}

#[test]
fn precision_is_set_per_model_and_f32_goes_back_to_f32_products() {
    let (model, src) = random_model(Precision::Int8);
    let int8 = HostTensor::from_tensor(model.run(EncoderInput::new(src.clone())).unwrap().output);
    let model = model.with_precision(Precision::F32);
    assert_eq!(model.precision(), Precision::F32);
    // Back in f32 the (already quantized) weights run in f32 (packed again, or burn's Linear):
    // activations are no longer quantized, so the output moves, but only by int8's error.
    let f32_out = HostTensor::from_tensor(model.run(EncoderInput::new(src)).unwrap().output);
    let diff = max_abs_diff(&int8, &f32_out);
    assert!(diff > 0.0 && diff <= 0.15, "{diff}");
    assert_eq!("int8".parse::<Precision>().unwrap(), Precision::Int8);
    assert!("int4".parse::<Precision>().is_err());
}

#[test]
fn bf16_is_close_to_pytorch_f32_on_every_fixture_on_both_paths() {
    let (flex, cpu) = (flex_device(), cpu_device());
    let mut report = Vec::new();
    for case in encoder_cases() {
        let model = case.model::<Flex>(&flex).with_precision(Precision::Bf16);
        assert_eq!(model.precision(), Precision::Bf16);
        let out = HostTensor::from_tensor(model.run(case.input::<Flex>(&flex)).unwrap().output);
        let generic = case.model::<Cpu>(&cpu).with_precision(Precision::Bf16);
        let generic_out =
            HostTensor::from_tensor(generic.run(case.input::<Cpu>(&cpu)).unwrap().output);
        for (path, out) in [("kernel", &out), ("generic", &generic_out)] {
            let errors = case.output_errors(out);
            let max_err = errors.iter().fold(0f32, |m, &e| m.max(e));
            let mean_err = errors.iter().sum::<f32>() / errors.len() as f32;
            report.push(format!(
                "{:<34} bf16 {path} vs f32: max {max_err:.3e} mean {mean_err:.3e}",
                case.name
            ));
            assert!(
                max_err <= 0.04 && mean_err <= 0.006,
                "{}: above bf16's tolerance:\n{}",
                case.name,
                report.join("\n")
            );
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn bf16_packed_equals_padded_and_batch_equals_one_at_a_time() {
    // Rows are rounded one by one: the same row gives the same bf16 values in any batch, so
    // packed and alone (the same kernels, attention's products in bf16 included) differ only
    // in f32 summation order. The padded batch runs attention through burn's ops, in f32: it
    // stays within bf16's tolerance to f32 (a masking error would move it by O(1)).
    assert_three_paths_agree(Precision::Bf16, 0.04, 1e-4);
    assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
    assert_eq!(Precision::Bf16.to_string(), "bf16");
}

/// bf16 needs AVX-512 BF16: on a CPU with it the check passes; without it (or with the feature
/// turned off) it is an error naming the feature, never an illegal instruction.
#[test]
fn bf16_states_the_cpu_feature_it_needs() {
    let cpu = kiln::kernels::cpu_features();
    match Precision::Bf16.check_cpu() {
        Ok(()) => assert!(cpu.avx512_bf16),
        Err(e) => {
            assert!(!cpu.avx512_bf16);
            assert!(e.to_string().contains("avx512_bf16"), "{e}");
        }
    }
    assert!(!cpu.without("avx512_bf16").avx512_bf16);
    assert!(!cpu.without("avx512f+bw+vl").avx512_bf16);
    assert_eq!(cpu.without("all"), kiln::kernels::CpuFeatures::default());
    assert!(Precision::Int8.check_cpu().is_ok() && Precision::F32.check_cpu().is_ok());
}
