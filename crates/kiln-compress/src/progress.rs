//! Progress of a compression run, reported to whoever runs it: the `kiln` CLI draws progress
//! bars, a library caller may log it or ignore it ([`NoProgress`]).

use crate::distill::StepRecord;

/// A stage of a compression run that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Gradient importance of the model being pruned (forward and backward passes over data).
    Importance,
    /// A pass of the original model over calibration data: Wanda's activation norms,
    /// activation importance, OBS's Gram matrices.
    Calibration,
    /// Layer-wise least-squares reconstruction of the shrunk model, two blocks per layer.
    Reconstruction,
    /// Distillation from the original model, one step at a time.
    Distillation,
}

impl Stage {
    /// The stage's name in lower case (`"importance"`, `"calibration"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Importance => "importance",
            Stage::Calibration => "calibration",
            Stage::Reconstruction => "reconstruction",
            Stage::Distillation => "distillation",
        }
    }
}

/// Receives the progress of a compression run. Stages run one at a time: `start`, then
/// `advance` (or `step`, while distilling) any number of times, then `finish`. Every method
/// does nothing unless implemented.
pub trait Progress {
    /// `stage` starts with `total` `unit`s to go (`"texts"`, `"batches"`, `"blocks"`, `"steps"`).
    fn start(&mut self, stage: Stage, total: usize, unit: &'static str) {
        let _ = (stage, total, unit);
    }

    /// `done` more units of the current stage are done.
    fn advance(&mut self, done: usize) {
        let _ = done;
    }

    /// A distillation step is done (step 0: the evaluation before the first step); its
    /// evaluation, when one ran, is in `record.eval`.
    fn step(&mut self, record: &StepRecord) {
        let _ = record;
    }

    /// The current stage is done.
    fn finish(&mut self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
