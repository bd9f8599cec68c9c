//! `kiln_compress::prune`, the pipeline of `kiln prune`, on a small random plain encoder with
//! random inputs: it equals the steps run one by one, fills the report's fields, and reports
//! progress stage by stage.

use std::sync::Mutex;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::Backend;
use kiln::backend::{cpu_device, CpuAutodiff};
use kiln::{HostTensor, TransformerEncoder, TransformerEncoderConfig};
use kiln_compress::calibration::statistics;
use kiln_compress::distill::{FinetuneConfig, StepRecord};
use kiln_compress::obs::obs_plan;
use kiln_compress::plain;
use kiln_compress::prune::{ImportanceMethod, PruneMethod, StructuredSpec};
use kiln_compress::reconstruct::{reconstruct, ReconstructConfig};
use kiln_compress::structured::{shrink, StructurePlan};
use kiln_compress::unstructured::UnstructuredMethod;
use kiln_compress::{prune, NoProgress, Progress, PruneSpec, RandomData, Stage};

type Ad = CpuAutodiff;

/// The backend's random numbers are global: tests that seed and draw them run one at a time.
static BACKEND_RNG: Mutex<()> = Mutex::new(());

fn encoder() -> TransformerEncoder<Ad> {
    let device = cpu_device();
    <Ad as Backend>::seed(&device, 7);
    TransformerEncoderConfig::new(16, 4, 2)
        .with_dim_feedforward(32)
        .with_batch_first(true)
        .try_init::<Ad>(&device)
        .unwrap()
}

/// Every stage as `(stage, total, advanced)`, and the distillation steps seen.
#[derive(Default)]
struct Recorder {
    stages: Vec<(Stage, usize, usize)>,
    steps: Vec<usize>,
    open: bool,
}

impl Progress for Recorder {
    fn start(&mut self, stage: Stage, total: usize, _unit: &'static str) {
        assert!(!self.open, "{stage:?} started inside another stage");
        self.open = true;
        self.stages.push((stage, total, 0));
    }
    fn advance(&mut self, done: usize) {
        self.stages.last_mut().expect("a stage").2 += done;
    }
    fn step(&mut self, record: &StepRecord) {
        self.steps.push(record.step);
    }
    fn finish(&mut self) {
        self.open = false;
    }
}

fn max_diff(a: &TransformerEncoder<Ad>, b: &TransformerEncoder<Ad>) -> f32 {
    let inputs = plain::RandomInputs {
        batch: 2,
        seq: 5,
        seed: 99,
    };
    let device = cpu_device();
    let x = inputs.get(0, a, &device);
    let out = |m: &TransformerEncoder<Ad>| {
        HostTensor::from_tensor(
            m.valid()
                .forward(x.clone().inner(), None, None, false)
                .unwrap(),
        )
        .data
    };
    out(a)
        .iter()
        .zip(out(b))
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

/// The pipeline equals the steps `kiln prune` ran one by one before it existed (gradient
/// importance, OBS, shrink, refit, fidelity, distillation, same seed), and fills every field.
#[test]
fn structured_pruning_of_a_plain_encoder_equals_the_step_by_step_path() {
    let _rng = BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let student = encoder();
    let teacher = student.valid();
    let data = RandomData::new(3, 6, 11, 4);
    let finetune = FinetuneConfig::new()
        .with_steps(2)
        .with_eval_every(1)
        .with_learning_rate(1e-3)
        .with_seed(11);
    let structured = StructuredSpec {
        heads: Some(0.5),
        neurons: Some(0.5),
        importance: ImportanceMethod::Gradient,
        obs: true,
        reconstruct: true,
        ridge: 1e-3,
    };
    let spec = PruneSpec::new(PruneMethod::Structured(structured))
        .with_finetune(finetune.clone())
        .with_seed(11);
    let mut recorder = Recorder::default();
    let pruned = prune(student.clone(), &teacher, &data, &spec, &mut recorder).unwrap();

    // The same steps by hand.
    let device = cpu_device();
    <Ad as Backend>::seed(&device, 11);
    let batches = plain::calibration_batches(&teacher, &data.train, 4);
    let grams = statistics(&teacher, &batches, false, true, || {})
        .unwrap()
        .grams
        .unwrap();
    let importance = plain::gradient_importance(&student, &data.train, 4, || {}).unwrap();
    let plan = StructurePlan::keep_all(&student)
        .with_heads(&importance, 0.5)
        .unwrap()
        .with_neurons(&importance, 0.5)
        .unwrap();
    let plan = obs_plan(&student, &grams, &plan, 1e-3).unwrap();
    let mut shrunk = shrink(student, &plan).unwrap();
    let config = ReconstructConfig { ridge: 1e-3 };
    let (_, fits) = reconstruct(&teacher, shrunk.valid(), &batches, &config, |_, _| {}).unwrap();
    for fit in &fits {
        fit.apply(&mut shrunk).unwrap();
    }
    let before = plain::fidelity(&teacher, &shrunk.valid(), &data.heldout, 4).unwrap();
    let (by_hand, records) = plain::distill(
        shrunk,
        &teacher,
        &data.train,
        &data.heldout,
        4,
        &finetune,
        None,
        |_| {},
    )
    .unwrap();

    assert_eq!(pruned.importance.as_ref(), Some(&importance));
    assert_eq!(pruned.layer_heads.iter().sum::<usize>(), 4);
    assert_eq!(pruned.layer_dim_feedforward, vec![16, 16]);
    assert_eq!(
        pruned.layer_heads,
        by_hand
            .layers
            .iter()
            .map(|l| l.self_attn.num_heads)
            .collect::<Vec<_>>()
    );
    assert!(pruned.params_after < pruned.params_before);
    assert_eq!(pruned.params_after, Module::num_params(&by_hand));
    assert_eq!(pruned.reconstruction.len(), fits.len());
    assert_eq!(pruned.reconstruction.len(), 4);
    assert_eq!(pruned.fidelity_before_finetune, Some(before));
    let losses = |r: &[StepRecord]| r.iter().map(|r| r.loss).collect::<Vec<_>>();
    assert_eq!(losses(&pruned.finetune_steps), losses(&records));
    assert_eq!(
        pruned.fidelity_after_finetune(),
        records.last().unwrap().eval
    );
    assert!(pruned.masks.is_none());
    let diff = max_diff(&pruned.model, &by_hand);
    assert!(
        diff < 1e-6,
        "pipeline and step-by-step models differ by {diff}"
    );

    // Calibration (OBS), importance, refit, distillation: each counted to its end.
    let stages: Vec<Stage> = recorder.stages.iter().map(|s| s.0).collect();
    assert_eq!(
        stages,
        [
            Stage::Calibration,
            Stage::Importance,
            Stage::Reconstruction,
            Stage::Distillation
        ]
    );
    for (stage, total, advanced) in &recorder.stages[..3] {
        assert_eq!(total, advanced, "{stage:?}");
    }
    assert_eq!(recorder.steps, [0, 1, 2]);
}

#[test]
fn unstructured_pruning_keeps_the_shape_and_masks_the_rate() {
    let _rng = BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let student = encoder();
    let teacher = student.valid();
    let data = RandomData::new(2, 4, 0, 2);
    let method = PruneMethod::Unstructured {
        method: UnstructuredMethod::Magnitude,
        rate: 0.25,
    };
    let pruned = prune(
        student,
        &teacher,
        &data,
        &PruneSpec::new(method),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(pruned.params_after, pruned.params_before);
    assert_eq!(pruned.layer_heads, vec![4, 4]);
    assert!((pruned.sparsity.total.sparsity - 0.25).abs() < 1e-3);
    assert!(pruned.masks.is_some());
    let fidelity = pruned.fidelity_before_finetune.unwrap();
    assert!(fidelity.mean_cosine > 0.5 && fidelity.mean_cosine < 1.0);
    assert!(pruned.finetune_steps.is_empty() && pruned.fidelity_after_finetune().is_none());
}
