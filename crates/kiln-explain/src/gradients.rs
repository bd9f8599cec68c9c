//! Gradient attributions on a text model's input word vectors, through burn autodiff:
//! gradient × input, and Integrated Gradients (Sundararajan et al. 2017, "Axiomatic Attribution
//! for Deep Networks").

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use kiln::HostTensor;
use kiln_text::{BatchTensors, BertModel, TextEncoder, TokenizedText};
use serde::Serialize;

use crate::error::{ExplainError, Result};
use crate::target::Target;

/// The reference input Integrated Gradients integrates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// Every token but the special ones (`[CLS]`, `[SEP]`) replaced by `[PAD]` (as Captum's BERT
    /// tutorials do); same length, so positions and the attention mask are unchanged.
    Pad,
    /// All-zero word vectors.
    Zero,
}

impl Baseline {
    /// `pad` or `zero`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pad" => Some(Self::Pad),
            "zero" => Some(Self::Zero),
            _ => None,
        }
    }
}

/// Integrated Gradients settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IntegratedGradientsConfig {
    /// Points on the path from the baseline to the input (midpoint Riemann sum).
    pub steps: usize,
    /// Where the path starts.
    pub baseline: Baseline,
    /// Path points per forward/backward pass.
    pub batch_size: usize,
}

impl Default for IntegratedGradientsConfig {
    fn default() -> Self {
        Self {
            steps: 64,
            baseline: Baseline::Pad,
            batch_size: 16,
        }
    }
}

/// Per-token attributions of one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    /// The tokenizer's tokens, special tokens included.
    pub tokens: Vec<String>,
    /// Per token: the attribution summed over the word vector's dimensions (signed).
    pub token_scores: Vec<f32>,
    /// `f(x)`, the target at the input.
    pub target_value: f32,
    /// `f(baseline)` (Integrated Gradients only).
    pub baseline_value: Option<f32>,
    /// Completeness gap `Σ attributions - (f(x) - f(baseline))` (Integrated Gradients only).
    pub delta: Option<f32>,
}

/// The model used for attributions: dropout off (a fixed function under autodiff), and no
/// parameter gradients (only the input's are needed).
fn frozen<B: AutodiffBackend>(encoder: &TextEncoder<B>) -> BertModel<B> {
    encoder.model.clone().without_dropout().no_grad()
}

/// The sentence vector (pooled, not normalised) computed from given word vectors.
///
/// # Shapes
/// - `word_vectors`: `[B, S, E]` -> `[B, D]`
pub fn pooled_from_word_vectors<B: Backend>(
    encoder: &TextEncoder<B>,
    model: &BertModel<B>,
    word_vectors: Tensor<B, 3>,
    batch: &BatchTensors<B>,
) -> Result<Tensor<B, 2>> {
    let hidden = model
        .embeddings
        .forward_word_vectors(word_vectors, batch.token_type_ids.clone());
    let out = model.encode(hidden, &batch.lengths, |input| input)?;
    Ok(encoder
        .pipeline
        .pooling
        .pool(out.output, batch.padding.clone()))
}

fn tokenize_one<B: Backend>(encoder: &TextEncoder<B>, text: &str) -> Result<TokenizedText> {
    Ok(encoder.tokenize(&[text])?.remove(0))
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    HostTensor::from_tensor(t).data[0]
}

/// `[1, S, E] -> [S]`: summed over the embedding dimension.
fn per_token<B: Backend>(attribution: Tensor<B, 3>) -> Vec<f32> {
    let [_, seq, _] = attribution.dims();
    HostTensor::from_tensor(attribution.sum_dim(2).reshape([seq])).data
}

/// Gradient × input: `x ⊙ ∂f/∂x` on the word vectors `x`, summed per token.
pub fn gradient_x_input<B: AutodiffBackend>(
    encoder: &TextEncoder<B>,
    text: &str,
    target: &Target,
) -> Result<Attribution> {
    let model = frozen(encoder);
    let tokens = tokenize_one(encoder, text)?;
    let batch = encoder.batch_tensors(std::slice::from_ref(&tokens));
    let x = model
        .embeddings
        .word_vectors(batch.input_ids.clone())
        .detach()
        .require_grad();
    let f = target.value(
        pooled_from_word_vectors(encoder, &model, x.clone(), &batch)?,
        encoder.pipeline.normalize,
    )?;
    let target_value = scalar(f.clone().inner());
    let grads = f.sum().backward();
    let gradient = x.grad(&grads).ok_or_else(no_gradient)?;
    Ok(Attribution {
        tokens: tokens.tokens,
        token_scores: per_token(x.inner() * gradient),
        target_value,
        baseline_value: None,
        delta: None,
    })
}

fn no_gradient() -> ExplainError {
    ExplainError::Invalid("no gradient reached the input word vectors".into())
}

/// The baseline's word vectors for `batch` (one text).
fn baseline_vectors<B: Backend>(
    encoder: &TextEncoder<B>,
    model: &BertModel<B>,
    tokens: &TokenizedText,
    baseline: Baseline,
    x: &Tensor<B, 3>,
) -> Tensor<B, 3> {
    match baseline {
        Baseline::Zero => x.zeros_like(),
        Baseline::Pad => {
            let pad = encoder.config.pad_token_id as i64;
            let ids: Vec<i64> = tokens
                .ids
                .iter()
                .zip(&tokens.tokens)
                .map(|(&id, token)| if is_special(token) { id as i64 } else { pad })
                .collect();
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [1, tokens.len()]),
                &x.device(),
            );
            model.embeddings.word_vectors(ids)
        }
    }
}

/// `[CLS]`, `[SEP]` (BERT) and `<s>`, `</s>` (RoBERTa): kept in the `[PAD]` baseline.
fn is_special(token: &str) -> bool {
    matches!(token, "[CLS]" | "[SEP]" | "<s>" | "</s>")
}

/// Integrated Gradients on the word vectors: `(x - x') ⊙ (1/m) Σ_k ∂f/∂x (x' + α_k (x - x'))`
/// with `α_k = (k + 1/2) / m` (midpoint rule), summed per token. By completeness the token
/// scores add up to `f(x) - f(x')`; `delta` reports the gap, which shrinks as `steps` grows.
pub fn integrated_gradients<B: AutodiffBackend>(
    encoder: &TextEncoder<B>,
    text: &str,
    target: &Target,
    config: &IntegratedGradientsConfig,
    mut progress: impl FnMut(usize),
) -> Result<Attribution> {
    if config.steps == 0 {
        return Err(ExplainError::Invalid(
            "integrated gradients needs at least 1 step".into(),
        ));
    }
    let model = frozen(encoder);
    let tokens = tokenize_one(encoder, text)?;
    let one = encoder.batch_tensors(std::slice::from_ref(&tokens));
    let x = model
        .embeddings
        .word_vectors(one.input_ids.clone())
        .detach();
    let base = baseline_vectors(encoder, &model, &tokens, config.baseline, &x).detach();
    let value_at = |v: Tensor<B, 3>| -> Result<f32> {
        let pooled = pooled_from_word_vectors(encoder, &model, v, &one)?;
        Ok(scalar(
            target.value(pooled, encoder.pipeline.normalize)?.inner(),
        ))
    };
    let target_value = value_at(x.clone())?;
    let baseline_value = value_at(base.clone())?;

    let [_, seq, dim] = x.dims();
    let device = x.device();
    let diff = x.clone() - base.clone(); // [1, S, E]
    let mut gradient_sum: Tensor<B::InnerBackend, 3> = Tensor::zeros([1, seq, dim], &device);
    let chunk = config.batch_size.max(1);
    let mut k = 0;
    while k < config.steps {
        let n = chunk.min(config.steps - k);
        let alphas: Vec<f32> = (k..k + n)
            .map(|i| (i as f32 + 0.5) / config.steps as f32)
            .collect();
        // [n, 1, 1] alphas -> [n, S, E] points on the path.
        let alphas = Tensor::<B, 3>::from_data(TensorData::new(alphas, [n, 1, 1]), &device);
        let points = (base.clone().expand([n, seq, dim])
            + alphas * diff.clone().expand([n, seq, dim]))
        .detach()
        .require_grad();
        let batch = encoder.batch_tensors(&vec![tokens.clone(); n]);
        let f = target.value(
            pooled_from_word_vectors(encoder, &model, points.clone(), &batch)?,
            encoder.pipeline.normalize,
        )?;
        let grads = f.sum().backward();
        let gradient = points.grad(&grads).ok_or_else(no_gradient)?; // [n, S, E]
        gradient_sum = gradient_sum + gradient.sum_dim(0);
        k += n;
        progress(n);
    }
    let attribution = diff.inner() * gradient_sum / config.steps as f32;
    let token_scores = per_token(attribution);
    let total: f32 = token_scores.iter().sum();
    Ok(Attribution {
        tokens: tokens.tokens,
        token_scores,
        target_value,
        baseline_value: Some(baseline_value),
        delta: Some(total - (target_value - baseline_value)),
    })
}
