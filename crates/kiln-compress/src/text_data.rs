//! Text lines as the data of compressing a text model ([`DataSource`] for [`TextEncoder`]s):
//! the functions of [`crate::text`] on one set of training and held-out lines.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use kiln_text::TextEncoder;

use crate::calibration_batch::CalibrationBatch;
use crate::data_source::DataSource;
use crate::distill::{FinetuneConfig, StepRecord};
use crate::error::Result;
use crate::importance::Importance;
use crate::metrics::Fidelity;
use crate::text::{self, TextLoss};
use crate::unstructured::PruningMasks;
use crate::wanda::ActivationNorms;

/// Unlabeled text lines: `train` for importance, calibration and distillation, `heldout` for
/// fidelity (sentence embeddings of the candidate against the reference's).
#[derive(Debug, Clone)]
pub struct TextData {
    /// Training lines.
    pub train: Vec<String>,
    /// Held-out lines (empty: no fidelity report).
    pub heldout: Vec<String>,
    /// Lines per batch.
    pub batch_size: usize,
    /// Seed of gradient importance's random projections.
    pub seed: u64,
    /// What distillation matches.
    pub losses: Vec<TextLoss>,
}

impl DataSource for TextData {
    type Model<B: Backend> = TextEncoder<B>;

    fn unit(&self) -> &'static str {
        "texts"
    }

    fn units(&self) -> usize {
        self.train.len()
    }

    fn gradient_importance<B: AutodiffBackend>(
        &self,
        student: &TextEncoder<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Importance> {
        text::gradient_importance(student, &self.train, self.batch_size, self.seed, progress)
    }

    fn activation_norms<B: Backend>(
        &self,
        teacher: &TextEncoder<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ActivationNorms> {
        text::activation_norms(teacher, &self.train, self.batch_size, progress)
    }

    fn calibration_batches<B: Backend>(
        &self,
        teacher: &TextEncoder<B>,
    ) -> Result<Vec<CalibrationBatch<B>>> {
        text::calibration_batches(teacher, &self.train, self.batch_size)
    }

    fn fidelity<B: Backend>(
        &self,
        reference: &TextEncoder<B>,
        candidate: &TextEncoder<B>,
    ) -> Result<Option<Fidelity>> {
        if self.heldout.is_empty() {
            return Ok(None);
        }
        text::fidelity(reference, &candidate.model, &self.heldout).map(Some)
    }

    fn student_fidelity<B: AutodiffBackend>(
        &self,
        teacher: &TextEncoder<B::InnerBackend>,
        student: &TextEncoder<B>,
    ) -> Result<Option<Fidelity>> {
        if self.heldout.is_empty() {
            return Ok(None);
        }
        text::fidelity(teacher, &student.model.valid(), &self.heldout).map(Some)
    }

    fn distill<B: AutodiffBackend>(
        &self,
        student: TextEncoder<B>,
        teacher: &TextEncoder<B::InnerBackend>,
        config: &FinetuneConfig,
        masks: Option<&PruningMasks>,
        on_step: &mut dyn FnMut(&StepRecord),
    ) -> Result<(TextEncoder<B>, Vec<StepRecord>)> {
        text::distill(
            student,
            teacher,
            &self.train,
            &self.heldout,
            self.batch_size,
            &self.losses,
            config,
            masks,
            on_step,
        )
    }
}
