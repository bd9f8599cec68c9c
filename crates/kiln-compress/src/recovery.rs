//! Fine-tuning to recover after compression, on any [`DataSource`]: distillation from the
//! original model with its progress reported step by step.

use burn::tensor::backend::AutodiffBackend;

use crate::data_source::DataSource;
use crate::distill::{FinetuneConfig, StepRecord};
use crate::error::Result;
use crate::progress::{Progress, Stage};
use crate::unstructured::PruningMasks;

/// Distils `teacher` into `student` on `data` for `config.steps` steps ([`DataSource::distill`])
/// as one [`Stage::Distillation`] of `progress`; `masks` keep unstructured-pruned weights at
/// zero. With no steps, `student` comes back as it is, with no records and no evaluation.
pub fn recover<B: AutodiffBackend, D: DataSource>(
    student: D::Model<B>,
    teacher: &D::Model<B::InnerBackend>,
    data: &D,
    config: &FinetuneConfig,
    masks: Option<&PruningMasks>,
    progress: &mut dyn Progress,
) -> Result<(D::Model<B>, Vec<StepRecord>)> {
    if config.steps == 0 {
        return Ok((student, Vec::new()));
    }
    progress.start(Stage::Distillation, config.steps, "steps");
    let recovered = data.distill(student, teacher, config, masks, &mut |record| {
        progress.step(record)
    })?;
    progress.finish();
    Ok(recovered)
}
