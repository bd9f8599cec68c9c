//! Where a command's text model comes from: `--model DIR` and the options that shape its
//! embeddings (`kiln embed`, `similarity`, `explain`, `train-classifier`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::{Args, ValueEnum};
use kiln_text::{Pooling, TextEncoder};

use crate::backend_select::BackendChoice;
use crate::precision::PrecisionChoice;
use crate::usage::usage;

/// `--pooling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingChoice {
    /// Mean over real tokens.
    Mean,
    /// The [CLS] token.
    Cls,
    /// Element-wise max over real tokens.
    Max,
    /// Sum over real tokens / sqrt(count).
    MeanSqrtLen,
}

impl From<PoolingChoice> for Pooling {
    fn from(choice: PoolingChoice) -> Self {
        match choice {
            PoolingChoice::Mean => Pooling::Mean,
            PoolingChoice::Cls => Pooling::Cls,
            PoolingChoice::Max => Pooling::Max,
            PoolingChoice::MeanSqrtLen => Pooling::MeanSqrtLen,
        }
    }
}

/// Model options shared by `embed` and `similarity`.
#[derive(Args, Debug, Clone)]
pub struct TextModelArgs {
    /// A Hugging Face / sentence-transformers directory (config.json, model.safetensors,
    /// tokenizer.json, modules.json, ...), e.g. the one scripts/fetch_minilm.sh writes.
    #[arg(long)]
    pub model: PathBuf,
    /// Backend: auto picks wgpu when a GPU adapter is present, else flex.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Truncate texts to this many tokens (default: the model's max_seq_length).
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_SEQ }>)]
    pub max_seq_length: Option<usize>,
    /// Pooling (default: the model's 1_Pooling/config.json).
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingChoice>,
    /// Do not scale embeddings to unit length, even if the model's modules.json says so.
    #[arg(long)]
    pub no_normalize: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = kiln_text::DEFAULT_BATCH_SIZE, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub batch_size: usize,
    /// Run each batch padded to its longest text instead of skipping the padding (the default
    /// on the CPU backends packs the real tokens; on a GPU batches always run padded, which is
    /// faster there; the embeddings are the same). For comparison and debugging.
    #[arg(long)]
    pub no_pack_padding: bool,
    /// Split each batch across CPU threads: `auto` (on the CPU backends), `off`, or a number
    /// of slices. The embeddings are the same; for comparison and tuning.
    #[arg(long, default_value = "auto")]
    pub batch_split: kiln::BatchSplit,
    /// Arithmetic of the encoder's Linear layers: `auto` (int8 for `kiln quantize`'s output,
    /// else f32), `f32`, or `int8` (quantized at load; integer matrix products on the CPU).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
}

/// Checks `--batch-size` and that `--model` is a directory.
pub fn check(args: &TextModelArgs) -> Result<()> {
    if args.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1"));
    }
    if !args.model.is_dir() {
        return Err(usage(format!(
            "--model {}: not a directory (fetch all-MiniLM-L6-v2 with scripts/fetch_minilm.sh)",
            args.model.display()
        )));
    }
    Ok(())
}

/// Loads the text model of `args`, with its options applied.
pub fn load<B: Backend>(args: &TextModelArgs, device: &B::Device) -> Result<TextEncoder<B>> {
    let mut encoder = TextEncoder::<B>::from_dir(&args.model, device)
        .with_context(|| format!("cannot load text model {}", args.model.display()))?;
    if let Some(n) = args.max_seq_length {
        encoder
            .set_max_seq_length(n)
            .map_err(|e| usage(format!("--max-seq-length: {e}")))?;
    }
    if let Some(pooling) = args.pooling {
        encoder = encoder.with_pooling(pooling.into());
    }
    if args.no_normalize {
        encoder = encoder.with_normalize(false);
    }
    let precision = args.precision.resolve(
        Some(&args.model.join("model.safetensors"))
            .filter(|p| p.is_file())
            .map(|p| p.as_path()),
    )?;
    if args.no_pack_padding {
        encoder = encoder.with_pack_padding(false);
    }
    Ok(encoder
        .with_precision(precision)
        .with_batch_size(args.batch_size)
        .with_batch_split(args.batch_split))
}
