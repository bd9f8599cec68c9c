//! The report every compression command writes (`OUT/kiln_compression.json`, and with
//! `--json` on stdout) and the one-line summaries of fidelity.

use kiln::atomic::StagedDir;
use std::path::Path;

use anyhow::Result;
use kiln_compress::distill::StepRecord;
use kiln_compress::metrics::Fidelity;
use serde_json::{json, Value};

use super::settings::DistillSettings;
use super::source::CompressSource;

/// A fidelity as JSON (`null` when there is none).
pub fn fidelity_json(f: &Option<Fidelity>) -> Value {
    match f {
        Some(f) => json!(f),
        None => Value::Null,
    }
}

/// A fidelity in words: mean and worst cosine, and Spearman when there is one.
pub fn describe(f: &Fidelity) -> String {
    let spearman = f
        .spearman
        .map(|s| format!(", Spearman {s:.4}"))
        .unwrap_or_default();
    format!(
        "mean cosine {:.4} (min {:.4}){spearman}",
        f.mean_cosine, f.min_cosine
    )
}

/// Bytes of `dir`'s `model.safetensors` (0 when it cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Writes `OUT/kiln_compression.json`, moves the staged output directory into place and, with
/// `--json`, prints the report; returns whether the human summary is still to be printed.
pub fn write_report(source: &CompressSource, report: &Value, staged: StagedDir) -> Result<bool> {
    kiln::weights::write_atomic(
        &source.write_dir().join("kiln_compression.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    staged.commit()?;
    if source.json {
        println!("{report}");
    }
    Ok(!source.json)
}

/// The report's `distillation` entry.
pub fn distillation_json(settings: &DistillSettings, source: &CompressSource, kind: &str) -> Value {
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

/// The report's per-step entries (the step-0 evaluation is `fidelity_before_finetune`).
pub fn step_records(steps: &[StepRecord]) -> Vec<Value> {
    steps
        .iter()
        .filter(|r| r.step > 0)
        .map(|r| json!({"step": r.step, "loss": r.loss, "eval": r.eval}))
        .collect()
}
