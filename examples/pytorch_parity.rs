//! Load an encoder exported from PyTorch (`scripts/export_torch.py`) and compare kiln's output
//! with PyTorch's on a reference case of `tests/fixtures/encoder/` (see its README): the
//! case's `case.safetensors` holds PyTorch's input, masks and output, `meta.json` the flags.
//!
//! ```sh
//! cargo run --example pytorch_parity [-- tests/fixtures/encoder/causal_key_padding]
//! ```

use burn::tensor::{Bool, Tensor, TensorData};
use kiln::backend::{cpu_device, Cpu};
use kiln::{EncoderInput, HostTensor, KeyPaddingMask, SrcMask, TensorFile, TransformerEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fixtures/encoder/causal_key_padding".into()),
    );
    let device = cpu_device();
    let model = TransformerEncoder::<Cpu>::from_dir(&dir, &device)?;
    let case = TensorFile::read(dir.join("case.safetensors"))?;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json"))?)?;
    let tensor = |key: &str| case.tensors.get(key);
    let bools = |t: &HostTensor| -> TensorData {
        let values: Vec<bool> = t.data.iter().map(|&v| v != 0.0).collect();
        TensorData::new(values, t.shape.clone())
    };
    println!(
        "{}: {} layers, d_model {}, nhead {}, batch_first {}",
        dir.display(),
        model.config.num_layers,
        model.config.d_model,
        model.config.nhead,
        model.config.batch_first
    );

    // PyTorch's forward(src, mask, src_key_padding_mask, is_causal), from the case's tensors.
    let src = tensor("src").ok_or("case has no src")?;
    let mut input = EncoderInput::new(src.to_tensor::<Cpu, 3>(&device))
        .causal(meta["is_causal"].as_bool().unwrap_or(false));
    if let Some(m) = tensor("src_mask_bool") {
        input.src_mask = Some(match m.shape.len() {
            2 => SrcMask::Bool2(Tensor::<Cpu, 2, Bool>::from_data(bools(m), &device)),
            _ => SrcMask::Bool3(Tensor::<Cpu, 3, Bool>::from_data(bools(m), &device)),
        });
    }
    if let Some(m) = tensor("src_mask_float") {
        input.src_mask = Some(match m.shape.len() {
            2 => SrcMask::Float2(m.to_tensor(&device)),
            _ => SrcMask::Float3(m.to_tensor(&device)),
        });
    }
    if let Some(m) = tensor("key_padding_mask") {
        let mask = Tensor::<Cpu, 2, Bool>::from_data(bools(m), &device);
        input.src_key_padding_mask = Some(KeyPaddingMask::Bool(mask));
    }
    if let Some(m) = tensor("key_padding_mask_float") {
        input.src_key_padding_mask = Some(KeyPaddingMask::Float(m.to_tensor(&device)));
    }
    let out = HostTensor::from_tensor(model.run(input)?.output);

    // PyTorch's values at padded positions depend on its kernel: compare the positions the
    // case marks valid ([B, S], 1 = compared).
    let expected = tensor("expected").ok_or("case has no expected output")?;
    let valid = tensor("valid").ok_or("case has no valid mask")?;
    let [d0, d1, d_model] = [out.shape[0], out.shape[1], out.shape[2]];
    let mut err = 0.0f32;
    for i in 0..d0 {
        for j in 0..d1 {
            // (batch, position) of row (i, j) in the model's layout.
            let (b, s) = if model.config.batch_first {
                (i, j)
            } else {
                (j, i)
            };
            if valid.data[b * valid.shape[1] + s] > 0.5 {
                let row = (i * d1 + j) * d_model..(i * d1 + j + 1) * d_model;
                for (a, e) in out.data[row.clone()].iter().zip(&expected.data[row]) {
                    err = err.max((a - e).abs());
                }
            }
        }
    }
    println!("max-abs difference from PyTorch over non-padded positions: {err:.3e}");
    Ok(())
}
