//! Training a [`ClassifierHead`] on frozen features: supervised, with augmented copies of the
//! labelled texts, with UDA consistency on unlabelled texts, with pseudo-labels, or any mix.
//!
//! Per step, with a labelled batch `L` and (when an unsupervised loss is on) an unlabelled
//! batch `U`, each unlabelled text paired with one of its augmented views drawn at random:
//!
//! - supervised: mean cross-entropy on `L` (with `augment`, `L` is drawn from the labelled
//!   texts *and* their augmented views, each view carrying its text's label: EDA's recipe);
//! - consistency (UDA, Xie et al. 2020): `p = softmax(f(u) / T)` from the head in eval mode
//!   with no gradient (sharpened, `T` = `temperature`), kept only where `max softmax(f(u))`
//!   reaches `threshold` (confidence masking); loss `sum_masked KL(p || softmax(f(aug(u)))) / |U|`;
//! - pseudo-labels (Lee 2013, with FixMatch's confidence threshold): the eval-mode head's
//!   argmax on `u` as a hard label where its probability reaches `threshold`; loss
//!   `sum_masked CE(f(u), label) / |U|`;
//!
//! total = supervised + w(t)·consistency + w(t)·pseudo, with each weight ramped linearly from 0
//! over the first `ramp_up_steps` steps (both methods need a head that already knows something).
//! AdamW, constant learning rate, batches drawn by epochs of a seeded permutation.

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ClassifyError, Result};
use crate::features::Features;
use crate::head::ClassifierHead;

/// A labelled text: its feature row, class, and the rows of its augmented views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledRow {
    /// The text's row.
    pub row: usize,
    /// Its class index.
    pub label: usize,
    /// Rows of its augmented views (may be empty).
    pub views: Vec<usize>,
}

/// An unlabelled text: its feature row and the rows of its augmented views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlabeledRow {
    /// The text's row.
    pub row: usize,
    /// Rows of its augmented views (consistency training needs at least one).
    pub views: Vec<usize>,
}

/// What a head is trained on.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Every feature row the examples point at.
    pub features: Features,
    /// Labelled examples.
    pub labeled: Vec<LabeledRow>,
    /// Unlabelled examples.
    pub unlabeled: Vec<UnlabeledRow>,
    /// Number of classes.
    pub num_classes: usize,
}

/// UDA's consistency loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyConfig {
    /// Weight of the loss (UDA: 1).
    pub weight: f64,
    /// Sharpening temperature of the target distribution (UDA: 0.4).
    pub temperature: f64,
    /// Confidence threshold of the mask (UDA's paper: 0.8; kiln's default 0.3, see [`Default`]).
    pub threshold: f64,
}

/// UDA's weight and temperature; a confidence threshold of 0.3, not the paper's 0.8: a
/// head over frozen features predicts 8 topics with little confidence, and 0.8 masked out
/// most unlabelled texts (chosen on the fortunes-topics dev split, docs/augmentation.md).
impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            temperature: 0.4,
            threshold: 0.3,
        }
    }
}

/// Pseudo-labelling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PseudoLabelConfig {
    /// Weight of the loss.
    pub weight: f64,
    /// Confidence a prediction needs to become a label (FixMatch: 0.95; kiln's default 0.5).
    pub threshold: f64,
}

/// Weight 1, threshold 0.5 (FixMatch's 0.95 suits end-to-end trained models whose predictions
/// are sharper; chosen on the fortunes-topics dev split, docs/augmentation.md).
impl Default for PseudoLabelConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            threshold: 0.5,
        }
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Labelled examples per step.
    pub batch_size: usize,
    /// Unlabelled examples per step (when an unsupervised loss is on).
    pub unlabeled_batch_size: usize,
    /// AdamW learning rate (constant).
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of the batches, the views drawn and the head's dropout masks.
    pub seed: u64,
    /// Train on the labelled texts' augmented views too.
    pub augment: bool,
    /// UDA consistency on unlabelled texts.
    pub consistency: Option<ConsistencyConfig>,
    /// Pseudo-labels on unlabelled texts.
    pub pseudo_labels: Option<PseudoLabelConfig>,
    /// Steps over which the unsupervised weights ramp up from 0.
    pub ramp_up_steps: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 500,
            batch_size: 32,
            unlabeled_batch_size: 96,
            learning_rate: 3e-3,
            weight_decay: 1e-2,
            seed: 0,
            augment: false,
            consistency: None,
            pseudo_labels: None,
            ramp_up_steps: 100,
        }
    }
}

impl TrainConfig {
    /// Fails on settings that cannot train, or that do not fit `set` (naming the problem).
    pub fn check(&self, set: &TrainingSet) -> Result<()> {
        let invalid = |m: String| Err(ClassifyError::Invalid(m));
        if self.steps == 0 || self.batch_size == 0 {
            return invalid("steps and batch size must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return invalid(format!(
                "learning rate {} must be positive",
                self.learning_rate
            ));
        }
        if !(self.weight_decay >= 0.0) {
            return invalid(format!("weight decay {} must be >= 0", self.weight_decay));
        }
        if set.labeled.is_empty() {
            return invalid("no labelled examples".into());
        }
        let rows = set.features.rows();
        let rows_ok = set.labeled.iter().all(|e| {
            e.label < set.num_classes && e.row < rows && e.views.iter().all(|&v| v < rows)
        }) && set
            .unlabeled
            .iter()
            .all(|e| e.row < rows && e.views.iter().all(|&v| v < rows));
        if !rows_ok {
            return invalid(
                "an example points at a feature row or class that does not exist".into(),
            );
        }
        if self.augment && set.labeled.iter().all(|e| e.views.is_empty()) {
            return invalid("augmentation is on but no labelled text has augmented views".into());
        }
        if self.consistency.is_some() || self.pseudo_labels.is_some() {
            if set.unlabeled.is_empty() {
                return invalid(
                    "consistency training and pseudo-labels need unlabelled texts".into(),
                );
            }
            if self.unlabeled_batch_size == 0 {
                return invalid("unlabelled batch size must be at least 1".into());
            }
        }
        if let Some(c) = &self.consistency {
            if set.unlabeled.iter().any(|e| e.views.is_empty()) {
                return invalid(
                    "consistency training needs augmented views of every unlabelled text".into(),
                );
            }
            if !(c.temperature > 0.0) || !(0.0..=1.0).contains(&c.threshold) || !(c.weight >= 0.0) {
                return invalid(format!(
                    "consistency: temperature {} must be > 0, threshold {} in [0, 1], weight {} >= 0",
                    c.temperature, c.threshold, c.weight
                ));
            }
        }
        if let Some(p) = &self.pseudo_labels {
            if !(0.0..=1.0).contains(&p.threshold) || !(p.weight >= 0.0) {
                return invalid(format!(
                    "pseudo-labels: threshold {} must be in [0, 1], weight {} >= 0",
                    p.threshold, p.weight
                ));
            }
        }
        Ok(())
    }

    fn ramp(&self, step: usize) -> f64 {
        if self.ramp_up_steps == 0 {
            1.0
        } else {
            ((step + 1) as f64 / self.ramp_up_steps as f64).min(1.0)
        }
    }
}

/// One training step's losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 1-based step.
    pub step: usize,
    /// The loss minimised (weighted sum).
    pub loss: f64,
    /// Cross-entropy on the labelled batch.
    pub supervised: f64,
    /// KL consistency on the unlabelled batch (unweighted), when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<f64>,
    /// Share of the unlabelled batch above the consistency threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_kept: Option<f64>,
    /// Pseudo-label cross-entropy on the unlabelled batch (unweighted), when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudo_label: Option<f64>,
    /// Share of the unlabelled batch that got a pseudo-label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudo_labeled: Option<f64>,
}

/// Endless batches of indices below `n`: epochs of seeded permutations.
struct Batches {
    order: Vec<usize>,
    next: usize,
}

impl Batches {
    fn new(n: usize) -> Self {
        Self {
            order: (0..n).collect(),
            next: n,
        }
    }

    fn take(&mut self, size: usize, rng: &mut StdRng) -> Vec<usize> {
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            if self.next == self.order.len() {
                self.order.shuffle(rng);
                self.next = 0;
            }
            let k = (size - out.len()).min(self.order.len() - self.next);
            out.extend_from_slice(&self.order[self.next..self.next + k]);
            self.next += k;
        }
        out
    }
}

/// Trains `head` on `set`, calling `on_step` after each step; returns the trained head and the
/// per-step log. A non-finite loss stops training with an error.
pub fn train_head<B: AutodiffBackend>(
    head: ClassifierHead<B>,
    set: &TrainingSet,
    config: &TrainConfig,
    device: &B::Device,
    mut on_step: impl FnMut(&StepLog),
) -> Result<(ClassifierHead<B>, Vec<StepLog>)> {
    config.check(set)?;
    set.features.check_finite()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut dropout_rng = StdRng::seed_from_u64(config.seed ^ 0xD50F_D50F);
    let features: Tensor<B::InnerBackend, 2> = Tensor::from_data(
        TensorData::new(
            set.features.values().to_vec(),
            [set.features.rows(), set.features.dim()],
        ),
        device,
    );
    let rows = |indices: &[usize]| -> Tensor<B::InnerBackend, 2> {
        let ids: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<B::InnerBackend, 1, Int>::from_data(
            TensorData::new(ids, [indices.len()]),
            device,
        );
        features.clone().select(0, ids)
    };
    // The labelled pool: (row, label) of every text, plus every view with augmentation on.
    let mut pool: Vec<(usize, usize)> = set.labeled.iter().map(|e| (e.row, e.label)).collect();
    if config.augment {
        for e in &set.labeled {
            pool.extend(e.views.iter().map(|&v| (v, e.label)));
        }
    }
    let mut labeled_batches = Batches::new(pool.len());
    let mut unlabeled_batches = Batches::new(set.unlabeled.len());
    let unsupervised = config.consistency.is_some() || config.pseudo_labels.is_some();
    let c = set.num_classes;

    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init::<B, ClassifierHead<B>>();
    let mut head = head;
    let mut log = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let batch: Vec<(usize, usize)> = labeled_batches
            .take(config.batch_size.min(pool.len()), &mut rng)
            .into_iter()
            .map(|i| pool[i])
            .collect();
        let batch_rows: Vec<usize> = batch.iter().map(|b| b.0).collect();
        let targets: Vec<usize> = batch.iter().map(|b| b.1).collect();
        let logits = head.forward_train(Tensor::from_inner(rows(&batch_rows)), &mut dropout_rng);
        let supervised = cross_entropy(logits, &one_hot(&targets, c, device), None);
        let mut loss = supervised.clone();
        let mut record = StepLog {
            step: step + 1,
            loss: 0.0,
            supervised: scalar(&supervised),
            consistency: None,
            consistency_kept: None,
            pseudo_label: None,
            pseudo_labeled: None,
        };

        if unsupervised {
            let picked = unlabeled_batches.take(
                config.unlabeled_batch_size.min(set.unlabeled.len()),
                &mut rng,
            );
            let originals: Vec<usize> = picked.iter().map(|&i| set.unlabeled[i].row).collect();
            let n = originals.len();
            let x_u = rows(&originals);
            // The head's logits on the originals without dropout or gradient: the targets.
            let teacher: Vec<f32> = head
                .valid()
                .forward(x_u.clone())
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| ClassifyError::Invalid(format!("reading logits: {e:?}")))?;
            let ramp = config.ramp(step);
            if let Some(cc) = &config.consistency {
                let views: Vec<usize> = picked
                    .iter()
                    .map(|&i| {
                        let v = &set.unlabeled[i].views;
                        v[rng.random_range(0..v.len())]
                    })
                    .collect();
                let mut targets = Vec::with_capacity(n * c);
                let mut mask = Vec::with_capacity(n);
                let mut entropy = 0.0f64;
                for row in teacher.chunks(c) {
                    let confident = softmax(row, 1.0).into_iter().fold(0.0f64, f64::max);
                    let keep = confident >= cc.threshold;
                    let p = softmax(row, cc.temperature);
                    if keep {
                        entropy += p
                            .iter()
                            .filter(|&&q| q > 0.0)
                            .map(|&q| -q * q.ln())
                            .sum::<f64>();
                    }
                    mask.push(if keep { 1.0 } else { 0.0 });
                    targets.extend(p.into_iter().map(|q| q as f32));
                }
                let kept = mask.iter().sum::<f32>();
                let targets = Tensor::<B, 2>::from_data(TensorData::new(targets, [n, c]), device);
                let mask_t = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, 1]), device);
                let student =
                    head.forward_train(Tensor::from_inner(rows(&views)), &mut dropout_rng);
                // KL(p || q) = CE(p, q) - H(p); H(p) is a constant, subtracted for the report.
                let kl =
                    cross_entropy(student, &targets, Some(mask_t)).sub_scalar(entropy / n as f64);
                record.consistency = Some(scalar(&kl));
                record.consistency_kept = Some(kept as f64 / n as f64);
                loss = loss + kl.mul_scalar(cc.weight * ramp);
            }
            if let Some(pc) = &config.pseudo_labels {
                let mut labels = Vec::with_capacity(n);
                let mut mask = Vec::with_capacity(n);
                for row in teacher.chunks(c) {
                    let p = softmax(row, 1.0);
                    let (best, &conf) = p
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .expect("at least two classes");
                    labels.push(best);
                    mask.push(if conf >= pc.threshold { 1.0f32 } else { 0.0 });
                }
                let kept = mask.iter().sum::<f32>();
                let mask_t = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, 1]), device);
                let student = head.forward_train(Tensor::from_inner(x_u), &mut dropout_rng);
                let pseudo = cross_entropy(student, &one_hot(&labels, c, device), Some(mask_t));
                record.pseudo_label = Some(scalar(&pseudo));
                record.pseudo_labeled = Some(kept as f64 / n as f64);
                loss = loss + pseudo.mul_scalar(pc.weight * ramp);
            }
        }

        record.loss = scalar(&loss);
        if !record.loss.is_finite() {
            return Err(ClassifyError::Invalid(format!(
                "training diverged: loss {} at step {} (lower the learning rate)",
                record.loss,
                step + 1
            )));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optimizer.step(config.learning_rate, head, grads);
        on_step(&record);
        log.push(record);
    }
    Ok((head, log))
}

/// Class probabilities of each feature row, from `head` in eval mode.
///
/// # Shapes
/// - returns `rows` vectors of `num_classes`
pub fn predict_proba<B: Backend>(
    head: &ClassifierHead<B>,
    features: &Features,
) -> Result<Vec<Vec<f32>>> {
    features.check_finite()?;
    let device = head.classifier.weight.device();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(
            features.values().to_vec(),
            [features.rows(), features.dim()],
        ),
        &device,
    );
    let logits = head.forward(x);
    let c = logits.dims()[1];
    let values: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| ClassifyError::Invalid(format!("reading probabilities: {e:?}")))?;
    Ok(values.chunks(c).map(<[f32]>::to_vec).collect())
}

/// The most probable class of each row.
pub fn argmax(probabilities: &[Vec<f32>]) -> Vec<usize> {
    probabilities
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        })
        .collect()
}

/// `sum_rows(mask · -sum_c target·log_softmax(logits)) / rows`: the mean cross-entropy against
/// (soft or one-hot) targets, masked rows counting as 0 but still in the denominator.
///
/// # Shapes
/// - `logits`, `targets`: `[N, C]`; `mask`: `[N, 1]`; returns `[1]`
fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &Tensor<B, 2>,
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let per_row = (log_softmax(logits, 1) * targets.clone()).sum_dim(1).neg(); // [N, 1]
    let per_row = match mask {
        Some(mask) => per_row * mask,
        None => per_row,
    };
    per_row.mean().reshape([1])
}

/// One-hot rows `[N, C]`.
fn one_hot<B: Backend>(labels: &[usize], classes: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut values = vec![0.0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        values[i * classes + l] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [labels.len(), classes]), device)
}

/// `softmax(logits / temperature)` in f64.
fn softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn scalar<B: Backend>(t: &Tensor<B, 1>) -> f64 {
    t.clone().into_scalar().elem::<f64>()
}
