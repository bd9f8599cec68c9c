//! [`ModelInfo`]: what the server tells about the model it serves (`GET /info`) and what the
//! routes need to know of it without touching the model itself.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use kiln_text::TextEncoder;
use serde::Serialize;

/// The served model, as `GET /info` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The model's name: its directory's name (what `model` defaults to in OpenAI answers).
    pub model_id: String,
    /// The directory it was loaded from.
    pub model_path: PathBuf,
    /// Length of a sentence vector.
    pub dim: usize,
    /// Whether the model's own pipeline scales sentence vectors to unit length (its
    /// `modules.json` has a Normalize module).
    pub normalize: bool,
    /// Ids must be below this (`/v1/embeddings` accepts token ids).
    pub vocab_size: usize,
    /// The burn backend (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// The precision of the Linear layers (`f32`, `int8`, `bf16`).
    pub precision: String,
}

impl ModelInfo {
    /// What `encoder`, running on `backend`, is.
    pub fn of<B: Backend>(encoder: &TextEncoder<B>, backend: &str) -> Self {
        let dir = encoder.source_dir().to_path_buf();
        let model_id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self {
            model_id,
            model_path: dir,
            dim: encoder.dim(),
            normalize: encoder.pipeline.normalize,
            vocab_size: encoder.pipeline.vocabulary.vocab_size,
            backend: backend.to_string(),
            precision: encoder.precision().name().to_string(),
        }
    }
}
