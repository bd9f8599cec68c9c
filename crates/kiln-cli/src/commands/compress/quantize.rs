//! `kiln quantize`: int8 Linear weights for a text model or a plain encoder, in a new directory
//! that loads everywhere (4x less room for them), with the fidelity of the int8 file and of
//! burn's in-memory int8 to the original.

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::Args;
use kiln::TransformerEncoder;
use kiln_compress::metrics::Fidelity;
use kiln_compress::plain::RandomInputs;
use kiln_compress::quantize::{int8_file, linear_weight_keys, quantize_int8, Granularity};
use kiln_compress::{DataSource, EncoderModel, RandomData, TextData};
use kiln_text::TextEncoder;
use serde_json::{json, Value};

use super::report::{dir_size, write_report};
use super::source::{self, load_text, text_data, CompressSource};
use crate::backend_select::{announce, select};
use crate::model_source::load_files;
use crate::with_backend;

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub source: CompressSource,
}

pub fn run(args: &QuantizeArgs) -> Result<()> {
    let source = &args.source;
    source::check(source, &[])?;
    let selection = select(source.backend)?;
    announce(&selection);
    let (staged, staging) = source::stage(source)?;
    let report = with_backend!(selection.backend, |B, device| {
        quantize_source::<B>(&staging, &device)
    })?;
    if write_report(&staging, &report, staged)? {
        println!(
            "int8 weights: {} -> {} bytes ({:.2}x smaller); fidelity of the int8 file: {}; burn in-memory int8: {}",
            report["bytes_before"], report["bytes_after"],
            report["bytes_before"].as_f64().unwrap_or(0.0) / report["bytes_after"].as_f64().unwrap_or(1.0),
            report["fidelity_int8_file"], report["fidelity_burn_int8"]
        );
        println!("wrote {}", source.out.display());
    }
    Ok(())
}

/// The report of quantizing `--model` or `--config`/`--weights` into `--out`.
fn quantize_source<B: Backend>(source: &CompressSource, device: &B::Device) -> Result<Value> {
    let out = source.write_dir();
    if let Some(dir) = &source.model {
        // The data first: a bad file costs no model load.
        let (_, heldout) = text_data(source)?;
        let original = load_text::<B>(dir, source, device)?;
        let bytes_before = std::fs::metadata(dir.join("model.safetensors"))?.len();
        let texts = if heldout.is_empty() {
            read_default_texts()
        } else {
            heldout
        };
        let data = TextData {
            train: Vec::new(),
            heldout: texts,
            batch_size: source.batch_size,
            seed: source.seed,
            losses: Vec::new(),
        };
        let reload = |out: &Path| -> Result<TextEncoder<B>> {
            Ok(TextEncoder::<B>::from_dir(out, device)?.with_batch_size(source.batch_size))
        };
        let quantized = quantize(original, reload, &data, out)?;
        Ok(json!({
            "kind": "text",
            "quantized_tensors": quantized.tensors,
            "bytes_before": bytes_before,
            "bytes_after": dir_size(out),
            "fidelity_int8_file": quantized.file_fidelity,
            "fidelity_burn_int8": quantized.burn_fidelity,
            "eval_texts": data.heldout.len(),
        }))
    } else {
        let (config, weights) = (
            source.config.as_ref().expect("checked"),
            source.weights.as_ref().expect("checked"),
        );
        let original = load_files::<B>(config, weights, device)?;
        let bytes_before = std::fs::metadata(weights)?.len();
        // Fidelity on two batches of the --seed inputs.
        let inputs = RandomInputs {
            batch: source.batch_size,
            seq: source.seq,
            seed: source.seed,
        };
        let data = RandomData {
            train: inputs,
            heldout: inputs,
            batches: 0,
            heldout_batches: 2,
        };
        let reload = |out: &Path| -> Result<TransformerEncoder<B>> {
            Ok(TransformerEncoder::<B>::from_dir(out, device)?)
        };
        let quantized = quantize(original, reload, &data, out)?;
        Ok(json!({
            "kind": "encoder",
            "quantized_tensors": quantized.tensors,
            "bytes_before": bytes_before,
            "bytes_after": dir_size(out),
            "fidelity_int8_file": quantized.file_fidelity,
            "fidelity_burn_int8": quantized.burn_fidelity,
        }))
    }
}

/// What quantizing a model did.
struct Quantized {
    /// Linear weights stored as int8.
    tensors: usize,
    /// Fidelity of the int8 file, reloaded, to the original.
    file_fidelity: Option<Fidelity>,
    /// Fidelity of burn's in-memory int8 quantization of the encoder to the original.
    burn_fidelity: Option<Fidelity>,
}

/// Writes `original` to `out` with its Linear weights as int8, reloads it with `reload`, and
/// measures both int8 forms against the original on `data`'s held-out data.
fn quantize<B: Backend, D: DataSource>(
    original: D::Model<B>,
    reload: impl Fn(&Path) -> Result<D::Model<B>>,
    data: &D,
    out: &Path,
) -> Result<Quantized> {
    original
        .save_dir(out)
        .context("cannot write the quantized model")?;
    let state = original.state_dict();
    let keys = linear_weight_keys(&state, &original.linear_weight_suffixes());
    kiln::weights::write_atomic(&out.join("model.safetensors"), &int8_file(&state, &keys)?)?;
    let mut reloaded = reload(out)?;
    let file_fidelity = data.fidelity(&original, &reloaded)?;
    // The reloaded model holds the original's other weights (a text model's embeddings stay
    // f32 in the file): with burn's int8 encoder in place, it is the original quantized.
    *reloaded.encoder_mut() = quantize_int8(original.encoder().clone(), Granularity::Tensor);
    let burn_fidelity = data.fidelity(&original, &reloaded)?;
    Ok(Quantized {
        tensors: keys.len(),
        file_fidelity,
        burn_fidelity,
    })
}

/// Sentences for a quick fidelity check when no --data/--heldout is given.
fn read_default_texts() -> Vec<String> {
    [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
        "The new movie is awesome.",
        "The cat sits outside.",
        "Do you like pizza?",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
