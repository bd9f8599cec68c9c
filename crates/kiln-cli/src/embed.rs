//! `kiln embed` and `kiln similarity`: sentence embeddings from a pretrained text model.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_text::{Pooling, TextEncoder};

use crate::backend_select::{select, BackendChoice, Selection};
use crate::info::same_file;
use crate::{npy, usage, with_backend};

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
    /// Backend: auto picks wgpu when a GPU adapter is present, else ndarray.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Truncate texts to this many tokens (default: the model's max_seq_length).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Pooling (default: the model's 1_Pooling/config.json).
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingChoice>,
    /// Do not scale embeddings to unit length, even if the model's modules.json says so.
    #[arg(long)]
    pub no_normalize: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = kiln_text::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Run each batch padded to its longest text instead of skipping the padding (the default
    /// packs the real tokens; the embeddings are the same). For comparison and debugging.
    #[arg(long)]
    pub no_pack_padding: bool,
    /// Split each batch across CPU threads: `auto` (on the CPU backends), `off`, or a number
    /// of slices. The embeddings are the same; for comparison and tuning.
    #[arg(long, default_value = "auto")]
    pub batch_split: kiln::BatchSplit,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// Read one text per line from this file (`-` for stdin) instead of arguments.
    #[arg(long, conflicts_with = "texts")]
    pub input_file: Option<PathBuf>,
    /// Write the embeddings here: f32 .npy [N, dim], one row per text, in input order.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print JSON on stdout: the embeddings, or with --output a summary with timings.
    /// (Without --output, JSON embeddings are printed anyway.)
    #[arg(long)]
    pub json: bool,
    /// The texts.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SimilarityArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// First text.
    pub text_a: String,
    /// Second text.
    pub text_b: String,
}

/// Lines of a text file: one text per line (`\n` or `\r\n`), a final newline ending the last one.
/// Invalid UTF-8 is an error naming the line; so is a file with no lines.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let name = path.display();
    if bytes.is_empty() {
        return Err(usage(format!("{name} is empty: no lines of text")));
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8(line.to_vec())
                .map_err(|e| usage(format!("{name} line {}: invalid UTF-8 ({e})", i + 1)))
        })
        .collect()
}

/// Whether `path` (which may not exist yet, nor its parents) is `dir` or lies inside it: the
/// nearest existing ancestor is resolved (symlinks, `..`) and the rest appended.
pub(crate) fn inside(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let absolute = match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => return false,
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return false,
        }
    }
    let Ok(mut resolved) = existing.canonicalize() else {
        return false;
    };
    resolved.extend(rest.into_iter().rev());
    resolved.starts_with(dir)
}

pub(crate) fn announce(selection: &Selection) {
    if let Some(reason) = &selection.reason {
        eprintln!(
            "kiln: --backend auto picked {} ({reason})",
            selection.backend.name()
        );
    }
}

pub(crate) fn check_model_args(args: &TextModelArgs) -> Result<()> {
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

pub(crate) fn load<B: Backend>(args: &TextModelArgs, device: &B::Device) -> Result<TextEncoder<B>> {
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
    Ok(encoder
        .with_batch_size(args.batch_size)
        .with_pack_padding(!args.no_pack_padding)
        .with_batch_split(args.batch_split))
}

pub fn run_embed(args: &EmbedArgs) -> Result<()> {
    check_model_args(&args.model)?;
    let texts = match &args.input_file {
        Some(path) => read_lines(path)?,
        None if args.texts.is_empty() => {
            return Err(usage("give texts as arguments or --input-file FILE"))
        }
        None => args.texts.clone(),
    };
    if let (Some(out), Some(input)) = (&args.output, &args.input_file) {
        if same_file(out, input) {
            return Err(usage(format!(
                "--output {} is the same file as --input-file: kiln never overwrites its inputs",
                out.display()
            )));
        }
    }
    if let Some(out) = &args.output {
        if inside(out, &args.model.model) {
            return Err(usage(format!(
                "--output {} is inside the model directory: kiln never writes there",
                out.display()
            )));
        }
    }
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| embed::<B>(
        args,
        &texts,
        &device,
        selection.backend.name()
    ))
}

fn embed<B: Backend>(
    args: &EmbedArgs,
    texts: &[String],
    device: &B::Device,
    backend: &str,
) -> Result<()> {
    let start = Instant::now();
    let encoder = load::<B>(&args.model, device)?;
    let load_s = start.elapsed().as_secs_f64();

    let bar = ProgressBar::with_draw_target(Some(texts.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} texts, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let start = Instant::now();
    let rows = encoder
        .embed_with_progress(texts, |n| bar.inc(n as u64))
        .context("embedding failed")?;
    B::sync(device).ok();
    let embed_s = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let dim = encoder.dim();
    let per_s = texts.len() as f64 / embed_s;
    eprintln!(
        "kiln: embedded {} texts into [{}, {dim}] in {embed_s:.3} s ({per_s:.1} texts/s) on {backend}; model load {load_s:.3} s",
        texts.len(),
        texts.len()
    );

    if let Some(out) = &args.output {
        let flat: Vec<f32> = rows.concat();
        npy::write_f32(out, &[texts.len(), dim], &flat)?;
        if args.json {
            let summary = serde_json::json!({
                "output": out,
                "shape": [texts.len(), dim],
                "backend": backend,
                "max_seq_length": encoder.max_seq_length(),
                "pooling": encoder.pipeline.pooling.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
                "normalize": encoder.pipeline.normalize,
                "load_seconds": load_s,
                "embed_seconds": embed_s,
                "texts_per_second": per_s,
            });
            println!("{summary}");
        }
    } else {
        let json = serde_json::json!({
            "dim": dim,
            "backend": backend,
            "embeddings": rows,
        });
        println!("{json}");
    }
    Ok(())
}

pub fn run_similarity(args: &SimilarityArgs) -> Result<()> {
    check_model_args(&args.model)?;
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| {
        let encoder = load::<B>(&args.model, &device)?;
        let cosine = encoder
            .similarity(&args.text_a, &args.text_b)
            .context("embedding failed")?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"cosine": cosine, "backend": selection.backend.name()})
            );
        } else {
            println!("{cosine:.6}");
        }
        Ok(())
    })
}
