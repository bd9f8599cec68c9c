//! From request inputs to what the model reads: the accepted input shapes, the batch-size
//! check, tokenizing (off the async runtime), the truncation policy and token-id checks.
//!
//! Empty inputs: a request with no inputs (an empty list) is refused (422), since there is
//! nothing to answer. An empty string is a valid text: the model reads its special tokens
//! alone (`[CLS] [SEP]`), exactly as `TextEncoder::embed("")` does. An empty list of token
//! ids is refused (422): it gives the model no token at all.

use kiln_text::TokenizedText;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// One text or a list of texts (text-embeddings-inference's `inputs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TextInputs {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

impl TextInputs {
    /// The texts as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text],
            Self::Many(texts) => texts,
        }
    }
}

/// OpenAI's `input`: a text, a list of texts, one list of token ids, or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One input as token ids.
    Ids(Vec<u32>),
    /// Several inputs as token ids.
    IdLists(Vec<Vec<u32>>),
}

/// Refuses an empty request (422) and one over `max_client_batch_size` inputs (413).
pub fn check_batch_size(state: &AppState, count: usize) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::validation("no inputs: give at least one"));
    }
    let limit = state.config.max_client_batch_size;
    if count > limit {
        return Err(ApiError::too_large(format!(
            "{count} inputs in one request; the limit is {limit} (max_client_batch_size)"
        )));
    }
    Ok(())
}

/// Tokenizes `texts` as the model reads them, truncated to `max_input_length` tokens; with
/// `truncate` false, a text longer than that is refused (413). Runs on a blocking thread:
/// tokenizing a large request is CPU work the async runtime must not wait for.
pub async fn tokenize(
    state: &AppState,
    texts: Vec<String>,
    truncate: bool,
) -> Result<Vec<TokenizedText>, ApiError> {
    check_batch_size(state, texts.len())?;
    let task_state = state.clone();
    let tokenized = tokio::task::spawn_blocking(move || task_state.pipeline.tokenize(&texts))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizer task failed: {e}")))?
        .map_err(|e| ApiError::validation(format!("cannot tokenize the input: {e}")))?;
    if !truncate {
        if let Some(index) = tokenized.iter().position(|t| t.truncated) {
            return Err(ApiError::too_large(format!(
                "input {index} is longer than {} tokens (max_input_length) and truncate is false",
                state.config.max_input_length
            )));
        }
    }
    Ok(tokenized)
}

/// Token-id inputs as the model reads them: the ids are used as given (special tokens
/// included: what `/tokenize` returns), all in segment 0. Each list must be non-empty (422),
/// hold only ids of the vocabulary (422), and be at most `max_input_length` long (413: ids
/// are never cut, since where the special tokens are is the client's business).
pub fn from_ids(state: &AppState, lists: Vec<Vec<u32>>) -> Result<Vec<TokenizedText>, ApiError> {
    check_batch_size(state, lists.len())?;
    let vocab = state.model.vocab_size;
    let limit = state.config.max_input_length;
    lists
        .into_iter()
        .enumerate()
        .map(|(index, ids)| {
            if ids.is_empty() {
                return Err(ApiError::validation(format!(
                    "input {index} is an empty list of token ids"
                )));
            }
            if ids.len() > limit {
                return Err(ApiError::too_large(format!(
                    "input {index} has {} token ids; the limit is {limit} (max_input_length)",
                    ids.len()
                )));
            }
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::validation(format!(
                    "input {index}: token id {id} is outside the vocabulary (size {vocab})"
                )));
            }
            let n = ids.len();
            Ok(TokenizedText {
                type_ids: vec![0; n],
                tokens: Vec::new(),
                offsets: vec![(0, 0); n],
                special: vec![false; n],
                truncated: false,
                ids,
            })
        })
        .collect()
}
