//! Compression helpers for plain encoders (`config.json` + `model.safetensors` of
//! `nn.TransformerEncoder`), whose inputs are vectors: importance, fidelity and distillation
//! on seeded random inputs `N(0, 1)` (or on given input batches).

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use kiln::{HostTensor, TransformerEncoder};
use rand::{Rng, SeedableRng};

use crate::calibration_batch::CalibrationBatch;
use crate::distill::{finetune, mse_loss, FinetuneConfig, StepRecord};
use crate::error::{CompressError, Result};
use crate::importance::{random_projection_loss, GradientImportance, Importance};
use crate::metrics::Fidelity;
use crate::unstructured::PruningMasks;
use crate::wanda::ActivationNorms;

/// Seeded random input batches `N(0, 1)` in the model's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomInputs {
    /// Sequences per batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Seed; batch `i` uses `seed + i`.
    pub seed: u64,
}

impl RandomInputs {
    /// Batch `index` for `encoder` (`[B, S, E]` or `[S, B, E]` as the model expects).
    pub fn get<B: Backend>(
        &self,
        index: usize,
        encoder: &TransformerEncoder<B>,
        device: &B::Device,
    ) -> Tensor<B, 3> {
        let d = encoder.config.d_model;
        let shape = if encoder.config.batch_first {
            [self.batch, self.seq, d]
        } else {
            [self.seq, self.batch, d]
        };
        let rng = rand::rngs::StdRng::seed_from_u64(self.seed.wrapping_add(index as u64));
        let values: Vec<f32> = rng
            .sample_iter(rand_distr::StandardNormal)
            .take(shape.iter().product())
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

fn device_of<B: Backend>(encoder: &TransformerEncoder<B>) -> B::Device {
    encoder.layers[0].linear1.weight.device()
}

/// Michel et al.'s importance over `batches` random batches (label-free
/// [`random_projection_loss`] of the output).
pub fn gradient_importance<B: AutodiffBackend>(
    encoder: &TransformerEncoder<B>,
    inputs: &RandomInputs,
    batches: usize,
    mut progress: impl FnMut(),
) -> Result<Importance> {
    let device = device_of(encoder);
    let mut acc = GradientImportance::new(encoder);
    for i in 0..batches.max(1) {
        let out = encoder.forward(inputs.get(i, encoder, &device), None, None, false)?;
        let grads =
            random_projection_loss(out, inputs.seed.wrapping_add(1_000_003 + i as u64)).backward();
        acc.accumulate(encoder, &grads);
        progress();
    }
    Ok(acc.finish())
}

/// The calibration statistics of Wanda pruning ([`crate::wanda`]) over `batches` batches of
/// `inputs` (one forward pass each, no gradients).
pub fn activation_norms<B: Backend>(
    encoder: &TransformerEncoder<B>,
    inputs: &RandomInputs,
    batches: usize,
    mut progress: impl FnMut(),
) -> Result<ActivationNorms> {
    let batches = calibration_batches(encoder, inputs, batches);
    ActivationNorms::from_batches(encoder, &batches, |_| progress())
}

/// `batches` batches of `inputs` as calibration data (no padding).
pub fn calibration_batches<B: Backend>(
    encoder: &TransformerEncoder<B>,
    inputs: &RandomInputs,
    batches: usize,
) -> Vec<CalibrationBatch<B>> {
    let device = device_of(encoder);
    (0..batches.max(1))
        .map(|i| CalibrationBatch {
            src: inputs.get(i, encoder, &device),
            lengths: None,
        })
        .collect()
}

/// Output token vectors of `encoder` on `batches` batches of `inputs`, as rows.
pub fn output_rows<B: Backend>(
    encoder: &TransformerEncoder<B>,
    inputs: &RandomInputs,
    batches: usize,
) -> Result<Vec<Vec<f32>>> {
    let device = device_of(encoder);
    let mut rows = Vec::new();
    for i in 0..batches {
        let out = encoder.forward(inputs.get(i, encoder, &device), None, None, false)?;
        let d = out.dims()[2];
        rows.extend(
            HostTensor::from_tensor(out)
                .data
                .chunks(d)
                .map(<[f32]>::to_vec),
        );
    }
    Ok(rows)
}

/// Fidelity of `candidate`'s output token vectors to `reference`'s on the same inputs.
pub fn fidelity<B: Backend>(
    reference: &TransformerEncoder<B>,
    candidate: &TransformerEncoder<B>,
    inputs: &RandomInputs,
    batches: usize,
) -> Result<Fidelity> {
    Ok(Fidelity::between(
        &output_rows(reference, inputs, batches)?,
        &output_rows(candidate, inputs, batches)?,
    ))
}

/// Distils `teacher` into `student` with the MSE between their outputs on random batches
/// (`train`, a new batch per step); evaluates fidelity on `heldout` (`heldout_batches`).
#[allow(clippy::too_many_arguments)]
pub fn distill<B: AutodiffBackend>(
    student: TransformerEncoder<B>,
    teacher: &TransformerEncoder<B::InnerBackend>,
    train: &RandomInputs,
    heldout: &RandomInputs,
    heldout_batches: usize,
    config: &FinetuneConfig,
    masks: Option<&PruningMasks>,
    on_step: impl FnMut(&StepRecord),
) -> Result<(TransformerEncoder<B>, Vec<StepRecord>)> {
    let (s, t) = (&student.config, &teacher.config);
    if (s.d_model, s.batch_first) != (t.d_model, t.batch_first) {
        return Err(CompressError::Invalid(format!(
            "the student cannot learn from this teacher: d_model {} / batch_first {} vs the teacher's {} / {}",
            s.d_model, s.batch_first, t.d_model, t.batch_first
        )));
    }
    let device = device_of(&student);
    let inner_device = device_of(teacher);
    let expected = output_rows(teacher, heldout, heldout_batches)?;
    let loss = |model: &TransformerEncoder<B>, step: usize| -> Result<Tensor<B, 1>> {
        let x = train.get(step, teacher, &inner_device);
        let target = teacher.forward(x.clone(), None, None, false)?;
        let out = model.forward(Tensor::from_inner(x), None, None, false)?;
        Ok(mse_loss(out, Tensor::from_inner(target)))
    };
    let eval = |model: &TransformerEncoder<B::InnerBackend>| -> Result<Fidelity> {
        Ok(Fidelity::between(
            &expected,
            &output_rows(model, heldout, heldout_batches)?,
        ))
    };
    finetune(student, config, masks, &device, loss, eval, on_step)
}
