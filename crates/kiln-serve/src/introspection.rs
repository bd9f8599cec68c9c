//! What the server says about itself: `GET /info`, `GET /health`, `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::model_info::ModelInfo;
use crate::state::AppState;

/// `GET /info`'s answer.
#[derive(Debug, Serialize)]
pub struct Info<'a> {
    /// kiln's version.
    pub version: &'static str,
    /// The served model.
    #[serde(flatten)]
    pub model: &'a ModelInfo,
    /// Tokens of one input, special tokens included, before truncation (or a 413).
    pub max_input_length: usize,
    /// The server's limits.
    pub limits: &'a ServeConfig,
    /// Whether requests need an API key.
    pub auth: bool,
}

/// `GET /info`: the model (id, path, dimension, backend, precision) and the limits.
pub async fn info(State(state): State<AppState>) -> Response {
    Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        model: &state.model,
        max_input_length: state.config.max_input_length,
        limits: &state.config,
        auth: state.config.api_key.is_some(),
    })
    .into_response()
}

/// `GET /health`: 200 once the model has answered its warm-up pass and while its thread
/// runs; 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    if state.batcher.is_ready() {
        Json(serde_json::json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("the model is not ready").into_response()
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("rendering metrics: {e}")).into_response(),
    }
}
