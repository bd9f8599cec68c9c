//! `kiln init`: a freshly initialised model.safetensors for a config.json.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kiln::TransformerEncoderConfig;

use crate::common::{check_output_file, same_file};
use crate::model_source::seeded_weights;
use crate::usage::usage;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// config.json to initialise.
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write model.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: &InitArgs) -> Result<()> {
    if same_file(&args.config, &args.out) {
        return Err(usage(format!(
            "--out {} would overwrite the input --config",
            args.out.display()
        )));
    }
    check_output_file("--out", &args.out)?;
    let config = TransformerEncoderConfig::from_json_file(&args.config)
        .with_context(|| format!("config {}", args.config.display()))?;
    let weights = seeded_weights(&config, args.seed)?;
    weights
        .write(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "kiln: wrote {} ({} parameters, seed {})",
        args.out.display(),
        config.num_params(),
        args.seed
    );
    Ok(())
}
