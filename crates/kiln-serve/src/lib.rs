//! kiln's HTTP embedding server: OpenAI's `POST /v1/embeddings` and text-embeddings-inference's
//! `POST /embed`, `/similarity`, `/tokenize`, with `GET /info`, `/health` and Prometheus
//! `/metrics`, in front of one [`Batcher`] thread that owns the model and batches requests.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_serve::{serve, shutdown_signal, AppState, ServeConfig};
//! let device = Default::default();
//! let encoder = kiln_text::TextEncoder::<kiln::backend::Cpu>::from_dir(
//!     ".cache/models/all-MiniLM-L6-v2",
//!     &device,
//! )?;
//! let config = ServeConfig::new(encoder.max_seq_length());
//! let (state, warm_up) = AppState::from_encoder(encoder, "ndarray", config)?;
//! warm_up.wait()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, state, shutdown_signal()?).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `docs/serving.md` describes the routes, limits, status codes and metrics.

mod admission;
pub mod auth;
pub mod batcher;
pub mod config;
pub mod embedder;
pub mod error;
pub mod inputs;
pub mod introspection;
pub mod json_body;
pub mod metrics;
pub mod model_info;
pub mod openai;
mod request_metrics;
pub mod router;
pub mod server;
pub mod state;
pub mod tei;

pub use batcher::{Batcher, WarmUp};
pub use config::ServeConfig;
pub use embedder::{Embedder, TextEmbedder};
pub use error::{ApiError, ServeError};
pub use metrics::Metrics;
pub use model_info::ModelInfo;
pub use router::router;
pub use server::{serve, shutdown_signal};
pub use state::AppState;
