//! What `kiln explain` writes: one JSON report per text, and the runs that produce it.

use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use kiln_text::TextEncoder;
use serde::Serialize;

use crate::attention::{query_weights, received, text_attention};
use crate::error::{ExplainError, Result};
use crate::gradients::{gradient_x_input, integrated_gradients, IntegratedGradientsConfig};
use crate::heads::head_importance;
use crate::rollout::rollout;
use crate::target::Target;

/// An explanation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// One layer's attention map (one head, or the mean over heads).
    Attention,
    /// Attention rollout through all layers.
    Rollout,
    /// Gradient × input on the word vectors.
    GradInput,
    /// Integrated Gradients on the word vectors.
    IntegratedGradients,
}

impl Method {
    /// Every method, by its CLI name.
    pub const ALL: [(&'static str, Method); 4] = [
        ("attention", Method::Attention),
        ("rollout", Method::Rollout),
        ("grad-input", Method::GradInput),
        ("integrated-gradients", Method::IntegratedGradients),
    ];

    /// The method called `name` (`attention`, `rollout`, `grad-input`, `integrated-gradients`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, m)| *m == self).unwrap().0
    }

    /// Whether the method needs gradients (an autodiff backend).
    pub fn needs_gradients(self) -> bool {
        matches!(self, Self::GradInput | Self::IntegratedGradients)
    }
}

/// An explanation of one text. `tokens` and `token_scores` are always present; the rest
/// depends on the method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The method.
    pub method: Method,
    /// The text explained.
    pub text: String,
    /// The tokenizer's tokens, special tokens included.
    pub tokens: Vec<String>,
    /// One score per token. Attention and rollout: the attention (flow) each token receives,
    /// averaged over the positions the sentence vector pools (see
    /// [`crate::attention::query_weights`]); they sum to 1. Gradient methods: the signed
    /// attribution to the target.
    pub token_scores: Vec<f32>,
    /// The layer shown (attention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// The head shown (attention; absent = mean over heads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    /// The `S x S` map shown (attention): rows are queries, columns keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<Vec<Vec<f32>>>,
    /// Every head of every layer, `[layer][head][query][key]` (attention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_heads: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    /// The `S x S` rollout (rollout): row `i` is output position `i`'s flow from each token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Vec<Vec<f32>>>,
    /// What the gradient methods explain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// `f(x)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_value: Option<f32>,
    /// Integrated Gradients' settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrated_gradients: Option<IntegratedGradientsConfig>,
    /// `f(baseline)` (Integrated Gradients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f32>,
    /// Completeness gap `Σ token_scores - (f(x) - f(baseline))` (Integrated Gradients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f32>,
    /// Michel et al. head importance for the target on this text, `[layer][head]` (gradient
    /// methods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_importance: Option<Vec<Vec<f32>>>,
}

impl Report {
    fn new(method: Method, text: &str, tokens: Vec<String>, token_scores: Vec<f32>) -> Self {
        Self {
            method,
            text: text.to_string(),
            tokens,
            token_scores,
            layer: None,
            head: None,
            attention: None,
            attention_heads: None,
            rollout: None,
            target: None,
            target_value: None,
            integrated_gradients: None,
            baseline_value: None,
            delta: None,
            head_importance: None,
        }
    }

    /// The matrix a heatmap shows: the attention map or the rollout.
    pub fn matrix(&self) -> Option<&Vec<Vec<f32>>> {
        self.attention.as_ref().or(self.rollout.as_ref())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// Writes the JSON atomically (temporary file + rename).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        kiln::weights::write_atomic(path, self.to_json().as_bytes()).map_err(|e| {
            ExplainError::Write {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })
    }
}

/// Attention (one layer, one head or the mean of its heads; default: last layer, mean) or
/// rollout of `text`, on any backend.
pub fn explain_attention<B: Backend>(
    encoder: &TextEncoder<B>,
    text: &str,
    method: Method,
    layer: Option<usize>,
    head: Option<usize>,
) -> Result<Report> {
    let (tokens, maps) = text_attention(encoder, &[text])?.remove(0);
    let queries = query_weights(&encoder.pipeline.pooling.modes, maps.len, maps.seq);
    match method {
        Method::Attention => {
            let layer = layer.unwrap_or(maps.num_layers().saturating_sub(1));
            let matrix = maps.select(Some(layer), head)?;
            let mut report = Report::new(method, text, tokens.tokens, received(&matrix, &queries));
            report.layer = Some(layer);
            report.head = head;
            report.attention = Some(matrix.to_rows());
            report.attention_heads = Some(maps.to_nested());
            Ok(report)
        }
        Method::Rollout => {
            if layer.is_some() || head.is_some() {
                return Err(ExplainError::Invalid(
                    "rollout runs through every layer and head: drop --layer/--head".into(),
                ));
            }
            let flow = rollout(&maps);
            let mut report = Report::new(method, text, tokens.tokens, received(&flow, &queries));
            report.rollout = Some(flow.to_rows());
            Ok(report)
        }
        _ => Err(ExplainError::Invalid(format!(
            "{} is a gradient method: use explain_gradients",
            method.name()
        ))),
    }
}

/// Gradient × input or Integrated Gradients of `target` for `text`, with the target's head
/// importance on this text; needs an autodiff backend.
pub fn explain_gradients<B: AutodiffBackend>(
    encoder: &TextEncoder<B>,
    text: &str,
    method: Method,
    target: &Target,
    config: &IntegratedGradientsConfig,
    progress: impl FnMut(usize),
) -> Result<Report> {
    let attribution = match method {
        Method::GradInput => gradient_x_input(encoder, text, target)?,
        Method::IntegratedGradients => {
            integrated_gradients(encoder, text, target, config, progress)?
        }
        _ => {
            return Err(ExplainError::Invalid(format!(
                "{} is not a gradient method: use explain_attention",
                method.name()
            )))
        }
    };
    let mut report = Report::new(method, text, attribution.tokens, attribution.token_scores);
    report.target = Some(target.clone());
    report.target_value = Some(attribution.target_value);
    if method == Method::IntegratedGradients {
        report.integrated_gradients = Some(*config);
        report.baseline_value = attribution.baseline_value;
        report.delta = attribution.delta;
    }
    report.head_importance = Some(head_importance(encoder, &[text], target)?.heads);
    Ok(report)
}
