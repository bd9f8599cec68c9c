//! What the compression commands read and write: the source model (a text model directory, or
//! a plain encoder's files), the output directory, the data, and how they are checked and
//! loaded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::Args;
use kiln::atomic::StagedDir;
use kiln_compress::RandomData;
use kiln_text::TextEncoder;

use crate::backend_select::BackendChoice;
use crate::common::{inside, read_lines};
use crate::usage::usage;

/// Where the model comes from and where the compressed one goes.
#[derive(Args, Debug, Clone)]
pub struct CompressSource {
    /// A text model directory (BERT family: config.json, model.safetensors, tokenizer.json, ...).
    #[arg(long, conflicts_with_all = ["config", "weights"], required_unless_present = "config")]
    pub model: Option<PathBuf>,
    /// A plain encoder's config.json (nn.TransformerEncoder fields).
    #[arg(long, requires = "weights")]
    pub config: Option<PathBuf>,
    /// The plain encoder's model.safetensors.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// Output directory (created; config.json + model.safetensors, and the tokenizer files of
    /// a text model). Must not be, or be inside, the source model's directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists and is not empty (the whole directory: never merged into).
    #[arg(long)]
    pub force: bool,
    /// Where the command writes until its output is complete (set by [`stage`]).
    #[arg(skip)]
    pub staging: Option<PathBuf>,
    /// Backend (auto: wgpu with a GPU adapter, else flex).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Unlabeled text lines (text models: importance and distillation data), one per line.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Held-out lines for the fidelity report (default: the last 10% of --data).
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// Texts (or random input sequences) per batch.
    #[arg(long, default_value_t = 16, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub batch_size: usize,
    /// Plain encoders: tokens per random input sequence.
    #[arg(long, default_value_t = 32, value_parser = crate::limits::count::<1, { crate::limits::MAX_SEQ }>)]
    pub seq: usize,
    /// Seed of random choices, batch order, random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Checks the shared arguments, and that `--out` is neither the directory of an input (the
/// source's files and `other_inputs`, e.g. a teacher) nor inside a model directory.
pub fn check(source: &CompressSource, other_inputs: &[&Path]) -> Result<()> {
    if source.batch_size == 0 || source.seq == 0 {
        return Err(usage("--batch-size and --seq must be at least 1"));
    }
    let inputs: Vec<&Path> = [&source.model, &source.config, &source.weights]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .chain(other_inputs.iter().copied())
        .collect();
    for input in inputs {
        let is_dir = input.is_dir();
        let dir = if is_dir {
            input
        } else {
            input.parent().unwrap_or(Path::new("."))
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let out = &source.out;
        let same = matches!((out.canonicalize(), dir.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if same || is_dir && inside(&out.join("x"), dir) {
            return Err(usage(format!(
                "--out {} is the source model's directory (or inside it): kiln never writes over its inputs",
                out.display()
            )));
        }
    }
    // `--force` replaces --out whole: it must not hold any input (the data files included).
    let all_inputs = [
        &source.model,
        &source.config,
        &source.weights,
        &source.data,
        &source.heldout,
    ];
    let all_inputs = all_inputs
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .chain(other_inputs.iter().copied());
    for input in all_inputs {
        if source.out.exists() && inside(input, &source.out) {
            return Err(usage(format!(
                "--out {} holds the input {}: kiln never writes over its inputs",
                source.out.display(),
                input.display()
            )));
        }
    }
    kiln::atomic::check_new_dir(&source.out, source.force)
        .map_err(|e| usage(format!("--out {e}")))?;
    if let Some(model) = &source.model {
        if !model.is_dir() {
            return Err(usage(format!(
                "--model {}: not a directory",
                model.display()
            )));
        }
    }
    Ok(())
}

impl CompressSource {
    /// The directory to write the model and report into: the staging directory once staged.
    pub fn write_dir(&self) -> &Path {
        self.staging.as_deref().unwrap_or(&self.out)
    }
}

/// Stages `--out`: the returned source writes into a hidden directory beside it, which
/// [`StagedDir::commit`] moves into place once everything is written (a failure or a signal
/// leaves nothing).
pub fn stage(source: &CompressSource) -> Result<(StagedDir, CompressSource)> {
    let staged = StagedDir::new(&source.out, source.force)?;
    let mut staging = source.clone();
    staging.staging = Some(staged.path().to_path_buf());
    Ok((staged, staging))
}

/// Training and held-out lines: `--heldout`, or the last 10% of `--data`.
pub fn text_data(source: &CompressSource) -> Result<(Vec<String>, Vec<String>)> {
    let mut train = match &source.data {
        Some(path) => read_lines(path)?,
        None => Vec::new(),
    };
    let heldout = match &source.heldout {
        Some(path) => read_lines(path)?,
        None if train.len() >= 2 => {
            let n = (train.len() / 10).max(1);
            train.split_off(train.len() - n)
        }
        None => Vec::new(),
    };
    Ok((train, heldout))
}

/// Random training and held-out inputs of a plain encoder (`--batch-size`, `--seq`, `--seed`),
/// `batches` of them for importance and calibration.
pub fn random_data(source: &CompressSource, batches: usize) -> RandomData {
    RandomData::new(source.batch_size, source.seq, source.seed, batches)
}

/// The text model in `dir`, batching `--batch-size` texts.
pub fn load_text<B: Backend>(
    dir: &Path,
    source: &CompressSource,
    device: &B::Device,
) -> Result<TextEncoder<B>> {
    Ok(TextEncoder::<B>::from_dir(dir, device)
        .with_context(|| format!("cannot load text model {}", dir.display()))?
        .with_batch_size(source.batch_size))
}
