//! `kiln explain`: attention maps, attention rollout and gradient attributions of a text model
//! for one text, as a JSON report, a PNG heatmap and an HTML page.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kiln_explain::heatmap::{check_size, matrix_png, scores_png, MATRIX_SIZE, SCORES_SIZE};
use kiln_explain::html::html_report;
use kiln_explain::{
    explain_attention, explain_gradients, Baseline, IntegratedGradientsConfig, Method, Report,
    SquareMatrix, Target,
};

use crate::backend_select::{announce, select};
use crate::common::{check_output_file, inside, progress_bar, same_file};
use crate::precision::PrecisionChoice;
use crate::text_model::{self, load, TextModelArgs};
use crate::usage::usage;
use crate::{with_autodiff_backend, with_backend};

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodChoice {
    /// One layer's attention map (--layer, default the last; --head, default the mean).
    Attention,
    /// Attention rollout through all layers (Abnar & Zuidema 2020).
    Rollout,
    /// Gradient x input on the word vectors.
    GradInput,
    /// Integrated Gradients on the word vectors (--steps, --baseline).
    IntegratedGradients,
}

impl From<MethodChoice> for Method {
    fn from(choice: MethodChoice) -> Self {
        match choice {
            MethodChoice::Attention => Method::Attention,
            MethodChoice::Rollout => Method::Rollout,
            MethodChoice::GradInput => Method::GradInput,
            MethodChoice::IntegratedGradients => Method::IntegratedGradients,
        }
    }
}

/// `--baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineChoice {
    /// Every token but [CLS]/[SEP] replaced by [PAD].
    Pad,
    /// All-zero word vectors.
    Zero,
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// What to compute.
    #[arg(long, value_enum)]
    pub method: MethodChoice,
    /// Layer of the attention map (default: the last).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Head of the attention map (default: the mean over the layer's heads).
    #[arg(long)]
    pub head: Option<usize>,
    /// Gradient methods: explain the cosine similarity to this text (default: the norm of the
    /// pooled embedding).
    #[arg(long, conflicts_with = "target_dim")]
    pub target: Option<String>,
    /// Gradient methods: explain this dimension of the embedding.
    #[arg(long)]
    pub target_dim: Option<usize>,
    /// Integrated Gradients: points on the path (midpoint rule).
    #[arg(long, default_value_t = 64, value_parser = crate::limits::count::<1, { crate::limits::MAX_IG_STEPS }>)]
    pub steps: usize,
    /// Integrated Gradients: the baseline input.
    #[arg(long, value_enum, default_value_t = BaselineChoice::Pad)]
    pub baseline: BaselineChoice,
    /// Write the JSON report here (tokens, token_scores, and the method's matrices).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a PNG heatmap here: the S x S map (attention, rollout; 800x800 by default) or the
    /// token-score strip (gradient methods; 1000x300 by default).
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Heatmap size in pixels, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    pub heatmap_size: Option<(u32, u32)>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of a token table.
    #[arg(long)]
    pub json: bool,
    /// The text to explain.
    #[arg(value_name = "TEXT")]
    pub text: String,
}

fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(w)?, parse(h)?))
}

fn check_outputs(args: &ExplainArgs) -> Result<Vec<&Path>> {
    let outputs: Vec<&Path> = [&args.out, &args.heatmap, &args.html]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        check_output_file("output", out)?;
        if inside(out, &args.model.model) {
            return Err(usage(format!(
                "{} is inside the model directory: kiln never writes there",
                out.display()
            )));
        }
        if outputs[..i].iter().any(|o| o == out || same_file(o, out)) {
            return Err(usage(format!("{} is given as two outputs", out.display())));
        }
    }
    Ok(outputs)
}

pub fn run(args: &ExplainArgs) -> Result<()> {
    text_model::check(&args.model)?;
    let reduced = match args.model.precision {
        PrecisionChoice::Int8 => Some("int8"),
        PrecisionChoice::Bf16 => Some("bf16"),
        PrecisionChoice::Auto | PrecisionChoice::F32 => None,
    };
    if let Some(name) = reduced {
        return Err(usage(format!(
            "explain follows gradients through f32 Linear layers: --precision {name} does not apply"
        )));
    }
    // An int8 file is explained with its dequantized weights in f32.
    let args = &ExplainArgs {
        model: TextModelArgs {
            precision: PrecisionChoice::F32,
            ..args.model.clone()
        },
        ..args.clone()
    };
    check_outputs(args)?;
    let method = Method::from(args.method);
    if !method.needs_gradients() && (args.target.is_some() || args.target_dim.is_some()) {
        return Err(usage(format!(
            "--target/--target-dim apply to grad-input and integrated-gradients, not {}",
            method.name()
        )));
    }
    if method.needs_gradients() && (args.layer.is_some() || args.head.is_some()) {
        return Err(usage(format!(
            "--layer/--head apply to attention, not {}",
            method.name()
        )));
    }
    if method == Method::IntegratedGradients && args.steps == 0 {
        return Err(usage("--steps must be at least 1"));
    }
    if let Some(size) = args.heatmap_size {
        // Before the model runs, not after.
        check_size(size).map_err(explain_error)?;
    }
    if args.text.trim().is_empty() {
        return Err(usage("the text to explain is empty"));
    }
    let selection = select(args.model.backend)?;
    announce(&selection);
    let report = if method.needs_gradients() {
        let config = IntegratedGradientsConfig {
            steps: args.steps,
            baseline: match args.baseline {
                BaselineChoice::Pad => Baseline::Pad,
                BaselineChoice::Zero => Baseline::Zero,
            },
            batch_size: args.model.batch_size,
        };
        with_autodiff_backend!(selection.backend, |B, device| {
            let encoder = load::<B>(&args.model, &device)?;
            let target = match (&args.target, args.target_dim) {
                (Some(text), _) => {
                    Target::similarity_to(&encoder, text).context("embedding the --target text")?
                }
                (None, Some(index)) => Target::Dimension { index },
                (None, None) => Target::Norm,
            };
            let bar = progress_bar(
                args.steps as u64,
                "{bar:30} {pos}/{len} path points, eta {eta}",
            );
            let report = explain_gradients(&encoder, &args.text, method, &target, &config, |n| {
                bar.inc(n as u64)
            })
            .map_err(explain_error)?;
            bar.finish_and_clear();
            report
        })
    } else {
        with_backend!(selection.backend, |B, device| {
            let encoder = load::<B>(&args.model, &device)?;
            explain_attention(&encoder, &args.text, method, args.layer, args.head)
                .map_err(explain_error)?
        })
    };
    write_outputs(args, &report)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_table(&report);
    }
    Ok(())
}

/// An option that does not fit the model (a layer out of range, ...) is a usage error (exit 2).
fn explain_error(e: kiln_explain::ExplainError) -> anyhow::Error {
    match e {
        kiln_explain::ExplainError::Invalid(m) => usage(m),
        e => anyhow::Error::new(e),
    }
}

fn write_outputs(args: &ExplainArgs, report: &Report) -> Result<()> {
    let write = |path: &Path, bytes: &[u8]| {
        kiln::weights::write_atomic(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    if let Some(path) = &args.out {
        write(path, report.to_json().as_bytes())?;
    }
    if let Some(path) = &args.heatmap {
        let mut title = format!("{} ({})", report.method.name(), model_name(args));
        if let Some(layer) = report.layer {
            let head = report
                .head
                .map_or("mean of heads".into(), |h| format!("head {h}"));
            title = format!("{title}, layer {layer}, {head}");
        }
        let png = match report.matrix() {
            Some(rows) => {
                let matrix = SquareMatrix {
                    n: rows.len(),
                    data: rows.concat(),
                };
                matrix_png(
                    &matrix,
                    &report.tokens,
                    &title,
                    args.heatmap_size.unwrap_or(MATRIX_SIZE),
                )
            }
            None => scores_png(
                &report.tokens,
                &report.token_scores,
                &title,
                args.heatmap_size.unwrap_or(SCORES_SIZE),
            ),
        }
        .map_err(|e| usage(e.to_string()))?;
        write(path, &png)?;
    }
    if let Some(path) = &args.html {
        write(path, html_report(report, &model_name(args)).as_bytes())?;
    }
    Ok(())
}

fn model_name(args: &ExplainArgs) -> String {
    args.model
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.model.model.display().to_string())
}

fn print_table(report: &Report) {
    println!("{:>4}  {:<16} {:>10}", "#", "token", "score");
    for (i, (token, score)) in report.tokens.iter().zip(&report.token_scores).enumerate() {
        println!("{i:>4}  {token:<16} {score:>10.5}");
    }
    if let (Some(value), Some(target)) = (report.target_value, &report.target) {
        println!("target: {} = {value:.6}", target.describe());
    }
    if let (Some(delta), Some(base)) = (report.delta, report.baseline_value) {
        println!("f(baseline) = {base:.6}, completeness gap = {delta:.3e}");
    }
}
