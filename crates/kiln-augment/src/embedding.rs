//! Embedding-level augmentation for training: Gaussian noise and mixup (Zhang et al. 2018).

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use rand::Rng;
use rand_distr::{Beta, Distribution as _};

use crate::error::{AugmentError, Result};

/// `x + N(0, std²)`, element-wise (burn's generator: seed it with `B::seed`).
pub fn gaussian_noise<B: Backend, const D: usize>(x: Tensor<B, D>, std: f64) -> Tensor<B, D> {
    if std == 0.0 {
        return x;
    }
    let noise = Tensor::random(x.shape(), Distribution::Normal(0.0, std), &x.device());
    x + noise
}

/// Mixup's weight `λ ~ Beta(alpha, alpha)`.
pub fn mixup_lambda(alpha: f64, rng: &mut impl Rng) -> Result<f64> {
    let beta = Beta::new(alpha, alpha)
        .map_err(|e| AugmentError::Invalid(format!("mixup alpha {alpha}: {e}")))?;
    Ok(beta.sample(rng))
}

/// `λ a + (1 - λ) b`, for inputs (embeddings) and their targets (one-hot or probabilities) alike.
pub fn mixup<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    lambda: f64,
) -> Tensor<B, D> {
    a * lambda + b * (1.0 - lambda)
}
