//! Where data-dependent compression gets its data. One trait covers text lines read by a text
//! model ([`crate::text_data::TextData`]) and seeded random inputs of a plain encoder
//! ([`crate::random_data::RandomData`]), so that pruning ([`crate::prune::prune`]), fidelity
//! and distillation take one generic path for both.

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::calibration_batch::CalibrationBatch;
use crate::distill::{FinetuneConfig, StepRecord};
use crate::encoder_model::EncoderModel;
use crate::error::Result;
use crate::importance::Importance;
use crate::metrics::Fidelity;
use crate::unstructured::PruningMasks;
use crate::wanda::ActivationNorms;

/// Training and held-out data for compressing one kind of model, and the data-dependent steps
/// that read it. The model being compressed is the *student* (on an autodiff backend); the
/// original it must stay close to is the *teacher* (on the student's inner backend).
pub trait DataSource {
    /// The model this data feeds, on backend `B`.
    type Model<B: Backend>: EncoderModel<B>;

    /// What progress counts while [`Self::gradient_importance`] and
    /// [`Self::activation_norms`] run: `"texts"` or `"batches"`.
    fn unit(&self) -> &'static str;

    /// How many [`Self::unit`]s one pass over the training data counts.
    fn units(&self) -> usize;

    /// Michel et al.'s head and neuron importance of `student`'s encoder layers over the
    /// training data (label-free loss, seeded); `progress(n)` after every `n` units.
    fn gradient_importance<B: AutodiffBackend>(
        &self,
        student: &Self::Model<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Importance>;

    /// Wanda's activation norms of `teacher`'s Linear inputs over the training data;
    /// `progress(n)` after every `n` units.
    fn activation_norms<B: Backend>(
        &self,
        teacher: &Self::Model<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ActivationNorms>;

    /// The training data as inputs of `teacher`'s encoder layers (for activation importance,
    /// OBS and reconstruction, which run the layers only).
    fn calibration_batches<B: Backend>(
        &self,
        teacher: &Self::Model<B>,
    ) -> Result<Vec<CalibrationBatch<B>>>;

    /// Fidelity of `candidate`'s outputs to `reference`'s on the held-out data (`None` when
    /// there is none).
    fn fidelity<B: Backend>(
        &self,
        reference: &Self::Model<B>,
        candidate: &Self::Model<B>,
    ) -> Result<Option<Fidelity>>;

    /// [`Self::fidelity`] of a student on the autodiff backend (evaluated without gradients).
    fn student_fidelity<B: AutodiffBackend>(
        &self,
        teacher: &Self::Model<B::InnerBackend>,
        student: &Self::Model<B>,
    ) -> Result<Option<Fidelity>>;

    /// Distils `teacher` into `student` for `config.steps` steps on the training data,
    /// evaluating fidelity on the held-out data; `masks` keep pruned weights at zero. Each
    /// step's record goes to `on_step`.
    fn distill<B: AutodiffBackend>(
        &self,
        student: Self::Model<B>,
        teacher: &Self::Model<B::InnerBackend>,
        config: &FinetuneConfig,
        masks: Option<&PruningMasks>,
        on_step: &mut dyn FnMut(&StepRecord),
    ) -> Result<(Self::Model<B>, Vec<StepRecord>)>;
}
