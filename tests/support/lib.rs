//! Shared helpers of kiln's workspace tests: the PyTorch reference cases in
//! `tests/fixtures/encoder/`, written by `scripts/gen_fixtures.py`.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
pub mod http_client;
pub mod minilm;

use kiln::{EncoderInput, HostTensor, KeyPaddingMask, SrcMask, TensorFile, TransformerEncoder};

/// `tests/fixtures` of the workspace.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// One PyTorch reference case.
pub struct Case {
    /// Folder name.
    pub name: String,
    /// Folder with config.json, model.safetensors, case.safetensors, meta.json.
    pub dir: PathBuf,
    /// Inputs, masks, expected outputs.
    pub tensors: TensorFile,
    /// `is_causal` of the reference run.
    pub is_causal: bool,
}

/// Every encoder case, sorted by name.
pub fn encoder_cases() -> Vec<Case> {
    let root = fixtures_dir().join("encoder");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "expected the committed fixtures in {}",
        root.display()
    );
    names
        .into_iter()
        .map(|name| load_case(&root.join(&name)))
        .collect()
}

/// Loads one case folder.
pub fn load_case(dir: &Path) -> Case {
    let tensors = TensorFile::read(dir.join("case.safetensors")).expect("case.safetensors");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        dir: dir.to_path_buf(),
        tensors,
        is_causal: meta["is_causal"].as_bool().unwrap(),
    }
}

impl Case {
    /// A named tensor of the case.
    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.tensors.tensors.get(key)
    }

    /// The model, loaded through kiln's public API.
    pub fn model<B: Backend>(&self, device: &B::Device) -> TransformerEncoder<B> {
        TransformerEncoder::from_dir(&self.dir, device)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The forward inputs of the case on `device`.
    pub fn input<B: Backend>(&self, device: &B::Device) -> EncoderInput<B> {
        let mut input = EncoderInput::new(self.get("src").unwrap().to_tensor::<B, 3>(device))
            .causal(self.is_causal);
        if let Some(m) = self.get("src_mask_bool") {
            input.src_mask = Some(match m.shape.len() {
                2 => SrcMask::Bool2(to_bool::<B, 2>(m, device)),
                _ => SrcMask::Bool3(to_bool::<B, 3>(m, device)),
            });
        }
        if let Some(m) = self.get("src_mask_float") {
            input.src_mask = Some(match m.shape.len() {
                2 => SrcMask::Float2(m.to_tensor(device)),
                _ => SrcMask::Float3(m.to_tensor(device)),
            });
        }
        if let Some(m) = self.get("key_padding_mask") {
            input.src_key_padding_mask = Some(KeyPaddingMask::Bool(to_bool::<B, 2>(m, device)));
        }
        if let Some(m) = self.get("key_padding_mask_float") {
            input.src_key_padding_mask = Some(KeyPaddingMask::Float(m.to_tensor(device)));
        }
        input
    }

    /// Whether the model is batch-first.
    pub fn batch_first(&self) -> bool {
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("config.json")).unwrap())
                .unwrap();
        config["batch_first"].as_bool().unwrap_or(false)
    }

    /// Max |a - expected| over the positions that are not padding.
    pub fn output_error(&self, output: &HostTensor) -> f32 {
        self.output_errors(output).into_iter().fold(0.0, f32::max)
    }

    /// |a - expected| at every value of the positions that are not padding.
    pub fn output_errors(&self, output: &HostTensor) -> Vec<f32> {
        let expected = self.get("expected").unwrap();
        assert_eq!(output.shape, expected.shape, "{}: output shape", self.name);
        let valid = self.get("valid").unwrap();
        let [a, b, e] = [output.shape[0], output.shape[1], output.shape[2]];
        let mut errors = Vec::with_capacity(a * b * e);
        for i in 0..a {
            for j in 0..b {
                // valid is [B, S]; the output is [B, S, E] or [S, B, E].
                let (batch, pos) = if self.batch_first() { (i, j) } else { (j, i) };
                if valid.data[batch * valid.shape[1] + pos] < 0.5 {
                    continue;
                }
                for k in 0..e {
                    let idx = (i * b + j) * e + k;
                    errors.push((output.data[idx] - expected.data[idx]).abs());
                }
            }
        }
        errors
    }
}

/// A 0/1 host tensor as a bool tensor.
pub fn to_bool<B: Backend, const D: usize>(
    t: &HostTensor,
    device: &B::Device,
) -> Tensor<B, D, Bool> {
    let values: Vec<bool> = t.data.iter().map(|&v| v > 0.5).collect();
    Tensor::from_data(TensorData::new(values, t.shape.clone()), device)
}

/// Max |a - b| of two equally shaped host tensors.
pub fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs every case on backend `B` and checks outputs and attention weights within `tol`.
pub fn check_parity<B: Backend>(device: &B::Device, tol: f32) {
    let mut report = Vec::new();
    for case in encoder_cases() {
        let model = case.model::<B>(device);
        // The fast path (fused attention, no weights).
        let fast = model.run(case.input::<B>(device)).unwrap();
        let fast_err = case.output_error(&HostTensor::from_tensor(fast.output));
        // The weights-returning path.
        let full = model
            .run(case.input::<B>(device).need_weights(true))
            .unwrap();
        let full_err = case.output_error(&HostTensor::from_tensor(full.output));
        let attentions = full.attentions.unwrap();
        assert_eq!(attentions.len(), model.layers.len(), "{}", case.name);
        let mut attn_err = 0.0f32;
        for (i, w) in attentions.into_iter().enumerate() {
            let expected = case.get(&format!("attn.{i}")).unwrap();
            attn_err = attn_err.max(max_abs_diff(&HostTensor::from_tensor(w), expected));
        }
        report.push(format!(
            "{:<34} fused {fast_err:.2e}  explicit {full_err:.2e}  weights {attn_err:.2e}",
            case.name
        ));
        assert!(
            fast_err <= tol && full_err <= tol && attn_err <= tol,
            "{}: error above {tol:e}:\n{}",
            case.name,
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// Every attention kernel gives the same output on backend `B` (within `tol`): the matmul path,
/// burn's fused op and the weights-returning explicit path, across masks (bool per-head
/// `src_mask`, float `src_mask`, causal, padding with an all-padding item whose rows attend to
/// nothing) and with padding packed away.
pub fn check_attention_kernels_agree<B: Backend>(device: &B::Device, tol: f32) {
    use burn::tensor::Distribution;
    use kiln::{AttentionKernel, TransformerEncoderConfig};

    let (batch, seq, heads, d_model) = (3, 7, 4, 16);
    let model: TransformerEncoder<B> = TransformerEncoderConfig::new(d_model, heads, 2)
        .with_dim_feedforward(32)
        .with_batch_first(true)
        .with_final_norm(true)
        .init(device);
    let src = || Tensor::<B, 3>::random([batch, seq, d_model], Distribution::Default, device);
    let x = src();
    let lengths = [7, 3, 0];
    let padding = || KeyPaddingMask::<B>::from_lengths(&lengths, seq);
    let bool_padding = kiln::padding_from_lengths::<B>(&lengths, seq, device);
    let per_head_bool =
        Tensor::<B, 3>::random([batch * heads, seq, seq], Distribution::Default, device)
            .greater_elem(0.7);
    let float_mask = Tensor::<B, 2>::random([seq, seq], Distribution::Normal(0.0, 1.0), device);
    let cases: Vec<(&str, EncoderInput<B>)> = vec![
        ("no mask", EncoderInput::new(x.clone())),
        ("causal", EncoderInput::new(x.clone()).causal(true)),
        (
            "padding (bool tensor)",
            EncoderInput::new(x.clone()).key_padding_mask(bool_padding),
        ),
        (
            "padding (lengths)",
            EncoderInput::new(x.clone()).key_padding_mask(padding()),
        ),
        (
            "per-head bool src_mask + padding + causal",
            EncoderInput::new(x.clone())
                .src_mask(per_head_bool)
                .key_padding_mask(padding())
                .causal(true),
        ),
        (
            "float src_mask",
            EncoderInput::new(x.clone()).src_mask(float_mask),
        ),
    ];
    // Each case padded, and with the padding skipped where it can be.
    let packed_case = (
        "packed padding, causal",
        EncoderInput::new(x.clone())
            .key_padding_mask(padding())
            .causal(true),
    );
    let cases = cases
        .into_iter()
        .map(|(name, input)| (name, input, false))
        .chain([(packed_case.0, packed_case.1, true)]);
    for (name, input, pack) in cases {
        let run = |input: EncoderInput<B>, kernel: AttentionKernel| {
            let execution = kiln::Execution::default()
                .with_pack_padding(pack)
                .with_attention_kernel(kernel);
            let out = HostTensor::from_tensor(model.run_with(&execution, input).unwrap().output);
            assert!(
                out.data.iter().all(|v| v.is_finite()),
                "{name}: non-finite output ({kernel:?})"
            );
            out
        };
        let matmul = run(input.clone(), AttentionKernel::Matmul);
        let fused = run(input.clone(), AttentionKernel::Fused);
        let auto = run(input.clone(), AttentionKernel::Auto);
        let diff = max_abs_diff(&matmul, &fused);
        assert!(diff <= tol, "{name}: matmul vs fused op differ by {diff}");
        assert!(max_abs_diff(&auto, &matmul) <= tol, "{name}: auto differs");
        if !pack {
            let explicit = run(input.need_weights(true), AttentionKernel::Auto);
            let diff = max_abs_diff(&matmul, &explicit);
            assert!(diff <= tol, "{name}: matmul vs explicit differ by {diff}");
        }
    }
}

/// Checks that a forward pass split across threads ([`kiln::BatchSplit`]) gives what the
/// unsplit pass gives, under every mask kind, with packed padding, attention weights, hidden
/// states and Linear inputs, on a sequence-first model (batch on dimension 1).
pub fn check_batch_split_agrees<B: Backend>(device: &B::Device, tol: f32) {
    use burn::tensor::Distribution;
    use kiln::{BatchSplit, TransformerEncoderConfig};

    let (batch, seq, heads, d_model) = (5, 7, 4, 16);
    let model: TransformerEncoder<B> = TransformerEncoderConfig::new(d_model, heads, 2)
        .with_dim_feedforward(32)
        .with_final_norm(true)
        .init(device);
    let x = Tensor::<B, 3>::random([seq, batch, d_model], Distribution::Default, device);
    let lengths = [7, 3, 0, 5, 7];
    let padding = || KeyPaddingMask::<B>::from_lengths(&lengths, seq);
    let float_padding =
        Tensor::<B, 2>::random([batch, seq], Distribution::Normal(0.0, 1.0), device);
    let per_head_bool =
        Tensor::<B, 3>::random([batch * heads, seq, seq], Distribution::Default, device)
            .greater_elem(0.7);
    let float_mask = Tensor::<B, 2>::random([seq, seq], Distribution::Normal(0.0, 1.0), device);
    let cases: Vec<(&str, EncoderInput<B>)> = vec![
        ("no mask", EncoderInput::new(x.clone())),
        ("causal", EncoderInput::new(x.clone()).causal(true)),
        (
            "padding, weights, hidden states",
            EncoderInput::new(x.clone())
                .key_padding_mask(padding())
                .need_weights(true)
                .output_hidden_states(true),
        ),
        (
            "float padding + float src_mask",
            EncoderInput::new(x.clone())
                .key_padding_mask(float_padding)
                .src_mask(float_mask),
        ),
        (
            "per-head bool src_mask",
            EncoderInput::new(x.clone()).src_mask(per_head_bool),
        ),
        (
            "packed padding, causal, hidden states",
            EncoderInput::new(x.clone())
                .key_padding_mask(padding())
                .causal(true)
                .output_hidden_states(true),
        ),
        (
            "linear inputs",
            EncoderInput::new(x.clone())
                .key_padding_mask(padding())
                .output_linear_inputs(true),
        ),
    ];
    for (name, input) in cases {
        // Padding given as lengths is skipped (where nothing else needs the padded layout).
        let execution = kiln::Execution::default().with_pack_padding(true);
        let whole = model
            .run_with(&execution.with_batch_split(BatchSplit::Off), input.clone())
            .unwrap();
        for slices in [2, 3, 8] {
            let split = model
                .run_with(
                    &execution.with_batch_split(BatchSplit::Slices(slices)),
                    input.clone(),
                )
                .unwrap();
            let what = format!("{name}, {slices} slices");
            let same3 = |a: &Tensor<B, 3>, b: &Tensor<B, 3>, part: &str| {
                assert_eq!(a.dims(), b.dims(), "{what}: {part} shape");
                let diff = max_abs_diff(
                    &HostTensor::from_tensor(a.clone()),
                    &HostTensor::from_tensor(b.clone()),
                );
                assert!(diff <= tol, "{what}: {part} differs by {diff}");
            };
            same3(&whole.output, &split.output, "output");
            assert_eq!(whole.hidden_states.is_some(), split.hidden_states.is_some());
            for (a, b) in whole
                .hidden_states
                .iter()
                .flatten()
                .zip(split.hidden_states.iter().flatten())
            {
                same3(a, b, "hidden state");
            }
            assert_eq!(whole.attentions.is_some(), split.attentions.is_some());
            for (a, b) in whole
                .attentions
                .iter()
                .flatten()
                .zip(split.attentions.iter().flatten())
            {
                assert_eq!(a.dims(), b.dims(), "{what}: attention shape");
                let diff = max_abs_diff(
                    &HostTensor::from_tensor(a.clone()),
                    &HostTensor::from_tensor(b.clone()),
                );
                assert!(diff <= tol, "{what}: attention differs by {diff}");
            }
            assert_eq!(whole.linear_inputs.is_some(), split.linear_inputs.is_some());
            for (a, b) in whole
                .linear_inputs
                .iter()
                .flatten()
                .zip(split.linear_inputs.iter().flatten())
            {
                same3(&a.in_proj, &b.in_proj, "in_proj input");
                same3(&a.out_proj, &b.out_proj, "out_proj input");
                same3(&a.linear1, &b.linear1, "linear1 input");
                same3(&a.linear2, &b.linear2, "linear2 input");
            }
        }
    }
}
