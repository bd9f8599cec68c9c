//! [`ServeConfig`]: the limits a server enforces on its clients and its batches.

use serde::Serialize;

/// Request body limit unless told otherwise: room for a full client batch of long texts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The limits of one server. Every one of them turns a request that exceeds it into a 4xx
/// answer (or a 429 for `max_concurrent_requests`), never into unbounded work or memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeConfig {
    /// Most padded tokens (texts x longest text) in one forward pass. A client batch larger than
    /// this is split across passes; one text always fits, since texts are at most
    /// `max_input_length` tokens and this is at least that.
    pub max_batch_tokens: usize,
    /// Most inputs in one request (413 above it).
    pub max_client_batch_size: usize,
    /// Most requests being answered at once; more are refused with 429 and `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Most tokens of one input, special tokens included. Longer texts are truncated, or
    /// refused with 413 when the request says `truncate: false`.
    pub max_input_length: usize,
    /// Largest request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// When set, every route but `/health` needs `Authorization: Bearer <key>`.
    #[serde(skip)]
    pub api_key: Option<String>,
}

impl ServeConfig {
    /// Defaults for a model that reads up to `max_input_length` tokens.
    pub fn new(max_input_length: usize) -> Self {
        Self {
            max_batch_tokens: 16_384,
            max_client_batch_size: 64,
            max_concurrent_requests: 512,
            max_input_length,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            api_key: None,
        }
    }

    /// Checks that every limit is usable: all at least 1, a batch holds at least one input of
    /// the longest allowed length, and an API key is not empty.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_batch_tokens", self.max_batch_tokens),
            ("max_client_batch_size", self.max_client_batch_size),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_input_length", self.max_input_length),
            ("max_body_bytes", self.max_body_bytes),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.max_input_length < 2 {
            return Err(format!(
                "max_input_length must be at least 2 (room for the special tokens), got {}",
                self.max_input_length
            ));
        }
        if self.max_batch_tokens < self.max_input_length {
            return Err(format!(
                "max_batch_tokens ({}) must be at least max_input_length ({}): one input must fit in a batch",
                self.max_batch_tokens, self.max_input_length
            ));
        }
        if self.api_key.as_deref().is_some_and(str::is_empty) {
            return Err("the API key must not be empty".into());
        }
        Ok(())
    }
}
