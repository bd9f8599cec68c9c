//! [`AppState`]: what every request handler shares — the limits, the model's description, its
//! tokenizer, the batcher in front of the model, the metrics and the in-flight count.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use kiln_text::{SentencePipeline, TextEncoder, TokenizedText};

use crate::batcher::{Batcher, WarmUp};
use crate::config::ServeConfig;
use crate::embedder::{Embedder, TextEmbedder};
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::model_info::ModelInfo;

/// The text embedded by the warm-up pass.
const WARM_UP_TEXT: &str = "kiln warm-up: the first forward pass initialises the backend.";

/// Shared state of one server. Cloning it is cheap (one `Arc`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The limits.
    pub config: ServeConfig,
    /// The served model.
    pub model: ModelInfo,
    /// The model's tokenizing half (truncating to `config.max_input_length`), used on the
    /// request side so that the model thread only runs forward passes.
    pub pipeline: SentencePipeline,
    /// The way to the model.
    pub batcher: Batcher,
    /// The server's metrics.
    pub metrics: Metrics,
    /// Requests admitted and not yet answered.
    pub in_flight: AtomicUsize,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Serves `encoder`, running on the backend named `backend`: truncates inputs to
    /// `config.max_input_length` (which must not exceed the model's position embeddings) and
    /// starts the model thread. Wait for the returned [`WarmUp`] before announcing the server.
    pub fn from_encoder<B: Backend>(
        mut encoder: TextEncoder<B>,
        backend: &str,
        config: ServeConfig,
    ) -> Result<(Self, WarmUp), ServeError> {
        config.validate().map_err(ServeError::Config)?;
        encoder
            .set_max_seq_length(config.max_input_length)
            .map_err(|e| ServeError::Config(format!("max_input_length: {e}")))?;
        let model = ModelInfo::of(&encoder, backend);
        let pipeline = encoder.pipeline.clone();
        Self::start(TextEmbedder::new(encoder), pipeline, model, config)
    }

    /// Serves any [`Embedder`], tokenizing with `pipeline`, whose truncation is set to
    /// `config.max_input_length` (the caller makes sure the model reads that many tokens).
    pub fn start<E: Embedder>(
        embedder: E,
        mut pipeline: SentencePipeline,
        model: ModelInfo,
        config: ServeConfig,
    ) -> Result<(Self, WarmUp), ServeError> {
        config.validate().map_err(ServeError::Config)?;
        pipeline
            .tokenizer
            .set_max_seq_length(config.max_input_length)
            .map_err(|e| ServeError::Config(format!("max_input_length: {e}")))?;
        let warm_up = pipeline
            .tokenize(&[WARM_UP_TEXT])
            .map_err(|e| ServeError::WarmUp(e.to_string()))?
            .remove(0);
        let metrics = Metrics::new();
        let (batcher, warm) = Batcher::spawn(
            embedder,
            warm_up,
            config.max_batch_tokens,
            config.max_concurrent_requests,
            metrics.clone(),
        )?;
        let shared = Shared {
            config,
            model,
            pipeline,
            batcher,
            metrics,
            in_flight: AtomicUsize::new(0),
        };
        Ok((Self(Arc::new(shared)), warm))
    }

    /// Raw (unnormalized) sentence vectors of already prepared inputs, in their order.
    pub async fn embed(&self, texts: Vec<TokenizedText>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.batcher.embed(texts).await
    }
}
