//! `kiln classify`: texts classified by a head `kiln train-classifier` trained, or the head
//! evaluated on labelled texts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use kiln_classify::data::{read_labeled, LabeledText};
use kiln_classify::{Evaluation, TextClassifier};
use serde_json::json;

use crate::backend_select::{announce, select, BackendChoice};
use crate::common::{progress_bar, read_lines};
use crate::usage::usage;
use crate::with_backend;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// A directory written by `kiln train-classifier`.
    #[arg(long)]
    pub model: PathBuf,
    /// The encoder's directory, if it moved since training (default: the recorded one).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Backend of the encoder: auto picks wgpu when a GPU adapter is present, else flex.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Read one text per line from this file (`-` for stdin) instead of arguments.
    #[arg(long, conflicts_with_all = ["texts", "eval"])]
    pub input_file: Option<PathBuf>,
    /// Evaluate on labelled texts (`label<TAB>text`): accuracy, macro-F1, per class.
    #[arg(long, conflicts_with = "texts")]
    pub eval: Option<PathBuf>,
    /// Print JSON (predictions with every class's probability, or the evaluation).
    #[arg(long)]
    pub json: bool,
    /// The texts.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
}

/// Labelled texts (`label<TAB>text` lines); a malformed file is a usage error.
pub(crate) fn labeled_file(path: &Path) -> Result<Vec<LabeledText>> {
    read_labeled(path).map_err(|e| usage(e.to_string()))
}

/// Prints an evaluation (accuracy, macro-F1, per class) on stderr.
pub(crate) fn print_evaluation(e: &Evaluation) {
    eprintln!(
        "kiln: {} texts: accuracy {:.4}, macro-F1 {:.4}",
        e.count, e.accuracy, e.macro_f1
    );
    let width = e
        .classes
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(5)
        .max(5);
    eprintln!("  {:width$}  precision  recall     f1  support", "class");
    for c in &e.classes {
        eprintln!(
            "  {:width$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
}

pub fn run(args: &ClassifyArgs) -> Result<()> {
    if !args.model.is_dir() {
        return Err(usage(format!(
            "--model {}: not a directory (write one with kiln train-classifier)",
            args.model.display()
        )));
    }
    let eval = args.eval.as_deref().map(labeled_file).transpose()?;
    let texts = match (&args.input_file, &eval) {
        (Some(path), _) => read_lines(path)?,
        (None, Some(_)) => Vec::new(),
        (None, None) if args.texts.is_empty() => {
            return Err(usage(
                "give texts as arguments, --input-file FILE or --eval FILE",
            ))
        }
        (None, None) => args.texts.clone(),
    };
    let selection = select(args.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| {
        let classifier =
            TextClassifier::<B>::load(&args.model, args.encoder.as_deref(), &device)
                .with_context(|| format!("cannot load the classifier {}", args.model.display()))?;
        let n = eval.as_ref().map_or(texts.len(), Vec::len);
        let progress = progress_bar(n as u64, "{bar:30} {pos}/{len} texts, {per_sec}, eta {eta}");
        if let Some(examples) = &eval {
            let evaluation = classifier
                .evaluate(examples, |k| progress.inc(k as u64))
                .map_err(|e| usage(format!("--eval: {e}")))?;
            progress.finish_and_clear();
            if args.json {
                println!("{}", serde_json::to_string(&evaluation)?);
            } else {
                print_evaluation(&evaluation);
                println!(
                    "accuracy\t{:.4}\nmacro_f1\t{:.4}",
                    evaluation.accuracy, evaluation.macro_f1
                );
            }
            return Ok(());
        }
        let predictions = classifier
            .predict(&texts, |k| progress.inc(k as u64))
            .context("classifying failed")?;
        progress.finish_and_clear();
        if args.json {
            println!(
                "{}",
                json!({"labels": classifier.labels.names(), "predictions": predictions})
            );
        } else {
            for p in &predictions {
                println!("{}\t{:.4}", p.label, p.confidence);
            }
        }
        Ok(())
    })
}
