//! Mask semantics beyond the PyTorch fixtures: fully-masked rows, equivalences, shapes.

use burn::tensor::{Bool, Distribution, Tensor, TensorData};
use kiln::backend::{cpu_device, Cpu};
use kiln::{
    EncoderInput, HostTensor, KeyPaddingMask, KilnError, SrcMask, TransformerEncoder,
    TransformerEncoderConfig,
};
use kiln_tests::max_abs_diff;

fn model() -> kiln::TransformerEncoder<Cpu> {
    TransformerEncoderConfig::new(16, 4, 2)
        .with_dim_feedforward(32)
        .with_batch_first(true)
        .init(&cpu_device())
}

fn src(b: usize, s: usize) -> Tensor<Cpu, 3> {
    Tensor::random([b, s, 16], Distribution::Normal(0.0, 1.0), &cpu_device())
}

#[test]
fn fully_masked_rows_are_finite_with_zero_weights() {
    let model = model();
    // Item 1 is all padding: every query row of it has no key to attend to.
    let padding = KeyPaddingMask::<Cpu>::from_lengths(&[5, 0], 5);
    let input = EncoderInput::new(src(2, 5)).key_padding_mask(padding.clone());
    let fast = HostTensor::from_tensor(model.run(input.clone()).unwrap().output);
    assert!(
        fast.data.iter().all(|v| v.is_finite()),
        "fused path produced NaN"
    );
    let out = model.run(input.need_weights(true)).unwrap();
    let full = HostTensor::from_tensor(out.output);
    assert!(
        full.data.iter().all(|v| v.is_finite()),
        "explicit path produced NaN"
    );
    assert!(max_abs_diff(&fast, &full) < 1e-5);
    let w = HostTensor::from_tensor(out.attentions.unwrap()[0].clone());
    let per_item = w.data.len() / 2;
    assert!(
        w.data[per_item..].iter().all(|&v| v == 0.0),
        "masked rows must weigh 0"
    );
    // Rows of item 0 sum to 1.
    for row in w.data[..per_item].chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn is_causal_equals_the_causal_mask_and_its_float_form() {
    let device = cpu_device();
    let model = model();
    let x = src(2, 6);
    let by_flag = model.forward(x.clone(), None, None, true).unwrap();
    let by_mask = model
        .forward(x.clone(), Some(SrcMask::causal(6, &device)), None, false)
        .unwrap();
    // PyTorch's generate_square_subsequent_mask(6): -inf above the diagonal, 0 elsewhere.
    let values: Vec<f32> = (0..36)
        .map(|k| {
            if k % 6 > k / 6 {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let float_mask = Tensor::<Cpu, 2>::from_data(TensorData::new(values, [6, 6]), &device);
    let by_float = model
        .forward(x, Some(SrcMask::Float2(float_mask)), None, false)
        .unwrap();
    let a = HostTensor::from_tensor(by_flag);
    assert!(max_abs_diff(&a, &HostTensor::from_tensor(by_mask)) < 1e-6);
    assert!(max_abs_diff(&a, &HostTensor::from_tensor(by_float)) < 1e-6);
}

#[test]
fn padding_does_not_change_real_tokens() {
    let model = model();
    let x = src(1, 4);
    let alone = HostTensor::from_tensor(model.forward(x.clone(), None, None, false).unwrap());
    // Append 3 garbage tokens and mask them as padding.
    let padded = Tensor::cat(vec![x, src(1, 3).mul_scalar(100.0)], 1);
    let out = model
        .forward(
            padded,
            None,
            Some(KeyPaddingMask::from_lengths(&[4], 7)),
            false,
        )
        .unwrap();
    let real = HostTensor::from_tensor(out.narrow(1, 0, 4));
    assert!(max_abs_diff(&alone, &real) < 1e-5);
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let device = cpu_device();
    let model = model();
    let err = model
        .forward(Tensor::zeros([2, 5, 8], &device), None, None, false)
        .unwrap_err();
    assert!(matches!(err, KilnError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("d_model = 16"), "{err}");

    let bad_mask = SrcMask::Bool2(Tensor::<Cpu, 2, Bool>::from_data(
        TensorData::new(vec![false; 12], [3, 4]),
        &device,
    ));
    let err = model
        .forward(src(2, 5), Some(bad_mask), None, false)
        .unwrap_err();
    assert!(
        err.to_string().contains("src_mask has shape [3, 4]"),
        "{err}"
    );

    let bad_heads = SrcMask::Float3(Tensor::<Cpu, 3>::zeros([3, 5, 5], &device));
    let err = model
        .forward(src(2, 5), Some(bad_heads), None, false)
        .unwrap_err();
    assert!(
        err.to_string().contains("[B*nhead, S, S] = [8, 5, 5]"),
        "{err}"
    );

    let bad_pad = KeyPaddingMask::from_lengths(&[5, 5, 5], 5);
    let err = model
        .forward(src(2, 5), None, Some(bad_pad), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("src_key_padding_mask has shape [3, 5]"),
        "{err}"
    );
}

#[test]
fn nan_input_is_reported_when_checked() {
    let device = cpu_device();
    let model = model();
    let x = src(1, 3).slice_assign(
        [0..1, 1..2, 0..1],
        Tensor::from_data([[[f32::NAN]]], &device),
    );
    let _ = &model;
    let err = kiln::ensure_finite(&x, "src").unwrap_err();
    assert!(
        matches!(err, KilnError::NonFinite { count: 1, .. }),
        "{err}"
    );
}

#[test]
fn packed_padding_matches_padded_on_real_tokens_and_zeros_the_rest() {
    let model = model();
    // The second has no padding: on burn-flex it still takes the packed path (its kernel).
    for (lengths, causal) in [([6, 2, 0, 5], false), ([6, 2, 0, 5], true), ([6; 4], false)] {
        let x = src(4, 6);
        let padding = KeyPaddingMask::<Cpu>::from_lengths(&lengths, 6);
        let input = EncoderInput::new(x)
            .key_padding_mask(padding)
            .causal(causal);
        let padded = HostTensor::from_tensor(model.run(input.clone()).unwrap().output);
        let packed = model
            .run_with(
                &kiln::Execution::default().with_pack_padding(true),
                input.output_hidden_states(true),
            )
            .unwrap();
        assert_eq!(packed.hidden_states.as_ref().unwrap().len(), 2);
        let packed = HostTensor::from_tensor(packed.output);
        for (b, &len) in lengths.iter().enumerate() {
            for pos in 0..6 {
                let row = (b * 6 + pos) * 16;
                let (p, q) = (&packed.data[row..row + 16], &padded.data[row..row + 16]);
                if pos < len {
                    let err = p
                        .iter()
                        .zip(q)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(err < 1e-5, "item {b} pos {pos}: {err}");
                } else {
                    assert!(p.iter().all(|&v| v == 0.0), "padding must be zero");
                }
            }
        }
    }
}

#[test]
fn a_bool_padding_tensor_takes_the_padded_path() {
    // Only host-side lengths are packed: a mask on the device is never read back to find them.
    let device = cpu_device();
    let model = model();
    let x = src(1, 4);
    let holes = Tensor::<Cpu, 2, Bool>::from_data(
        TensorData::new(vec![false, true, false, false], [1, 4]),
        &device,
    );
    let input = EncoderInput::new(x).key_padding_mask(holes);
    let a = HostTensor::from_tensor(model.run(input.clone()).unwrap().output);
    let b = HostTensor::from_tensor(
        model
            .run_with(&kiln::Execution::default().with_pack_padding(true), input)
            .unwrap()
            .output,
    );
    assert_eq!(a, b);
}

#[test]
fn training_with_dropout_never_packs_the_padding() {
    // Attention dropout runs on the padded path: a packed request under autodiff with dropout
    // takes it (padded positions hold computed values, not the packed path's zeros).
    use kiln::backend::CpuAutodiff;
    let device = cpu_device();
    let model = TransformerEncoderConfig::new(16, 4, 1)
        .with_dim_feedforward(32)
        .with_batch_first(true)
        .with_dropout(0.5)
        .init::<CpuAutodiff>(&device);
    // Item 1 has 2 real tokens of 4; its last position is padding.
    let last_padded_row = |model: &kiln::TransformerEncoder<CpuAutodiff>| {
        let x = Tensor::random([2, 4, 16], Distribution::Normal(0.0, 1.0), &device);
        let padding = KeyPaddingMask::<CpuAutodiff>::from_lengths(&[4, 2], 4);
        let input = EncoderInput::new(x).key_padding_mask(padding);
        let out = model
            .run_with(&kiln::Execution::default().with_pack_padding(true), input)
            .unwrap();
        let out = HostTensor::from_tensor(out.output.inner());
        out.data[(4 + 3) * 16..(4 + 4) * 16].to_vec()
    };
    assert!(last_padded_row(&model).iter().any(|&v| v != 0.0));
    // Without dropout the same request packs: the padded position is zero.
    assert!(last_padded_row(&model.with_dropout(0.0))
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn attention_kernels_agree_and_auto_is_fused_on_ndarray() {
    let device = cpu_device();
    assert!(kiln::AttentionKernel::Auto.is_fused::<Cpu>(&device));
    kiln_tests::check_attention_kernels_agree::<Cpu>(&device, 1e-5);
}

#[test]
fn splitting_the_batch_across_threads_agrees_with_one_pass() {
    let device = cpu_device();
    kiln_tests::check_batch_split_agrees::<Cpu>(&device, 1e-5);
}

#[test]
fn batch_split_auto_splits_ndarray_but_never_autodiff() {
    use kiln::BatchSplit;
    let device = cpu_device();
    assert_eq!(
        BatchSplit::Auto.slices::<Cpu>(8, &device),
        rayon::current_num_threads().min(8)
    );
    assert_eq!(BatchSplit::Auto.slices::<Cpu>(1, &device), 1);
    assert_eq!(BatchSplit::Off.slices::<Cpu>(8, &device), 1);
    assert_eq!(BatchSplit::Slices(3).slices::<Cpu>(8, &device), 3);
    assert_eq!(BatchSplit::Slices(3).slices::<Cpu>(2, &device), 2);
    assert_eq!(BatchSplit::Slices(0).slices::<Cpu>(2, &device), 1);
    assert_eq!(
        BatchSplit::Slices(3).slices::<burn::backend::Autodiff<Cpu>>(8, &device),
        1
    );
}

#[test]
fn an_all_padding_batch_has_one_hidden_state_per_layer_when_packed() {
    let device = cpu_device();
    let model: TransformerEncoder<Cpu> = TransformerEncoderConfig::new(8, 2, 3)
        .with_batch_first(true)
        .init(&device);
    let src = Tensor::<Cpu, 3>::ones([2, 4, 8], &device);
    let out = model
        .run_with(
            &kiln::Execution::default().with_pack_padding(true),
            EncoderInput::new(src)
                .key_padding_mask(KeyPaddingMask::from_lengths(&[0, 0], 4))
                .output_hidden_states(true),
        )
        .unwrap();
    let hidden = out.hidden_states.unwrap();
    assert_eq!(hidden.len(), 3);
    assert!(hidden.iter().all(|h| h.dims() == [2, 4, 8]));
}

#[test]
fn a_split_batch_checks_mask_shapes_on_the_whole_batch() {
    use kiln::BatchSplit;
    let device = cpu_device();
    let model: TransformerEncoder<Cpu> = TransformerEncoderConfig::new(8, 2, 1)
        .with_batch_first(true)
        .init(&device);
    let src = Tensor::<Cpu, 3>::ones([3, 7, 8], &device);
    // 4 rows for a batch of 3: each slice alone could look right or wrong; the error must
    // name the whole batch's shape either way.
    let mask = KeyPaddingMask::from_lengths(&[7, 7, 7, 7], 7);
    let err = model
        .run_with(
            &kiln::Execution::default().with_batch_split(BatchSplit::Slices(2)),
            EncoderInput::new(src).key_padding_mask(mask),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("[4, 7]") && text.contains("[B, S] = [3, 7]"),
        "{text}"
    );
}
