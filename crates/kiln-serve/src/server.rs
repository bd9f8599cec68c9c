//! Running a server on a socket until a shutdown signal, letting in-flight requests finish.

use std::future::Future;

use tokio::net::TcpListener;

use crate::router::router;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting connections,
/// lets the requests in flight finish, and returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Watches for SIGINT (Ctrl-C) and, on Unix, SIGTERM, from the moment it is called (so a signal
/// that arrives before the server runs is not lost); the returned future completes on the
/// first of them. Call it inside a tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: finishing the requests in flight"),
            _ = terminate.recv() => tracing::info!("SIGTERM: finishing the requests in flight"),
        }
    })
}

/// Watches for Ctrl-C; the returned future completes on it. Call it inside a tokio runtime.
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: finishing the requests in flight");
        }
    })
}
