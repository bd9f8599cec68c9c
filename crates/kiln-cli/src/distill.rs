//! `kiln distill`: fine-tuning to recover, on its own: distils a (pruned) student from a
//! teacher, e.g. to continue the distillation `kiln prune --finetune-steps` started, or to
//! distil a model pruned elsewhere. Same losses, settings and report as `kiln prune`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use kiln_compress::distill::StepRecord;
use kiln_compress::metrics::Fidelity;
use kiln_text::TextEncoder;
use serde_json::{json, Value};

use crate::backend_select::select;
use crate::compress::{
    check_source, describe, distill_plain, distill_text, distillation_json, fidelity_json,
    text_data, write_report, DistillArgs,
};
use crate::embed::announce;
use crate::{usage, with_autodiff_backend};

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

pub fn run_distill(args: &DistillArgs) -> Result<()> {
    let source = &args.source;
    let teacher_inputs: Vec<&Path> = [&args.teacher, &args.teacher_config, &args.teacher_weights]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    check_source(source, &teacher_inputs)?;
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
    let start = Instant::now();
    let (distilled, kind) = with_autodiff_backend!(selection.backend, |B, device| {
        // Dropout (with --dropout) runs under autodiff: seed it so runs repeat.
        <B as Backend>::seed(&device, source.seed);
        if source.model.is_some() {
            (text::<B>(args, &device)?, "text")
        } else {
            (plain::<B>(args, &device)?, "encoder")
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
    if write_report(source, &report)? {
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

/// The report's per-step entries (the step-0 evaluation is `fidelity_before_finetune`).
pub(crate) fn step_records(steps: &[StepRecord]) -> Vec<Value> {
    steps
        .iter()
        .filter(|r| r.step > 0)
        .map(|r| json!({"step": r.step, "loss": r.loss, "eval": r.eval}))
        .collect()
}

fn text<B: AutodiffBackend>(args: &DistillArgs, device: &B::Device) -> Result<Distilled> {
    let source = &args.source;
    let load = |dir: &Path| -> Result<TextEncoder<B>> {
        Ok(TextEncoder::<B>::from_dir(dir, device)
            .with_context(|| format!("cannot load text model {}", dir.display()))?
            .with_batch_size(source.batch_size))
    };
    let student = load(source.model.as_deref().expect("checked"))?;
    let teacher_dir = args.teacher.as_deref().expect("checked");
    let teacher = TextEncoder::<B::InnerBackend>::from_dir(teacher_dir, device)
        .with_context(|| format!("cannot load text model {}", teacher_dir.display()))?
        .with_batch_size(source.batch_size);
    let (train, heldout) = text_data(source)?;
    let (student, steps) = distill_text(
        student,
        &teacher,
        (&train, &heldout),
        source,
        &args.distill,
        args.steps,
        None,
    )?;
    student
        .save_dir(&source.out)
        .context("cannot write the distilled model")?;
    Ok(Distilled {
        params: student.model.num_params(),
        steps,
    })
}

fn plain<B: AutodiffBackend>(args: &DistillArgs, device: &B::Device) -> Result<Distilled> {
    let source = &args.source;
    let student = crate::model_source::load_files::<B>(
        source.config.as_ref().expect("checked"),
        source.weights.as_ref().expect("checked"),
        device,
    )?;
    let teacher = crate::model_source::load_files::<B::InnerBackend>(
        args.teacher_config.as_ref().expect("checked"),
        args.teacher_weights.as_ref().expect("checked"),
        device,
    )?;
    let (student, steps) =
        distill_plain(student, &teacher, source, &args.distill, args.steps, None)?;
    student
        .save_dir(&source.out)
        .context("cannot write the distilled model")?;
    Ok(Distilled {
        params: student.num_params(),
        steps,
    })
}
