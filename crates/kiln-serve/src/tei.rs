//! text-embeddings-inference's routes: `POST /embed`, `POST /similarity`, `POST /tokenize`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::embedder::normalize_in_place;
use crate::error::ApiError;
use crate::inputs::{check_batch_size, tokenize, TextInputs};
use crate::json_body::JsonBody;
use crate::state::AppState;

fn yes() -> bool {
    true
}

/// `POST /embed`'s request.
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    /// A text or a list of texts.
    pub inputs: TextInputs,
    /// Scale vectors to unit length (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut texts longer than `max_input_length` (default true); when false they are refused
    /// with 413.
    #[serde(default = "yes")]
    pub truncate: bool,
}

/// `POST /embed`: one vector per input, `[[f32, ...], ...]`.
pub async fn embed(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let tokenized = tokenize(&state, request.inputs.into_vec(), request.truncate).await?;
    let mut rows = state.embed(tokenized).await?;
    if request.normalize {
        rows.iter_mut().for_each(|row| normalize_in_place(row));
    }
    Ok(Json(rows))
}

/// `POST /similarity`'s request.
#[derive(Debug, Deserialize)]
pub struct SimilarityRequest {
    /// The sentence and the sentences to compare it with.
    pub inputs: SimilarityInputs,
    /// As in `/embed`.
    #[serde(default = "yes")]
    pub truncate: bool,
}

/// What `/similarity` compares.
#[derive(Debug, Deserialize)]
pub struct SimilarityInputs {
    /// The sentence every other is compared with.
    pub source_sentence: String,
    /// The sentences (at least one).
    pub sentences: Vec<String>,
}

/// `POST /similarity`: the cosine of `source_sentence` with each of `sentences`, in order.
/// The source counts towards `max_client_batch_size`.
pub async fn similarity(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SimilarityRequest>,
) -> Result<Json<Vec<f32>>, ApiError> {
    let SimilarityInputs {
        source_sentence,
        sentences,
    } = request.inputs;
    if sentences.is_empty() {
        return Err(ApiError::validation(
            "sentences is empty: give at least one sentence to compare with",
        ));
    }
    let mut texts = Vec::with_capacity(sentences.len() + 1);
    texts.push(source_sentence);
    texts.extend(sentences);
    let tokenized = tokenize(&state, texts, request.truncate).await?;
    let rows = state.embed(tokenized).await?;
    let (source, others) = rows.split_first().ok_or_else(|| {
        ApiError::internal("the model returned no vectors for a non-empty request")
    })?;
    Ok(Json(
        others
            .iter()
            .map(|o| kiln_text::cosine(source, o))
            .collect(),
    ))
}

/// `POST /tokenize`'s request.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    /// A text or a list of texts.
    pub inputs: TextInputs,
    /// Only `true` (the default) is supported: the model always reads its special tokens.
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
}

/// One token as `/tokenize` returns it.
#[derive(Debug, Serialize)]
pub struct Token {
    /// The token id.
    pub id: u32,
    /// The piece of the input it covers, or the special token itself (`[CLS]`).
    pub text: String,
    /// Whether the tokenizer added it (`[CLS]`, `[SEP]`).
    pub special: bool,
    /// Byte offset of its start in the input (0 for special tokens).
    pub start: usize,
    /// Byte offset of its end in the input (0 for special tokens).
    pub stop: usize,
}

/// `POST /tokenize`: per input, its tokens as the model reads them (truncated to
/// `max_input_length`), always a list of lists.
pub async fn tokenize_route(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TokenizeRequest>,
) -> Result<Json<Vec<Vec<Token>>>, ApiError> {
    if !request.add_special_tokens {
        return Err(ApiError::validation(
            "add_special_tokens: false is not supported: the model always reads its special tokens",
        ));
    }
    let texts = request.inputs.into_vec();
    check_batch_size(&state, texts.len())?;
    let tokenized = tokenize(&state, texts.clone(), true).await?;
    let lowercase = state.pipeline.lowercase;
    let answer: Vec<Vec<Token>> = texts
        .iter()
        .zip(tokenized)
        .map(|(text, tokens)| {
            // Offsets index the text as tokenized (lowercased when the model lowercases).
            let seen = if lowercase {
                text.to_lowercase()
            } else {
                text.clone()
            };
            (0..tokens.len())
                .map(|i| {
                    let special = tokens.special.get(i).copied().unwrap_or(false);
                    let (start, stop) = tokens.offsets.get(i).copied().unwrap_or((0, 0));
                    let piece = if special { None } else { seen.get(start..stop) };
                    Token {
                        id: tokens.ids[i],
                        text: piece
                            .map(str::to_string)
                            .or_else(|| tokens.tokens.get(i).cloned())
                            .unwrap_or_default(),
                        special,
                        start: if special { 0 } else { start },
                        stop: if special { 0 } else { stop },
                    }
                })
                .collect()
        })
        .collect();
    Ok(Json(answer))
}
