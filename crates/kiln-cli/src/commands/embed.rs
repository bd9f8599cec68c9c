//! `kiln embed`: sentence embeddings from a pretrained text model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::Args;

use crate::backend_select::{announce, select};
use crate::common::{check_output_file, inside, progress_bar, read_lines, same_file};
use crate::text_model::{self, load, TextModelArgs};
use crate::usage::usage;
use crate::{npy, with_backend};

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

pub fn run(args: &EmbedArgs) -> Result<()> {
    text_model::check(&args.model)?;
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
        check_output_file("--output", out)?;
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

    let bar = progress_bar(
        texts.len() as u64,
        "{bar:30} {pos}/{len} texts, {per_sec}, eta {eta}",
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
        "kiln: embedded {} texts into [{}, {dim}] in {embed_s:.3} s ({per_s:.1} texts/s) on {backend}, {}; model load {load_s:.3} s",
        texts.len(),
        texts.len(),
        encoder.precision()
    );

    if let Some(out) = &args.output {
        let flat: Vec<f32> = rows.concat();
        npy::write_f32(out, &[texts.len(), dim], &flat)?;
        if args.json {
            let summary = serde_json::json!({
                "output": out,
                "shape": [texts.len(), dim],
                "backend": backend,
                "precision": encoder.precision().name(),
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
            "precision": encoder.precision().name(),
            "embeddings": rows,
        });
        println!("{json}");
    }
    Ok(())
}
