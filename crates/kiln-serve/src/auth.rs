//! API-key check: with a key configured, every route but `/health` needs
//! `Authorization: Bearer <key>`; anything else is answered 401.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Whether `header` (the `Authorization` value) carries `key`. The comparison takes the same
/// time whatever the bytes, so that timing does not reveal how much of a guess was right.
pub fn authorized(header: Option<&str>, key: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    given.trim().as_bytes().ct_eq(key.as_bytes()).into()
}

/// The middleware: passes `/health` and every request when no key is configured.
pub async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = state.config.api_key.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorized(header, key) {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::authorized;

    #[test]
    fn only_the_exact_bearer_key_is_accepted() {
        assert!(authorized(Some("Bearer secret"), "secret"));
        assert!(!authorized(Some("Bearer secre"), "secret"));
        assert!(!authorized(Some("Bearer secrets"), "secret"));
        assert!(!authorized(Some("secret"), "secret"));
        assert!(!authorized(Some("Basic secret"), "secret"));
        assert!(!authorized(None, "secret"));
    }
}
