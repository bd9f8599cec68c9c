//! `POST /v1/embeddings`: OpenAI's embeddings API.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::embedder::normalize_in_place;
use crate::error::ApiError;
use crate::inputs::{from_ids, tokenize, EmbeddingInput};
use crate::json_body::JsonBody;
use crate::state::AppState;

/// The request: `input` (a text, texts, token ids or lists of them), `model` (echoed),
/// `encoding_format` and `dimensions`. Other fields (`user`) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// What to embed.
    pub input: EmbeddingInput,
    /// Echoed in the answer (the served model's id when absent); it does not pick a model.
    pub model: Option<String>,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Keep only the first `dimensions` components, re-normalized (Matryoshka truncation);
    /// between 1 and the model's dimension.
    pub dimensions: Option<usize>,
}

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON list of numbers.
    #[default]
    Float,
    /// Base64 of the vector's little-endian f32 bytes, as OpenAI writes it.
    Base64,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    /// One entry per input, in input order.
    pub data: Vec<EmbeddingData>,
    /// The request's `model`, or the served model's id.
    pub model: String,
    /// Tokens read (special tokens included, after truncation).
    pub usage: Usage,
}

/// One input's vector.
#[derive(Debug, Serialize)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: &'static str,
    /// The vector, as the request's `encoding_format` says.
    pub embedding: EmbeddingValue,
    /// Position of the input in the request.
    pub index: usize,
}

/// A vector as numbers or as base64.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingValue {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

/// Token counts of a request.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// The same as `prompt_tokens` (nothing is generated).
    pub total_tokens: usize,
}

/// Texts are truncated to `max_input_length`; token-id lists must fit (413). Vectors are
/// normalized when the model normalizes (all-MiniLM-L6-v2 does), also after `dimensions`.
pub async fn embeddings(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let dim = state.model.dim;
    if let Some(d) = request.dimensions {
        if d == 0 || d > dim {
            return Err(ApiError::validation(format!(
                "dimensions must be between 1 and {dim}, got {d}"
            )));
        }
    }
    let tokenized = match request.input {
        EmbeddingInput::Text(text) => tokenize(&state, vec![text], true).await?,
        EmbeddingInput::Texts(texts) => tokenize(&state, texts, true).await?,
        EmbeddingInput::Ids(ids) => from_ids(&state, vec![ids])?,
        EmbeddingInput::IdLists(lists) => from_ids(&state, lists)?,
    };
    let tokens: usize = tokenized.iter().map(|t| t.len()).sum();
    let rows = state.embed(tokenized).await?;
    let data = rows
        .into_iter()
        .enumerate()
        .map(|(index, mut vector)| {
            vector.truncate(request.dimensions.unwrap_or(dim));
            if state.model.normalize {
                normalize_in_place(&mut vector);
            }
            let embedding = match request.encoding_format {
                EncodingFormat::Float => EmbeddingValue::Float(vector),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingValue::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            EmbeddingData {
                object: "embedding",
                embedding,
                index,
            }
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: request
            .model
            .unwrap_or_else(|| state.model.model_id.clone()),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}
