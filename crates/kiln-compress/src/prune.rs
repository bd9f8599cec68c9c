//! The pruning pipeline of `kiln prune`, on any [`DataSource`]: choose what goes (unstructured
//! weights, or heads and feed-forward neurons by importance, optionally by OBS), mask or shrink
//! the encoder layers, optionally refit them by least squares, measure the fidelity to the
//! original, and optionally distil from it to recover.
//!
//! ```no_run
//! use kiln::backend::{cpu_device, CpuAutodiff};
//! use kiln::TransformerEncoder;
//! use kiln_compress::prune::{prune, ImportanceMethod, PruneMethod, PruneSpec, StructuredSpec};
//! use kiln_compress::{NoProgress, RandomData};
//!
//! let device = cpu_device();
//! let student = TransformerEncoder::<CpuAutodiff>::from_dir("my_model", &device)?;
//! let teacher = burn::module::AutodiffModule::valid(&student);
//! let spec = PruneSpec::new(PruneMethod::Structured(StructuredSpec {
//!     importance: ImportanceMethod::Activation,
//!     reconstruct: true,
//!     ..StructuredSpec::heads(0.25)
//! }));
//! let data = RandomData::new(16, 32, 0, 8);
//! let pruned = prune(student, &teacher, &data, &spec, &mut NoProgress)?;
//! println!("{:?} heads per layer", pruned.layer_heads);
//! # Ok::<(), kiln_compress::CompressError>(())
//! ```

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use kiln::TransformerEncoder;

use crate::calibration::{statistics, CalibrationStatistics};
use crate::calibration_batch::CalibrationBatch;
use crate::data_source::DataSource;
use crate::distill::{FinetuneConfig, StepRecord};
use crate::encoder_model::EncoderModel;
use crate::error::{CompressError, Result};
use crate::importance::{weight_norm_importance, Importance};
use crate::metrics::Fidelity;
use crate::obs::obs_plan;
use crate::progress::{Progress, Stage};
use crate::reconstruct::{reconstruct, LinearFit, ReconstructConfig};
use crate::recovery::recover;
use crate::structured::{shrink, StructurePlan};
use crate::unstructured::{
    prune_unstructured, sparsity_report, PruningMasks, SparsityReport, UnstructuredMethod,
};
use crate::wanda::prune_wanda;

/// What to prune, and how to choose it.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneMethod {
    /// A fraction `rate` of the Linear weights by `method`, masked to zero (the shape stays).
    Unstructured {
        /// How weights are chosen.
        method: UnstructuredMethod,
        /// Fraction of the weights, `0 <= rate < 1`.
        rate: f64,
    },
    /// A fraction `rate` of each output row's weights by Wanda's `|w_ij| * ||x_j||`, the
    /// activation norms coming from the training data; masked to zero.
    Wanda {
        /// Fraction of each row's weights, `0 <= rate < 1`.
        rate: f64,
    },
    /// Whole attention heads and/or feed-forward neurons: the layers shrink.
    Structured(StructuredSpec),
}

/// How heads and neurons are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportanceMethod {
    /// Michel et al. 2019: `|dL/d gate|` from gradients of the student on the training data.
    Gradient,
    /// The original model on calibration data: a head by the norm of what it adds to the
    /// attention output, a neuron by `||activation|| * ||outgoing weights||`.
    Activation,
    /// Weight norms, no data.
    WeightNorm,
}

/// Structured pruning: which structures go, how they are scored and what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredSpec {
    /// Fraction of all heads to remove, least important first (`None`: heads stay).
    pub heads: Option<f64>,
    /// Fraction of each layer's feed-forward neurons to remove (`None`: neurons stay).
    pub neurons: Option<f64>,
    /// How heads and neurons are scored.
    pub importance: ImportanceMethod,
    /// Within each layer, choose which heads and neurons go by Optimal Brain Surgeon on the
    /// calibration data; how many each layer loses still follows `importance`.
    pub obs: bool,
    /// Refit each layer's `out_proj` and `linear2` by least squares so the shrunk layers
    /// reproduce the original ones on the calibration data.
    pub reconstruct: bool,
    /// Ridge factor of `obs` and `reconstruct`, relative to the mean diagonal of `XᵀX`.
    pub ridge: f64,
}

impl StructuredSpec {
    /// A fraction `rate` of all heads by gradient importance; no OBS, no refit, ridge `1e-3`.
    pub fn heads(rate: f64) -> Self {
        Self {
            heads: Some(rate),
            neurons: None,
            importance: ImportanceMethod::Gradient,
            obs: false,
            reconstruct: false,
            ridge: ReconstructConfig::default().ridge,
        }
    }

    /// A fraction `rate` of each layer's feed-forward neurons, otherwise as [`Self::heads`].
    pub fn neurons(rate: f64) -> Self {
        Self {
            heads: None,
            neurons: Some(rate),
            ..Self::heads(0.0)
        }
    }
}

/// A pruning run: the method, the distillation that follows it, and the seed.
#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// What to prune.
    pub method: PruneMethod,
    /// Distillation from the original model after pruning (`steps` 0: none).
    pub finetune: FinetuneConfig,
    /// Seed of the backend's random numbers (dropout is on while gradient importance runs)
    /// and of [`UnstructuredMethod::Random`]'s choice when the CLI builds it.
    pub seed: u64,
}

impl PruneSpec {
    /// `method` with no distillation, seed 0.
    pub fn new(method: PruneMethod) -> Self {
        Self {
            method,
            finetune: FinetuneConfig::new().with_steps(0),
            seed: 0,
        }
    }

    /// The same run followed by distillation with `finetune`.
    pub fn with_finetune(mut self, finetune: FinetuneConfig) -> Self {
        self.finetune = finetune;
        self
    }

    /// The same run with `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// What a pruning run gives back: the pruned (and distilled) model and what happened to it.
#[derive(Debug)]
pub struct Pruned<M> {
    /// The pruned model.
    pub model: M,
    /// Parameters of the whole model before pruning.
    pub params_before: usize,
    /// Parameters after pruning (unstructured pruning keeps them: zeros still count).
    pub params_after: usize,
    /// Attention heads of each layer, after pruning.
    pub layer_heads: Vec<usize>,
    /// Feed-forward width of each layer, after pruning.
    pub layer_dim_feedforward: Vec<usize>,
    /// Zeros in the Linear weights of the final model.
    pub sparsity: SparsityReport,
    /// The masks of unstructured pruning (they kept pruned weights at zero while distilling).
    pub masks: Option<PruningMasks>,
    /// The scores heads and neurons were chosen by (structured pruning).
    pub importance: Option<Importance>,
    /// With [`StructuredSpec::reconstruct`], every refit Linear and its error before and after.
    pub reconstruction: Vec<LinearFit>,
    /// Fidelity to the original on the held-out data right after pruning (`None` without
    /// held-out data).
    pub fidelity_before_finetune: Option<Fidelity>,
    /// The distillation's records: step 0 (the evaluation before it) and every step.
    pub finetune_steps: Vec<StepRecord>,
}

impl<M> Pruned<M> {
    /// The model, and the rest of the outcome without it (e.g. to report after saving).
    pub fn into_parts(self) -> (M, Pruned<()>) {
        let outcome = Pruned {
            model: (),
            params_before: self.params_before,
            params_after: self.params_after,
            layer_heads: self.layer_heads,
            layer_dim_feedforward: self.layer_dim_feedforward,
            sparsity: self.sparsity,
            masks: self.masks,
            importance: self.importance,
            reconstruction: self.reconstruction,
            fidelity_before_finetune: self.fidelity_before_finetune,
            finetune_steps: self.finetune_steps,
        };
        (self.model, outcome)
    }

    /// The evaluation after the last distillation step (`None` without distillation).
    pub fn fidelity_after_finetune(&self) -> Option<Fidelity> {
        self.finetune_steps
            .iter()
            .rev()
            .find(|r| r.step > 0)
            .and_then(|r| r.eval)
    }
}

/// What the choice of what to prune produced, before distillation.
struct Cut<B: Backend> {
    encoder: TransformerEncoder<B>,
    masks: Option<PruningMasks>,
    importance: Option<Importance>,
    fits: Vec<LinearFit>,
}

/// Prunes `student` as `spec` says, with `teacher` (the original, on the inner backend) and
/// `data` for the data-dependent steps, then measures fidelity to `teacher` and distils from it
/// (`spec.finetune.steps` steps). `student` starts as a copy of `teacher`. Seeds the backend
/// with `spec.seed` first, so a run repeats. Each stage reports to `progress`.
pub fn prune<B: AutodiffBackend, D: DataSource>(
    mut student: D::Model<B>,
    teacher: &D::Model<B::InnerBackend>,
    data: &D,
    spec: &PruneSpec,
    progress: &mut dyn Progress,
) -> Result<Pruned<D::Model<B>>> {
    let device = student
        .encoder()
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| CompressError::Invalid("the model has no parameters".into()))?;
    B::seed(&device, spec.seed);
    let params_before = student.num_params();
    let cut = match &spec.method {
        PruneMethod::Unstructured { method, rate } => {
            let (encoder, masks) = prune_unstructured(student.encoder().clone(), *method, *rate)?;
            Cut {
                encoder,
                masks: Some(masks),
                importance: None,
                fits: Vec::new(),
            }
        }
        PruneMethod::Wanda { rate } => {
            progress.start(Stage::Calibration, data.units(), data.unit());
            let norms = data.activation_norms(teacher, &mut |n| progress.advance(n))?;
            progress.finish();
            let (encoder, masks) = prune_wanda(student.encoder().clone(), &norms, *rate)?;
            Cut {
                encoder,
                masks: Some(masks),
                importance: None,
                fits: Vec::new(),
            }
        }
        PruneMethod::Structured(structured) => {
            cut_structures(&student, teacher, data, structured, progress)?
        }
    };
    *student.encoder_mut() = cut.encoder;
    let fidelity_before_finetune = data.student_fidelity(teacher, &student)?;
    let (student, finetune_steps) = recover(
        student,
        teacher,
        data,
        &spec.finetune,
        cut.masks.as_ref(),
        progress,
    )?;
    let encoder = student.encoder();
    Ok(Pruned {
        params_before,
        params_after: student.num_params(),
        layer_heads: encoder
            .layers
            .iter()
            .map(|l| l.self_attn.num_heads)
            .collect(),
        layer_dim_feedforward: encoder
            .layers
            .iter()
            .map(|l| l.linear1.weight.dims()[1])
            .collect(),
        sparsity: sparsity_report(encoder),
        masks: cut.masks,
        importance: cut.importance,
        reconstruction: cut.fits,
        fidelity_before_finetune,
        finetune_steps,
        model: student,
    })
}

/// Structured pruning of `student`'s encoder: calibration statistics of `teacher` (activation
/// importance, OBS's Gram matrices) as needed, the importance scores, the plan (refined by
/// OBS), the shrink, and the least-squares refit.
fn cut_structures<B: AutodiffBackend, D: DataSource>(
    student: &D::Model<B>,
    teacher: &D::Model<B::InnerBackend>,
    data: &D,
    spec: &StructuredSpec,
    progress: &mut dyn Progress,
) -> Result<Cut<B>> {
    let encoder = student.encoder().clone();
    let activation = spec.importance == ImportanceMethod::Activation;
    // Built on first use, shared by the statistics and the refit.
    let mut batches = None;
    let statistics = if activation || spec.obs {
        let batches = calibration(&mut batches, data, teacher)?;
        progress.start(Stage::Calibration, batches.len(), "batches");
        let gathered = statistics(teacher.encoder(), batches, activation, spec.obs, || {
            progress.advance(1)
        });
        progress.finish();
        gathered?
    } else {
        CalibrationStatistics::default()
    };
    let importance = match spec.importance {
        ImportanceMethod::WeightNorm => weight_norm_importance(&encoder),
        ImportanceMethod::Gradient => {
            progress.start(Stage::Importance, data.units(), data.unit());
            let scores = data.gradient_importance(student, &mut |n| progress.advance(n));
            progress.finish();
            scores?
        }
        ImportanceMethod::Activation => statistics
            .importance
            .ok_or_else(|| CompressError::Invalid("no activation importance".into()))?,
    };
    let mut plan = StructurePlan::keep_all(&encoder);
    if let Some(rate) = spec.heads {
        plan = plan.with_heads(&importance, rate)?;
    }
    if let Some(rate) = spec.neurons {
        plan = plan.with_neurons(&importance, rate)?;
    }
    if let Some(grams) = &statistics.grams {
        plan = obs_plan(&encoder, grams, &plan, spec.ridge)?;
    }
    let mut encoder = shrink(encoder, &plan)?;
    let mut fits = Vec::new();
    if spec.reconstruct {
        let batches = calibration(&mut batches, data, teacher)?;
        progress.start(Stage::Reconstruction, 2 * encoder.layers.len(), "blocks");
        let config = ReconstructConfig { ridge: spec.ridge };
        let refit = reconstruct(
            teacher.encoder(),
            encoder.valid(),
            batches,
            &config,
            |_, _| progress.advance(1),
        );
        progress.finish();
        fits = refit?.1;
        for fit in &fits {
            fit.apply(&mut encoder)?;
        }
    }
    Ok(Cut {
        encoder,
        masks: None,
        importance: Some(importance),
        fits,
    })
}

/// The calibration batches of `data` for `teacher`, built into `cache` on first use.
fn calibration<'c, B: Backend, D: DataSource>(
    cache: &'c mut Option<Vec<CalibrationBatch<B>>>,
    data: &D,
    teacher: &D::Model<B>,
) -> Result<&'c [CalibrationBatch<B>]> {
    if cache.is_none() {
        *cache = Some(data.calibration_batches(teacher)?);
    }
    Ok(cache.as_deref().unwrap_or_default())
}
