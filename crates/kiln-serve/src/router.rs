//! [`router`]: the routes, their fallbacks and middleware.

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{admission, auth, introspection, openai, request_metrics, tei};

/// The server's routes over `state`.
///
/// Every request passes, outermost first: the metrics recorder (so refused requests are
/// counted too), the API-key check, admission control (429), then the body limit and the
/// route. Unknown paths get 404 and known paths with the wrong method 405, both with the JSON
/// error body.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embed", post(tei::embed))
        .route("/similarity", post(tei::similarity))
        .route("/tokenize", post(tei::tokenize_route))
        .route("/info", get(introspection::info))
        .route("/health", get(introspection::health))
        .route("/metrics", get(introspection::metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(
            state.clone(),
            admission::limit_concurrency,
        ))
        .layer(from_fn_with_state(state.clone(), auth::require_api_key))
        .layer(from_fn_with_state(state.clone(), request_metrics::record))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
