//! Admission control: at most `max_concurrent_requests` requests are answered at once; the
//! next is refused at once with 429 and `Retry-After`, before its body is read, rather than
//! queued without bound. `/health` and `/metrics` are always answered.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Releases an admitted request's slot when its answer is done, or when it is cancelled (the
/// client went away and the future was dropped).
struct Slot(AppState);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.in_flight.dec();
    }
}

/// The middleware.
pub async fn limit_concurrency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/metrics" {
        return next.run(req).await;
    }
    let limit = state.config.max_concurrent_requests;
    if state.in_flight.fetch_add(1, Ordering::SeqCst) >= limit {
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        return ApiError::overloaded(limit).into_response();
    }
    state.metrics.in_flight.inc();
    let _slot = Slot(state.clone());
    next.run(req).await
}
