//! Seeded random inputs as the data of compressing a plain encoder ([`DataSource`] for
//! [`TransformerEncoder`]s, whose inputs are vectors): the functions of [`crate::plain`] on
//! one set of training and held-out [`RandomInputs`].

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use kiln::TransformerEncoder;

use crate::calibration_batch::CalibrationBatch;
use crate::data_source::DataSource;
use crate::distill::{FinetuneConfig, StepRecord};
use crate::error::Result;
use crate::importance::Importance;
use crate::metrics::Fidelity;
use crate::plain::{self, RandomInputs};
use crate::unstructured::PruningMasks;
use crate::wanda::ActivationNorms;

/// Random training and held-out batches `N(0, 1)` of a plain encoder. Distillation draws a
/// new training batch per step; importance and calibration read the first `batches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomData {
    /// Training inputs.
    pub train: RandomInputs,
    /// Held-out inputs of the fidelity report.
    pub heldout: RandomInputs,
    /// Training batches that gradient importance and calibration read.
    pub batches: usize,
    /// Held-out batches that fidelity reads.
    pub heldout_batches: usize,
}

impl RandomData {
    /// Batches of `batch` sequences of `seq` vectors: training inputs seeded by `seed`, 4
    /// held-out batches seeded by `seed + 2^32` (so they never repeat a training batch), and
    /// `batches` training batches for importance and calibration.
    pub fn new(batch: usize, seq: usize, seed: u64, batches: usize) -> Self {
        let train = RandomInputs { batch, seq, seed };
        Self {
            train,
            heldout: RandomInputs {
                seed: seed.wrapping_add(1 << 32),
                ..train
            },
            batches,
            heldout_batches: 4,
        }
    }
}

impl DataSource for RandomData {
    type Model<B: Backend> = TransformerEncoder<B>;

    fn unit(&self) -> &'static str {
        "batches"
    }

    fn units(&self) -> usize {
        self.batches
    }

    fn gradient_importance<B: AutodiffBackend>(
        &self,
        student: &TransformerEncoder<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Importance> {
        plain::gradient_importance(student, &self.train, self.batches, || progress(1))
    }

    fn activation_norms<B: Backend>(
        &self,
        teacher: &TransformerEncoder<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ActivationNorms> {
        plain::activation_norms(teacher, &self.train, self.batches, || progress(1))
    }

    fn calibration_batches<B: Backend>(
        &self,
        teacher: &TransformerEncoder<B>,
    ) -> Result<Vec<CalibrationBatch<B>>> {
        Ok(plain::calibration_batches(
            teacher,
            &self.train,
            self.batches,
        ))
    }

    fn fidelity<B: Backend>(
        &self,
        reference: &TransformerEncoder<B>,
        candidate: &TransformerEncoder<B>,
    ) -> Result<Option<Fidelity>> {
        plain::fidelity(reference, candidate, &self.heldout, self.heldout_batches).map(Some)
    }

    fn student_fidelity<B: AutodiffBackend>(
        &self,
        teacher: &TransformerEncoder<B::InnerBackend>,
        student: &TransformerEncoder<B>,
    ) -> Result<Option<Fidelity>> {
        self.fidelity(teacher, &student.valid())
    }

    fn distill<B: AutodiffBackend>(
        &self,
        student: TransformerEncoder<B>,
        teacher: &TransformerEncoder<B::InnerBackend>,
        config: &FinetuneConfig,
        masks: Option<&PruningMasks>,
        on_step: &mut dyn FnMut(&StepRecord),
    ) -> Result<(TransformerEncoder<B>, Vec<StepRecord>)> {
        plain::distill(
            student,
            teacher,
            &self.train,
            &self.heldout,
            self.heldout_batches,
            config,
            masks,
            on_step,
        )
    }
}
