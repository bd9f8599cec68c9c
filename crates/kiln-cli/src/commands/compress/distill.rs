//! `kiln distill`: fine-tuning to recover, on its own: distils a (pruned) student from a
//! teacher, e.g. to continue the distillation `kiln prune --finetune-steps` started, or to
//! distil a model pruned elsewhere. Same losses, settings and report as `kiln prune`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;
use kiln_compress::distill::{FinetuneConfig, StepRecord};
use kiln_compress::metrics::Fidelity;
use kiln_compress::{recover, DataSource, EncoderModel, TextData};
use serde_json::json;

use super::progress::Bars;
use super::report::{describe, distillation_json, fidelity_json, step_records, write_report};
use super::settings::DistillSettings;
use super::source::{self, load_text, random_data, text_data, CompressSource};
use crate::backend_select::{announce, select};
use crate::model_source::load_files;
use crate::usage::usage;
use crate::with_autodiff_backend;

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
    #[arg(long, default_value_t = 100, value_parser = crate::limits::count::<1, { crate::limits::MAX_STEPS }>)]
    pub steps: usize,
    #[command(flatten)]
    pub distill: DistillSettings,
}

/// What a distillation run did, for the report.
struct Distilled {
    params: usize,
    steps: Vec<StepRecord>,
}

impl Distilled {
    /// The evaluation before the first step and after the last.
    fn fidelity(&self) -> (Option<Fidelity>, Option<Fidelity>) {
        let first = self.steps.first().and_then(|r| r.eval);
        let last = self.steps.last().and_then(|r| r.eval);
        (first, last)
    }
}

pub fn run(args: &DistillArgs) -> Result<()> {
    let source = &args.source;
    let teacher_inputs: Vec<&Path> = [&args.teacher, &args.teacher_config, &args.teacher_weights]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    source::check(source, &teacher_inputs)?;
    if args.steps == 0 {
        return Err(usage("--steps must be at least 1"));
    }
    match (&source.model, &args.teacher) {
        (Some(_), None) => {
            return Err(usage(
                "--model is a text model: give the teacher as --teacher DIR (a text model directory)",
            ))
        }
        (None, Some(_)) => {
            return Err(usage(
                "--teacher is a text model directory: give the student as --model DIR (plain encoders: --teacher-config/--teacher-weights)",
            ))
        }
        (Some(_), Some(teacher)) if !teacher.is_dir() => {
            return Err(usage(format!(
                "--teacher {}: not a directory",
                teacher.display()
            )))
        }
        (Some(_), Some(_)) if source.data.is_none() => {
            return Err(usage("kiln distill needs --data (unlabeled text lines)"))
        }
        _ => {}
    }
    let selection = select(source.backend)?;
    announce(&selection);
    let (staged, staging) = source::stage(source)?;
    let start = Instant::now();
    let (distilled, kind) = with_autodiff_backend!(selection.backend, |B, device| {
        // Dropout (with --dropout) runs under autodiff: seed it so runs repeat.
        <B as Backend>::seed(&device, source.seed);
        let config = args.distill.finetune_config(args.steps, source.seed);
        if let (Some(student), Some(teacher)) = (&source.model, &args.teacher) {
            // The data first: a bad file costs no model load.
            let (train, heldout) = text_data(source)?;
            let student = load_text::<B>(student, source, &device)?;
            let teacher =
                load_text::<<B as AutodiffBackend>::InnerBackend>(teacher, source, &device)?;
            let data = TextData {
                train,
                heldout,
                batch_size: source.batch_size,
                seed: source.seed,
                losses: args.distill.text_losses(),
            };
            (
                distill_and_save::<B, _>(&staging, student, &teacher, &data, &config)?,
                "text",
            )
        } else {
            let student = load_files::<B>(
                source.config.as_ref().expect("checked"),
                source.weights.as_ref().expect("checked"),
                &device,
            )?;
            let teacher = load_files::<<B as AutodiffBackend>::InnerBackend>(
                args.teacher_config.as_ref().expect("checked"),
                args.teacher_weights.as_ref().expect("checked"),
                &device,
            )?;
            // Distillation draws a new batch per step; no importance or calibration batches.
            let data = random_data(source, 0);
            (
                distill_and_save::<B, _>(&staging, student, &teacher, &data, &config)?,
                "encoder",
            )
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let (before, after) = distilled.fidelity();
    let teacher = match &args.teacher {
        Some(dir) => json!(dir),
        None => json!({"config": args.teacher_config, "weights": args.teacher_weights}),
    };
    let report = json!({
        "command": "distill",
        "kind": kind,
        "backend": selection.backend.name(),
        "teacher": teacher,
        "params": distilled.params,
        "fidelity_before_finetune": fidelity_json(&before),
        "fidelity_after_finetune": fidelity_json(&after),
        "distillation": distillation_json(&args.distill, source, kind),
        "finetune_steps": step_records(&distilled.steps),
        "seconds": seconds,
        "out": source.out,
    });
    if write_report(&staging, &report, staged)? {
        if let (Some(before), Some(after)) = (before, after) {
            println!(
                "fidelity to the teacher (held-out): {} before, {} after {} steps",
                describe(&before),
                describe(&after),
                args.steps
            );
        }
        println!("wrote {} in {seconds:.1} s", source.out.display());
    }
    Ok(())
}

/// Distils `student` from `teacher` on `data` as `config` says and writes it to `--out`.
fn distill_and_save<B: AutodiffBackend, D: DataSource>(
    source: &CompressSource,
    student: D::Model<B>,
    teacher: &D::Model<B::InnerBackend>,
    data: &D,
    config: &FinetuneConfig,
) -> Result<Distilled> {
    let (student, steps) = recover(student, teacher, data, config, None, &mut Bars::default())?;
    student
        .save_dir(source.write_dir())
        .context("cannot write the distilled model")?;
    Ok(Distilled {
        params: student.num_params(),
        steps,
    })
}
