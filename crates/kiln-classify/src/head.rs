//! The classification head: features `[N, D]` -> logits `[N, C]`.
//!
//! Linear (logistic regression on the features) by default; with a hidden width, the shape of
//! Hugging Face's sequence-classification heads: dropout, `dense`, tanh, dropout, `classifier`.
//! Weights are saved with PyTorch `nn.Linear` names and layouts (`dense.weight [H, D]`,
//! `classifier.weight [C, H or D]`, biases).
//!
//! Initialisation and dropout draw from a seeded host generator, not the backend's global one,
//! so a training run is the same under a seed whatever else runs in the process.

use burn::config::Config;
use burn::module::Module;
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use kiln::weights::{linear_slots, load_slots, read_slots, TensorFile, WeightSlot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{ClassifyError, Result};

/// A [`ClassifierHead`]'s shape.
#[derive(Config, Debug)]
pub struct ClassifierHeadConfig {
    /// Feature width (the encoder's embedding size).
    pub input_dim: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Hidden width; 0 for a linear head.
    #[config(default = 0)]
    pub hidden: usize,
    /// Dropout on the features (and the hidden layer) while training.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl ClassifierHeadConfig {
    /// Fails on a zero width, fewer than two classes or a dropout outside [0, 1).
    pub fn check(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(ClassifyError::Invalid(
                "input_dim must be at least 1".into(),
            ));
        }
        if self.num_classes < 2 {
            return Err(ClassifyError::Invalid(format!(
                "num_classes {} must be at least 2",
                self.num_classes
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ClassifyError::Invalid(format!(
                "dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }

    /// A freshly initialised head: PyTorch's `nn.Linear` default, weights and biases uniform in
    /// `±1/sqrt(fan_in)`, drawn from a generator seeded with `seed`.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Result<ClassifierHead<B>> {
        self.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let (dense, classifier_in) = if self.hidden > 0 {
            (
                Some(uniform_linear(
                    self.input_dim,
                    self.hidden,
                    &mut rng,
                    device,
                )),
                self.hidden,
            )
        } else {
            (None, self.input_dim)
        };
        Ok(ClassifierHead {
            dense,
            classifier: uniform_linear(classifier_in, self.num_classes, &mut rng, device),
            dropout: self.dropout,
        })
    }
}

/// burn `Linear` (`[in, out]` weight) with PyTorch's default initialisation.
fn uniform_linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    rng: &mut StdRng,
    device: &B::Device,
) -> Linear<B> {
    let bound = 1.0 / (d_in as f32).sqrt();
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
    let weight = Tensor::from_data(TensorData::new(draw(d_in * d_out), [d_in, d_out]), device);
    let bias = Tensor::from_data(TensorData::new(draw(d_out), [d_out]), device);
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// Features to class logits.
#[derive(Module, Debug)]
pub struct ClassifierHead<B: Backend> {
    /// The hidden layer (`dense`), if any.
    pub dense: Option<Linear<B>>,
    /// The output layer (`classifier`).
    pub classifier: Linear<B>,
    /// Dropout probability of [`Self::forward_train`].
    pub dropout: f64,
}

impl<B: Backend> ClassifierHead<B> {
    /// Class logits (inference: no dropout).
    ///
    /// # Shapes
    /// - `features`: `[N, D]`
    /// - returns `[N, C]`
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut x = features;
        if let Some(dense) = &self.dense {
            x = dense.forward(x).tanh();
        }
        self.classifier.forward(x)
    }

    /// Class logits with dropout on the features (and the hidden layer), masks drawn from `rng`
    /// (inverted dropout: kept values scaled by `1 / (1 - p)`).
    ///
    /// # Shapes
    /// - `features`: `[N, D]`
    /// - returns `[N, C]`
    pub fn forward_train(&self, features: Tensor<B, 2>, rng: &mut StdRng) -> Tensor<B, 2> {
        let mut x = dropout(features, self.dropout, rng);
        if let Some(dense) = &self.dense {
            x = dropout(dense.forward(x).tanh(), self.dropout, rng);
        }
        self.classifier.forward(x)
    }

    /// The weights under PyTorch names (`dense.*`, `classifier.*`).
    pub fn weight_slots(&mut self) -> Vec<WeightSlot<'_, B>> {
        let mut slots = Vec::new();
        if let Some(dense) = self.dense.as_mut() {
            slots.extend(linear_slots("dense", dense));
        }
        slots.extend(linear_slots("classifier", &mut self.classifier));
        slots
    }

    /// The weights as a safetensors-ready tensor file.
    pub fn state_dict(mut self) -> TensorFile {
        read_slots(self.weight_slots())
    }

    /// A head of `config`'s shape with the weights of `file`; a missing, unused or mis-shaped
    /// tensor is an error that names the key.
    pub fn from_state_dict(
        config: &ClassifierHeadConfig,
        file: &TensorFile,
        device: &B::Device,
    ) -> Result<Self> {
        let mut head = config.init(0, device)?;
        load_slots(head.weight_slots(), file, device).into_result()?;
        Ok(head)
    }
}

/// Inverted dropout with a mask from `rng`.
///
/// # Shapes
/// - `x`: `[N, D]` -> `[N, D]`
fn dropout<B: Backend>(x: Tensor<B, 2>, p: f64, rng: &mut StdRng) -> Tensor<B, 2> {
    if p <= 0.0 {
        return x;
    }
    let [n, d] = x.dims();
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..n * d)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_data(TensorData::new(mask, [n, d]), &x.device());
    x * mask
}
