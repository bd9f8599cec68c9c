//! `kiln prune` and `kiln quantize`: compress a text model or a plain encoder into a new
//! directory that `kiln embed` / `kiln forward` load unchanged; the distillation they share
//! with `kiln distill` (`crate::distill`).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln::{TransformerEncoder, TransformerEncoderConfig};
use kiln_compress::calibration::{statistics, CalibrationBatch, CalibrationStatistics};
use kiln_compress::distill::{FinetuneConfig, StepRecord};
use kiln_compress::importance::{weight_norm_importance, Importance};
use kiln_compress::metrics::Fidelity;
use kiln_compress::obs::obs_plan;
use kiln_compress::plain::RandomInputs;
use kiln_compress::reconstruct::{reconstruct, LinearFit, ReconstructConfig};
use kiln_compress::structured::{shrink, StructurePlan};
use kiln_compress::text::TextLoss;
use kiln_compress::unstructured::{
    prune_unstructured, sparsity_report, PruningMasks, UnstructuredMethod,
};
use kiln_compress::wanda::{prune_wanda, ActivationNorms};
use kiln_compress::{plain, quantize, text};
use kiln_text::TextEncoder;
use serde_json::{json, Value};

use crate::backend_select::{select, BackendChoice};
use crate::embed::{announce, inside, read_lines};
use crate::{usage, with_autodiff_backend, with_backend};

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
    /// Backend (auto: wgpu with a GPU adapter, else ndarray).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Unlabeled text lines (text models: importance and distillation data), one per line.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Held-out lines for the fidelity report (default: the last 10% of --data).
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// Texts (or random input sequences) per batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Plain encoders: tokens per random input sequence.
    #[arg(long, default_value_t = 32)]
    pub seq: usize,
    /// Seed of random choices, batch order, random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PruneMethod {
    /// Smallest |w| of each Linear weight (PyTorch's l1_unstructured).
    Magnitude,
    /// Smallest |w| across all Linear weights (global_unstructured).
    GlobalMagnitude,
    /// Random weights of each tensor (random_unstructured), the baseline.
    Random,
    /// Smallest |w| * ||x|| in each output row (Wanda): activation-aware, calibrated on --data
    /// (text) or random inputs (plain encoders).
    Wanda,
    /// Whole attention heads, least important first; the model shrinks.
    Heads,
    /// Feed-forward neurons, least important first; the model shrinks.
    Ffn,
}

/// `--importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportanceChoice {
    /// Michel et al. 2019: |dL/d gate| from gradients on data (text: --data; plain: random inputs).
    Gradient,
    /// Activation-aware (text: --data; plain: random inputs): a head by the norm of what it
    /// adds to the attention output, a neuron by ||activation|| * ||outgoing weights||.
    Activation,
    /// Weight norms, no data.
    Norm,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub source: CompressSource,
    /// What to prune; `heads,ffn` does both.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub method: Vec<PruneMethod>,
    /// Fraction to prune: of the Linear weights, of all heads, or of each layer's neurons.
    #[arg(long)]
    pub rate: f64,
    /// Fraction of feed-forward neurons when pruning heads and ffn together (default: --rate).
    #[arg(long)]
    pub ffn_rate: Option<f64>,
    /// Importance used by heads/ffn.
    #[arg(long, value_enum, default_value_t = ImportanceChoice::Gradient)]
    pub importance: ImportanceChoice,
    /// Plain encoders: random batches for gradient importance and wanda's calibration.
    #[arg(long, default_value_t = 8)]
    pub importance_batches: usize,
    /// heads/ffn: refit each layer's out_proj and linear2 by least squares so the shrunk layers
    /// reproduce the original ones on --data (text) or random inputs (plain); no gradient steps.
    #[arg(long)]
    pub reconstruct: bool,
    /// heads/ffn: within each layer, choose which heads and neurons go by Optimal Brain Surgeon
    /// on the calibration data (those the least-squares update of the rest makes up for best);
    /// how many each layer loses still follows --importance. Best with --reconstruct.
    #[arg(long)]
    pub obs: bool,
    /// Ridge factor of --reconstruct and --obs, relative to the mean diagonal of X^T X.
    #[arg(long, default_value_t = 1e-3)]
    pub ridge: f64,
    /// Distillation steps after pruning (0: none). Text models need --data.
    #[arg(long, default_value_t = 0)]
    pub finetune_steps: usize,
    #[command(flatten)]
    pub distill: DistillSettings,
}

/// How a student learns from its teacher (`kiln prune --finetune-steps`, `kiln distill`).
#[derive(Args, Debug, Clone)]
pub struct DistillSettings {
    /// AdamW learning rate of the distillation.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Evaluate on the held-out set every N steps (0: before and after only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Text models: what distillation matches; `cosine,layers` adds both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cosine")]
    pub distill_loss: Vec<DistillLossChoice>,
    /// Keep dropout on in the student while distilling (off by default: the teacher is
    /// deterministic, and dropout noise made distillation drift away from it).
    #[arg(long)]
    pub dropout: bool,
}

/// `kiln distill`: the student is the source (`--model`, or `--config`/`--weights`).
#[derive(Args, Debug)]
pub struct DistillArgs {
    #[command(flatten)]
    pub source: CompressSource,
    /// The teacher, a text model directory (with --model); usually the model the student was
    /// pruned from. Same tokenizer and hidden size as the student.
    #[arg(long, conflicts_with_all = ["teacher_config", "teacher_weights"], required_unless_present = "teacher_config")]
    pub teacher: Option<PathBuf>,
    /// A plain teacher encoder's config.json (with --config/--weights).
    #[arg(long, requires = "teacher_weights")]
    pub teacher_config: Option<PathBuf>,
    /// The plain teacher encoder's model.safetensors.
    #[arg(long, requires = "teacher_config")]
    pub teacher_weights: Option<PathBuf>,
    /// Distillation steps (one batch each).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    #[command(flatten)]
    pub distill: DistillSettings,
}

/// `--distill-loss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistillLossChoice {
    /// 1 - cosine of the pooled sentence embeddings.
    Cosine,
    /// MSE of every layer's hidden states on the real tokens (TinyBERT).
    Layers,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub source: CompressSource,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {what}, eta {{eta}} {{msg}}"
        ))
        .expect("valid template"),
    );
    bar
}

/// Checks the shared arguments, and that `--out` is neither the directory of an input (the
/// source's files and `other_inputs`, e.g. a teacher) nor inside a model directory.
pub(crate) fn check_source(source: &CompressSource, other_inputs: &[&Path]) -> Result<()> {
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

/// Training and held-out lines: `--heldout`, or the last 10% of `--data`.
pub(crate) fn text_data(source: &CompressSource) -> Result<(Vec<String>, Vec<String>)> {
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

pub(crate) fn fidelity_json(f: &Option<Fidelity>) -> Value {
    match f {
        Some(f) => json!(f),
        None => Value::Null,
    }
}

pub(crate) fn describe(f: &Fidelity) -> String {
    let spearman = f
        .spearman
        .map(|s| format!(", Spearman {s:.4}"))
        .unwrap_or_default();
    format!(
        "mean cosine {:.4} (min {:.4}){spearman}",
        f.mean_cosine, f.min_cosine
    )
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Writes `OUT/kiln_compression.json` and, with `--json`, prints the report; returns whether
/// the human summary is still to be printed.
pub(crate) fn write_report(source: &CompressSource, report: &Value) -> Result<bool> {
    kiln::weights::write_atomic(
        &source.out.join("kiln_compression.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    if source.json {
        println!("{report}");
    }
    Ok(!source.json)
}

/// What a prune run did, for the report.
struct Outcome {
    params_before: usize,
    params_after: usize,
    sparsity: Value,
    heads: Vec<usize>,
    widths: Vec<usize>,
    importance: Option<Importance>,
    before_finetune: Option<Fidelity>,
    steps: Vec<StepRecord>,
    /// `--reconstruct`: per refit Linear, the block's mean squared error before and after.
    reconstruction: Value,
}

pub fn run_prune(args: &PruneArgs) -> Result<()> {
    let source = &args.source;
    check_source(source, &[])?;
    let structured = args
        .method
        .iter()
        .any(|m| matches!(m, PruneMethod::Heads | PruneMethod::Ffn));
    let unstructured: Vec<PruneMethod> = args
        .method
        .iter()
        .copied()
        .filter(|m| !matches!(m, PruneMethod::Heads | PruneMethod::Ffn))
        .collect();
    if structured && !unstructured.is_empty() || unstructured.len() > 1 {
        return Err(usage(
            "--method: give one unstructured method (magnitude, global-magnitude, random, wanda) or heads and/or ffn",
        ));
    }
    if args.obs && !structured {
        return Err(usage(
            "--obs chooses the heads or neurons to remove: use it with --method heads and/or ffn",
        ));
    }
    if args.reconstruct && !structured {
        return Err(usage(
            "--reconstruct refits a model whose heads or neurons were removed: use it with --method heads and/or ffn",
        ));
    }
    if !(args.ridge >= 0.0 && args.ridge.is_finite()) {
        return Err(usage(format!("--ridge {}: must be >= 0", args.ridge)));
    }
    for (flag, rate) in [("--rate", Some(args.rate)), ("--ffn-rate", args.ffn_rate)] {
        if let Some(rate) = rate {
            if !(0.0..1.0).contains(&rate) {
                return Err(usage(format!("{flag} {rate}: must be in [0, 1)")));
            }
        }
    }
    if source.model.is_some() && source.data.is_none() {
        if args.finetune_steps > 0 {
            return Err(usage(
                "--finetune-steps needs --data (unlabeled text lines)",
            ));
        }
        if unstructured.contains(&PruneMethod::Wanda) {
            return Err(usage(
                "--method wanda needs --data (calibration text lines)",
            ));
        }
        if structured && args.importance != ImportanceChoice::Norm {
            return Err(usage(
                "--importance gradient/activation needs --data (text lines); or use --importance norm",
            ));
        }
        if args.reconstruct {
            return Err(usage("--reconstruct needs --data (calibration text lines)"));
        }
        if args.obs {
            return Err(usage("--obs needs --data (calibration text lines)"));
        }
    }
    let selection = select(source.backend)?;
    announce(&selection);
    let start = Instant::now();
    let (outcome, kind) = with_autodiff_backend!(selection.backend, |B, device| {
        // Dropout is on under autodiff (importance, distillation): seed it so runs repeat.
        <B as Backend>::seed(&device, source.seed);
        if source.model.is_some() {
            (prune_text::<B>(args, &device)?, "text")
        } else {
            (prune_plain::<B>(args, &device)?, "encoder")
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let after = outcome.steps.last().and_then(|r| r.eval);
    let report = json!({
        "command": "prune",
        "kind": kind,
        "method": args.method.iter().map(|m| format!("{m:?}").to_lowercase()).collect::<Vec<_>>(),
        "rate": args.rate,
        "ffn_rate": args.ffn_rate.unwrap_or(args.rate),
        "importance": structured.then(|| format!("{:?}", args.importance).to_lowercase()),
        "obs": args.obs,
        "backend": selection.backend.name(),
        "params_before": outcome.params_before,
        "params_after": outcome.params_after,
        "layer_heads": outcome.heads,
        "layer_dim_feedforward": outcome.widths,
        "sparsity": outcome.sparsity,
        "head_importance": outcome.importance.as_ref().map(|i| &i.heads),
        "reconstruction": outcome.reconstruction,
        "fidelity_before_finetune": fidelity_json(&outcome.before_finetune),
        "fidelity_after_finetune": if args.finetune_steps > 0 { fidelity_json(&after) } else { Value::Null },
        "distillation": (args.finetune_steps > 0).then(|| distillation_json(&args.distill, source, kind)),
        "finetune_steps": crate::distill::step_records(&outcome.steps),
        "seconds": seconds,
        "out": source.out,
    });
    if write_report(source, &report)? {
        println!(
            "pruned ({}) {} -> {} parameters; heads per layer {:?}, feed-forward widths {:?}; sparsity of Linear weights {:.4}",
            report["method"], outcome.params_before, outcome.params_after, outcome.heads, outcome.widths,
            report["sparsity"]["total"]["sparsity"].as_f64().unwrap_or(0.0)
        );
        if let Some(f) = &outcome.before_finetune {
            println!("fidelity to the original (held-out): {}", describe(f));
        }
        if let (true, Some(f)) = (args.finetune_steps > 0, &after) {
            println!(
                "after {} distillation steps: {}",
                args.finetune_steps,
                describe(f)
            );
        }
        println!("wrote {} in {seconds:.1} s", source.out.display());
    }
    Ok(())
}

fn text_losses(choices: &[DistillLossChoice]) -> Vec<TextLoss> {
    choices
        .iter()
        .map(|choice| match choice {
            DistillLossChoice::Cosine => TextLoss::Cosine,
            DistillLossChoice::Layers => TextLoss::Layers,
        })
        .collect()
}

fn finetune_config(settings: &DistillSettings, steps: usize, seed: u64) -> FinetuneConfig {
    FinetuneConfig::new()
        .with_steps(steps)
        .with_learning_rate(settings.lr)
        .with_eval_every(settings.eval_every)
        .with_seed(seed)
        .with_warmup_steps((steps / 10).min(100))
        .with_dropout(settings.dropout)
}

/// The report's `distillation` entry.
pub(crate) fn distillation_json(
    settings: &DistillSettings,
    source: &CompressSource,
    kind: &str,
) -> Value {
    let loss: Vec<String> = if kind == "text" {
        settings
            .distill_loss
            .iter()
            .map(|l| format!("{l:?}").to_lowercase())
            .collect()
    } else {
        vec!["mse".to_string()]
    };
    json!({
        "lr": settings.lr,
        "batch_size": source.batch_size,
        "loss": loss,
        "dropout": settings.dropout,
    })
}

fn step_printer(bar: &ProgressBar) -> impl FnMut(&StepRecord) + '_ {
    move |record: &StepRecord| {
        if record.step > 0 {
            bar.inc(1);
            if let Some(loss) = record.loss {
                bar.set_message(format!("loss {loss:.5}"));
            }
        }
        if let Some(eval) = &record.eval {
            let line = format!("step {}: {}", record.step, describe(eval));
            // A hidden bar (stderr is not a terminal, e.g. a log file) would drop the line.
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    }
}

/// The plan of `--method heads/ffn`.
fn structure_plan<B: Backend>(
    args: &PruneArgs,
    encoder: &TransformerEncoder<B>,
    importance: &Importance,
) -> Result<StructurePlan> {
    let mut plan = StructurePlan::keep_all(encoder);
    if args.method.contains(&PruneMethod::Heads) {
        plan = plan.with_heads(importance, args.rate)?;
    }
    if args.method.contains(&PruneMethod::Ffn) {
        let rate = if args.method.contains(&PruneMethod::Heads) {
            args.ffn_rate.unwrap_or(args.rate)
        } else {
            args.rate
        };
        plan = plan.with_neurons(importance, rate)?;
    }
    Ok(plan)
}

fn unstructured_method(method: PruneMethod, seed: u64) -> UnstructuredMethod {
    match method {
        PruneMethod::Magnitude => UnstructuredMethod::Magnitude,
        PruneMethod::GlobalMagnitude => UnstructuredMethod::GlobalMagnitude,
        _ => UnstructuredMethod::Random { seed },
    }
}

/// The data-dependent steps, computed on demand: Michel et al.'s gradient importance of the
/// model being pruned, and, from the original model on calibration data, Wanda's activation
/// norms, activation importance and OBS's Gram matrices (one pass: `statistics(importance,
/// grams)`), and the layer-wise reconstruction of a shrunk copy.
struct Scorers<'a, B: AutodiffBackend> {
    gradient: GradientStep<'a, B>,
    norms: Lazy<'a, ActivationNorms>,
    statistics: Step<'a, (bool, bool), CalibrationStatistics>,
    reconstruct: Step<'a, TransformerEncoder<B::InnerBackend>, Vec<LinearFit>>,
}

/// A data-dependent step of [`Scorers`] on one input, run at most once.
type Step<'a, In, Out> = Box<dyn FnOnce(In) -> kiln_compress::Result<Out> + 'a>;
/// Gradient importance of the model being pruned.
type GradientStep<'a, B> =
    Box<dyn FnOnce(&TransformerEncoder<B>) -> kiln_compress::Result<Importance> + 'a>;
/// A data-dependent step of [`Scorers`] that needs no input, run at most once.
type Lazy<'a, Out> = Box<dyn FnOnce() -> kiln_compress::Result<Out> + 'a>;

/// The calibration batches, built on first use and shared by the steps that read them.
fn built_once<T>(
    cell: &OnceCell<T>,
    build: impl FnOnce() -> kiln_compress::Result<T>,
) -> kiln_compress::Result<&T> {
    if let Some(built) = cell.get() {
        return Ok(built);
    }
    let built = build()?;
    Ok(cell.get_or_init(|| built))
}

/// `kiln_compress::calibration::statistics` (activation importance, OBS's Gram matrices, as
/// `wanted`) under a progress bar; builds no batches when nothing is wanted.
fn statistics_with_progress<'b, B: Backend>(
    teacher: &TransformerEncoder<B>,
    (importance, grams): (bool, bool),
    calibration: impl FnOnce() -> kiln_compress::Result<&'b Vec<CalibrationBatch<B>>>,
) -> kiln_compress::Result<CalibrationStatistics> {
    if !importance && !grams {
        return Ok(CalibrationStatistics::default());
    }
    let batches = calibration()?;
    let bar = bar(batches.len() as u64, "batches (calibration)");
    let stats = statistics(teacher, batches, importance, grams, || bar.inc(1));
    bar.finish_and_clear();
    stats
}

/// `kiln_compress::reconstruct` under a progress bar.
fn reconstruct_with_progress<B: Backend>(
    args: &PruneArgs,
    teacher: &TransformerEncoder<B>,
    student: TransformerEncoder<B>,
    batches: &[CalibrationBatch<B>],
) -> kiln_compress::Result<Vec<LinearFit>> {
    let bar = bar(2 * student.layers.len() as u64, "blocks (reconstruction)");
    let config = ReconstructConfig { ridge: args.ridge };
    let result = reconstruct(teacher, student, batches, &config, |_, _| bar.inc(1));
    bar.finish_and_clear();
    Ok(result?.1)
}

fn shape_of<B: Backend>(encoder: &TransformerEncoder<B>) -> (Vec<usize>, Vec<usize>) {
    (
        encoder
            .layers
            .iter()
            .map(|l| l.self_attn.num_heads)
            .collect(),
        encoder
            .layers
            .iter()
            .map(|l| l.linear1.weight.dims()[1])
            .collect(),
    )
}

/// The pruning step shared by text models and plain encoders: unstructured masks, or an
/// importance-based plan that shrinks the encoder (`gradient` computes Michel et al.'s scores).
struct Pruned<B: Backend> {
    encoder: TransformerEncoder<B>,
    masks: Option<PruningMasks>,
    importance: Option<Importance>,
    fits: Vec<LinearFit>,
}

fn prune_encoder<B: AutodiffBackend>(
    args: &PruneArgs,
    encoder: TransformerEncoder<B>,
    scorers: Scorers<'_, B>,
) -> Result<Pruned<B>> {
    if let Some(&method) = args
        .method
        .iter()
        .find(|m| !matches!(m, PruneMethod::Heads | PruneMethod::Ffn))
    {
        let (encoder, masks) = if method == PruneMethod::Wanda {
            let norms = (scorers.norms)()?;
            prune_wanda(encoder, &norms, args.rate)?
        } else {
            let method = unstructured_method(method, args.source.seed);
            prune_unstructured(encoder, method, args.rate)?
        };
        return Ok(Pruned {
            encoder,
            masks: Some(masks),
            importance: None,
            fits: Vec::new(),
        });
    }
    let activation = args.importance == ImportanceChoice::Activation;
    let statistics = (scorers.statistics)((activation, args.obs))?;
    let scores = match args.importance {
        ImportanceChoice::Norm => weight_norm_importance(&encoder),
        ImportanceChoice::Gradient => (scorers.gradient)(&encoder)?,
        ImportanceChoice::Activation => statistics.importance.expect("asked for"),
    };
    let mut plan = structure_plan(args, &encoder, &scores)?;
    if let Some(grams) = &statistics.grams {
        plan = obs_plan(&encoder, grams, &plan, args.ridge)?;
    }
    let mut encoder = shrink(encoder, &plan)?;
    let fits = if args.reconstruct {
        let fits = (scorers.reconstruct)(encoder.valid())?;
        for fit in &fits {
            fit.apply(&mut encoder)?;
        }
        fits
    } else {
        Vec::new()
    };
    Ok(Pruned {
        encoder,
        masks: None,
        importance: Some(scores),
        fits,
    })
}

/// `text::distill` of `student` from `teacher` on `(train, heldout)` lines for `steps` steps,
/// under a progress bar (no steps: the student as it is).
pub(crate) fn distill_text<B: AutodiffBackend>(
    student: TextEncoder<B>,
    teacher: &TextEncoder<B::InnerBackend>,
    (train, heldout): (&[String], &[String]),
    source: &CompressSource,
    settings: &DistillSettings,
    steps: usize,
    masks: Option<&PruningMasks>,
) -> Result<(TextEncoder<B>, Vec<StepRecord>)> {
    finetune_with_progress(
        settings,
        steps,
        source.seed,
        student,
        |student, config, on_step| {
            text::distill(
                student,
                teacher,
                train,
                heldout,
                source.batch_size,
                &text_losses(&settings.distill_loss),
                config,
                masks,
                on_step,
            )
        },
    )
}

/// Random training and held-out inputs of a plain encoder (`--batch-size`, `--seq`, `--seed`)
/// and the number of held-out batches.
pub(crate) fn plain_inputs(source: &CompressSource) -> (RandomInputs, RandomInputs, usize) {
    let train = RandomInputs {
        batch: source.batch_size,
        seq: source.seq,
        seed: source.seed,
    };
    let heldout = RandomInputs {
        seed: source.seed.wrapping_add(1 << 32),
        ..train
    };
    (train, heldout, 4)
}

/// `plain::distill` of `student` from `teacher` on random inputs for `steps` steps, under a
/// progress bar (no steps: the student as it is).
pub(crate) fn distill_plain<B: AutodiffBackend>(
    student: TransformerEncoder<B>,
    teacher: &TransformerEncoder<B::InnerBackend>,
    source: &CompressSource,
    settings: &DistillSettings,
    steps: usize,
    masks: Option<&PruningMasks>,
) -> Result<(TransformerEncoder<B>, Vec<StepRecord>)> {
    let (train, heldout, heldout_batches) = plain_inputs(source);
    finetune_with_progress(
        settings,
        steps,
        source.seed,
        student,
        |student, config, on_step| {
            plain::distill(
                student,
                teacher,
                &train,
                &heldout,
                heldout_batches,
                config,
                masks,
                on_step,
            )
        },
    )
}

/// Runs `distill` for `steps` steps under a progress bar (nothing when `steps` is 0).
fn finetune_with_progress<T>(
    settings: &DistillSettings,
    steps: usize,
    seed: u64,
    model: T,
    distill: impl FnOnce(
        T,
        &FinetuneConfig,
        &mut dyn FnMut(&StepRecord),
    ) -> kiln_compress::Result<(T, Vec<StepRecord>)>,
) -> Result<(T, Vec<StepRecord>)> {
    if steps == 0 {
        return Ok((model, Vec::new()));
    }
    let bar = bar(steps as u64, "steps");
    let mut printer = step_printer(&bar);
    let result = distill(model, &finetune_config(settings, steps, seed), &mut printer)?;
    bar.finish_and_clear();
    Ok(result)
}

impl Outcome {
    fn new<B: Backend>(
        encoder: &TransformerEncoder<B>,
        params: (usize, usize),
        importance: Option<Importance>,
        before_finetune: Option<Fidelity>,
        steps: Vec<StepRecord>,
    ) -> Self {
        let (heads, widths) = shape_of(encoder);
        Self {
            params_before: params.0,
            params_after: params.1,
            sparsity: json!(sparsity_report(encoder)),
            heads,
            widths,
            importance,
            before_finetune,
            steps,
            reconstruction: Value::Null,
        }
    }

    fn with_fits(mut self, fits: &[LinearFit]) -> Self {
        if !fits.is_empty() {
            self.reconstruction = fits
                .iter()
                .map(|f| {
                    json!({
                        "weight": format!("layers.{}.{}", f.layer, f.kind.torch_name()),
                        "mse_before": f.mse[0],
                        "mse_after": f.mse[1],
                    })
                })
                .collect();
        }
        self
    }
}

fn prune_text<B: AutodiffBackend>(args: &PruneArgs, device: &B::Device) -> Result<Outcome> {
    let source = &args.source;
    let dir = source.model.as_ref().expect("checked");
    let load = || format!("cannot load text model {}", dir.display());
    let mut student = TextEncoder::<B>::from_dir(dir, device)
        .with_context(load)?
        .with_batch_size(source.batch_size);
    let teacher = TextEncoder::<B::InnerBackend>::from_dir(dir, device)
        .with_context(load)?
        .with_batch_size(source.batch_size);
    let (train, heldout) = text_data(source)?;
    let params_before = burn::module::Module::num_params(&student.model);

    let batches = OnceCell::new();
    let calibration = || {
        built_once(&batches, || {
            text::calibration_batches(&teacher, &train, source.batch_size)
        })
    };
    let scorers = Scorers {
        gradient: Box::new(|_: &TransformerEncoder<B>| {
            let bar = bar(train.len() as u64, "texts (importance)");
            let scores =
                text::gradient_importance(&student, &train, source.batch_size, source.seed, |n| {
                    bar.inc(n as u64)
                });
            bar.finish_and_clear();
            scores
        }),
        norms: Box::new(|| {
            let bar = bar(train.len() as u64, "texts (calibration)");
            let norms =
                text::activation_norms(&teacher, &train, source.batch_size, |n| bar.inc(n as u64));
            bar.finish_and_clear();
            norms
        }),
        statistics: Box::new(|wanted| {
            statistics_with_progress(&teacher.model.encoder, wanted, calibration)
        }),
        reconstruct: Box::new(|shrunk| {
            reconstruct_with_progress(args, &teacher.model.encoder, shrunk, calibration()?)
        }),
    };
    let pruned = prune_encoder(args, student.model.encoder.clone(), scorers)?;
    student.model.encoder = pruned.encoder;
    let before_finetune = if heldout.is_empty() {
        None
    } else {
        Some(text::fidelity(&teacher, &student.model.valid(), &heldout)?)
    };
    let (student, steps) = distill_text(
        student,
        &teacher,
        (&train, &heldout),
        source,
        &args.distill,
        args.finetune_steps,
        pruned.masks.as_ref(),
    )?;
    student
        .save_dir(&source.out)
        .context("cannot write the pruned model")?;
    let params_after = burn::module::Module::num_params(&student.model);
    Ok(Outcome::new(
        &student.model.encoder,
        (params_before, params_after),
        pruned.importance,
        before_finetune,
        steps,
    )
    .with_fits(&pruned.fits))
}

fn prune_plain<B: AutodiffBackend>(args: &PruneArgs, device: &B::Device) -> Result<Outcome> {
    let source = &args.source;
    let (config, weights) = (
        source.config.as_ref().expect("checked"),
        source.weights.as_ref().expect("checked"),
    );
    let student = crate::model_source::load_files::<B>(config, weights, device)?;
    let teacher = student.valid();
    let params_before = student.num_params();
    let (train, heldout, heldout_batches) = plain_inputs(source);

    let batches = OnceCell::new();
    let calibration = || {
        built_once(&batches, || {
            Ok(plain::calibration_batches(
                &teacher,
                &train,
                args.importance_batches,
            ))
        })
    };
    let scorers = Scorers {
        gradient: Box::new(|student: &TransformerEncoder<B>| {
            let bar = bar(args.importance_batches as u64, "batches (importance)");
            let scores =
                plain::gradient_importance(student, &train, args.importance_batches, || bar.inc(1));
            bar.finish_and_clear();
            scores
        }),
        norms: Box::new(|| {
            let bar = bar(args.importance_batches as u64, "batches (calibration)");
            let norms =
                plain::activation_norms(&teacher, &train, args.importance_batches, || bar.inc(1));
            bar.finish_and_clear();
            norms
        }),
        statistics: Box::new(|wanted| statistics_with_progress(&teacher, wanted, calibration)),
        reconstruct: Box::new(|shrunk| {
            reconstruct_with_progress(args, &teacher, shrunk, calibration()?)
        }),
    };
    let pruned = prune_encoder(args, student, scorers)?;
    let student = pruned.encoder;
    let before_finetune = Some(plain::fidelity(
        &teacher,
        &student.valid(),
        &heldout,
        heldout_batches,
    )?);
    let (student, steps) = distill_plain(
        student,
        &teacher,
        source,
        &args.distill,
        args.finetune_steps,
        pruned.masks.as_ref(),
    )?;
    student
        .save_dir(&source.out)
        .context("cannot write the pruned model")?;
    let params_after = student.num_params();
    Ok(Outcome::new(
        &student,
        (params_before, params_after),
        pruned.importance,
        before_finetune,
        steps,
    )
    .with_fits(&pruned.fits))
}

pub fn run_quantize(args: &QuantizeArgs) -> Result<()> {
    let source = &args.source;
    check_source(source, &[])?;
    let selection = select(source.backend)?;
    announce(&selection);
    let report = with_backend!(selection.backend, |B, device| quantize_model::<B>(
        source, &device
    ))?;
    if write_report(source, &report)? {
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

fn quantize_model<B: Backend>(source: &CompressSource, device: &B::Device) -> Result<Value> {
    let out = &source.out;
    if let Some(dir) = &source.model {
        let original = TextEncoder::<B>::from_dir(dir, device)
            .with_context(|| format!("cannot load text model {}", dir.display()))?
            .with_batch_size(source.batch_size);
        let bytes_before = std::fs::metadata(dir.join("model.safetensors"))?.len();
        original
            .save_dir(out)
            .context("cannot write the quantized model")?;
        let state = original.model.clone().state_dict();
        let keys = quantize::linear_weight_keys(&state, quantize::BERT_LINEAR_SUFFIXES);
        kiln::weights::write_atomic(
            &out.join("model.safetensors"),
            &quantize::int8_file(&state, &keys)?,
        )?;
        let (_, heldout) = text_data(source)?;
        let texts = if heldout.is_empty() {
            read_default_texts()
        } else {
            heldout
        };
        let reloaded = TextEncoder::<B>::from_dir(out, device)?.with_batch_size(source.batch_size);
        let file_fidelity = text::fidelity(&original, &reloaded.model, &texts)?;
        let mut in_memory = original.model.clone();
        in_memory.encoder =
            quantize::quantize_int8(in_memory.encoder, quantize::Granularity::Tensor);
        let burn_fidelity = text::fidelity(&original, &in_memory, &texts)?;
        Ok(json!({
            "kind": "text",
            "quantized_tensors": keys.len(),
            "bytes_before": bytes_before,
            "bytes_after": dir_size(out),
            "fidelity_int8_file": file_fidelity,
            "fidelity_burn_int8": burn_fidelity,
            "eval_texts": texts.len(),
        }))
    } else {
        let (config, weights) = (
            source.config.as_ref().expect("checked"),
            source.weights.as_ref().expect("checked"),
        );
        let original = crate::model_source::load_files::<B>(config, weights, device)?;
        let bytes_before = std::fs::metadata(weights)?.len();
        original
            .save_dir(out)
            .context("cannot write the quantized model")?;
        let state = original.clone().state_dict();
        let suffixes = quantize::encoder_linear_suffixes();
        let keys = quantize::linear_weight_keys(&state, &suffixes);
        kiln::weights::write_atomic(
            &out.join("model.safetensors"),
            &quantize::int8_file(&state, &keys)?,
        )?;
        let reloaded = TransformerEncoder::<B>::from_dir(out, device)?;
        let inputs = RandomInputs {
            batch: source.batch_size,
            seq: source.seq,
            seed: source.seed,
        };
        let file_fidelity = plain::fidelity(&original, &reloaded, &inputs, 2)?;
        let burn = quantize::quantize_int8(original.clone(), quantize::Granularity::Tensor);
        let burn_fidelity = plain::fidelity(&original, &burn, &inputs, 2)?;
        let _ = TransformerEncoderConfig::from_json_file(out.join("config.json"))?;
        Ok(json!({
            "kind": "encoder",
            "quantized_tensors": keys.len(),
            "bytes_before": bytes_before,
            "bytes_after": dir_size(out),
            "fidelity_int8_file": file_fidelity,
            "fidelity_burn_int8": burn_fidelity,
        }))
    }
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
