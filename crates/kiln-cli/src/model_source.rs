//! Where a command's model comes from: files, or the built-in default.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Backend;
use clap::Args;
use kiln::weights::load_slots;
use kiln::{Activation, TensorFile, TransformerEncoder, TransformerEncoderConfig};

/// `--config` / `--weights`, shared by subcommands that load a plain encoder.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// config.json with PyTorch's nn.TransformerEncoder fields (default: the built-in model).
    #[arg(long, requires = "weights")]
    pub config: Option<PathBuf>,
    /// model.safetensors with PyTorch's state_dict names.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// Seed of the built-in model's weights and of random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The built-in default model of `kiln forward` without `--config/--weights`: 4 post-norm GELU
/// layers, d_model 256, 8 heads, feed-forward 1024, batch-first, weights drawn from `--seed`.
pub fn default_config() -> TransformerEncoderConfig {
    TransformerEncoderConfig::new(256, 8, 4)
        .with_dim_feedforward(1024)
        .with_activation(Activation::Gelu)
        .with_batch_first(true)
}

/// PyTorch-style random weights for `config`, the same on every backend for a given seed
/// (drawn on the CPU, then copied to the target device).
pub fn seeded_weights(config: &TransformerEncoderConfig, seed: u64) -> Result<TensorFile> {
    use kiln::backend::{cpu_device, Cpu};
    let device = cpu_device();
    <Cpu as Backend>::seed(&device, seed);
    let mut model = config.try_init::<Cpu>(&device)?;
    Ok(model.state_dict())
}

/// The model named by `args` (files) or the built-in default (its seeded weights loaded into a
/// zeroed skeleton).
pub fn load<B: Backend>(args: &ModelArgs, device: &B::Device) -> Result<TransformerEncoder<B>> {
    match (&args.config, &args.weights) {
        (Some(config), Some(weights)) => load_files(config, weights, device),
        _ => {
            let config = default_config();
            let weights = seeded_weights(&config, args.seed)?;
            let mut model = config.try_init_zeroed::<B>(device)?;
            load_slots(model.weight_slots(""), &weights, device).into_result()?;
            Ok(model)
        }
    }
}

/// Loads `config.json` + `model.safetensors` into a zeroed skeleton (no random init drawn only
/// to be overwritten), naming the file that failed. The config is checked against the weights
/// file before anything is built.
pub fn load_files<B: Backend>(
    config: &Path,
    weights: &Path,
    device: &B::Device,
) -> Result<TransformerEncoder<B>> {
    let cfg = naming(
        "config",
        config,
        TransformerEncoderConfig::from_json_file(config)
            .and_then(|cfg| cfg.validate().map(|_| cfg)),
    )?;
    let file = naming("weights", weights, TensorFile::read(weights))?;
    naming(
        "config",
        config,
        kiln::weights::check_file_holds(&file, cfg.num_params_exact(), weights),
    )?;
    let model = cfg.try_init_zeroed::<B>(device)?;
    naming("weights", weights, model.load_tensor_file(&file))
}

/// `WHAT PATH: error`, or `WHAT: error` when the error names the path already (I/O and format
/// errors do): a path is said once.
fn naming<T>(what: &str, path: &Path, result: kiln::Result<T>) -> Result<T> {
    result.map_err(|e| {
        let shown = path.display().to_string();
        if e.to_string().contains(&shown) {
            anyhow::Error::new(e).context(what.to_string())
        } else {
            anyhow::Error::new(e).context(format!("{what} {shown}"))
        }
    })
}
