//! Fine-tuning to recover: knowledge distillation from the unpruned teacher with burn autodiff
//! and AdamW, keeping pruned weights at zero.

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use serde::Serialize;

use crate::error::{CompressError, Result};
use crate::metrics::Fidelity;
use crate::unstructured::PruningMasks;

/// Settings of a distillation run.
#[derive(Config, Debug)]
pub struct FinetuneConfig {
    /// Optimiser steps (one batch each).
    #[config(default = 100)]
    pub steps: usize,
    /// AdamW learning rate (constant after warm-up).
    #[config(default = 5e-5)]
    pub learning_rate: f64,
    /// Steps of linear learning-rate warm-up from 0.
    #[config(default = 10)]
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    #[config(default = 0.01)]
    pub weight_decay: f32,
    /// Evaluate every this many steps (0: only before and after).
    #[config(default = 0)]
    pub eval_every: usize,
    /// Seed of batch order and dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Keep the student's dropout on while it learns. Off by default: the teacher is
    /// deterministic, so dropout in the student only adds noise the loss cannot remove (on
    /// all-MiniLM-L6-v2 it made distillation of a reconstructed model drift away from the
    /// teacher; see docs/compression.md). The trained model keeps its configured rates.
    #[config(default = false)]
    pub dropout: bool,
}

impl FinetuneConfig {
    /// The learning rate at `step` (0-based).
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64
        } else {
            self.learning_rate
        }
    }
}

/// A model whose dropout can be switched off while it is distilled and restored afterwards.
pub trait Dropout: Sized {
    /// The model's dropout probability.
    fn dropout_prob(&self) -> f64;
    /// The same model with every dropout probability set to `prob`.
    fn with_dropout_prob(self, prob: f64) -> Self;
}

impl<B: Backend> Dropout for kiln::TransformerEncoder<B> {
    fn dropout_prob(&self) -> f64 {
        self.config.dropout
    }
    fn with_dropout_prob(self, prob: f64) -> Self {
        self.with_dropout(prob)
    }
}

impl<B: Backend> Dropout for kiln_text::BertModel<B> {
    fn dropout_prob(&self) -> f64 {
        self.embeddings.dropout.prob
    }
    fn with_dropout_prob(self, prob: f64) -> Self {
        self.with_dropout(prob)
    }
}

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// 1-based step (0: the evaluation before training).
    pub step: usize,
    /// Training loss of the step's batch (None for the step-0 evaluation).
    pub loss: Option<f64>,
    /// Evaluation after the step, when one ran.
    pub eval: Option<Fidelity>,
}

/// Mean squared error between student and teacher outputs (e.g. hidden states).
pub fn mse_loss<B: Backend, const D: usize>(
    student: Tensor<B, D>,
    teacher: Tensor<B, D>,
) -> Tensor<B, 1> {
    (student - teacher).powi_scalar(2).mean()
}

/// `1 - mean cosine` between corresponding rows (e.g. pooled sentence embeddings).
///
/// # Shapes
/// - `student`, `teacher`: `[N, E]`
pub fn cosine_loss<B: Backend>(student: Tensor<B, 2>, teacher: Tensor<B, 2>) -> Tensor<B, 1> {
    let dot = (student.clone() * teacher.clone()).sum_dim(1);
    let norms = (student.powi_scalar(2).sum_dim(1) * teacher.powi_scalar(2).sum_dim(1))
        .sqrt()
        .clamp_min(1e-12);
    (dot / norms).mean().neg().add_scalar(1.0)
}

/// Trains `student` for `config.steps` AdamW steps on `loss(student, step)`, re-applying
/// `masks` after every step so pruned weights stay exactly zero, evaluating with
/// `eval(student.valid())` before training, every `eval_every` steps and at the end, and
/// reporting each step to `on_step`. A non-finite loss stops the run with an error. The student
/// trains without dropout unless `config.dropout`; the returned model has its rate back.
pub fn finetune<B, M>(
    student: M,
    config: &FinetuneConfig,
    masks: Option<&PruningMasks>,
    device: &B::Device,
    mut loss: impl FnMut(&M, usize) -> Result<Tensor<B, 1>>,
    mut eval: impl FnMut(&M::InnerModule) -> Result<Fidelity>,
    mut on_step: impl FnMut(&StepRecord),
) -> Result<(M, Vec<StepRecord>)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Dropout,
{
    B::seed(device, config.seed);
    let dropout = student.dropout_prob();
    let student = if config.dropout {
        student
    } else {
        student.with_dropout_prob(0.0)
    };
    let masks = masks.map(|m| m.on_device::<B>(device));
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init::<B, M>();
    let mut student = student;
    let mut records = vec![StepRecord {
        step: 0,
        loss: None,
        eval: Some(eval(&student.valid())?),
    }];
    on_step(&records[0]);
    for step in 0..config.steps {
        let batch_loss = loss(&student, step)?;
        let value: f64 = burn::tensor::ElementConversion::elem(batch_loss.clone().into_scalar());
        if !value.is_finite() {
            return Err(CompressError::Invalid(format!(
                "fine-tuning diverged: loss {value} at step {} (lower the learning rate)",
                step + 1
            )));
        }
        let grads = GradientsParams::from_grads(batch_loss.backward(), &student);
        student = optimizer.step(config.learning_rate_at(step), student, grads);
        if let Some(masks) = &masks {
            student = masks.apply(student);
        }
        let last = step + 1 == config.steps;
        let evaluate = last || (config.eval_every > 0 && (step + 1) % config.eval_every == 0);
        let record = StepRecord {
            step: step + 1,
            loss: Some(value),
            eval: if evaluate {
                Some(eval(&student.valid())?)
            } else {
                None
            },
        };
        on_step(&record);
        records.push(record);
    }
    Ok((student.with_dropout_prob(dropout), records))
}
