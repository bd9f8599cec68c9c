//! `kiln serve`: an HTTP embedding server (kiln-serve) for a text model.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use clap::Args;
use kiln_serve::{serve, shutdown_signal, AppState, ServeConfig, ServeError};

use crate::backend_select::{announce, select};
use crate::text_model::{self, load, TextModelArgs};
use crate::usage::usage;
use crate::with_backend;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the printed URL says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Most padded tokens (texts x longest text) in one forward pass; larger client batches
    /// are split across passes. At least --max-input-length.
    #[arg(long, default_value_t = 16_384, value_parser = crate::limits::count::<1, { 1 << 24 }>)]
    pub max_batch_tokens: usize,
    /// Most inputs in one request (413 above).
    #[arg(long, default_value_t = 64, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub max_client_batch_size: usize,
    /// Most requests answered at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 512, value_parser = crate::limits::count::<1, { 1 << 20 }>)]
    pub max_concurrent_requests: usize,
    /// Most tokens of one input (default: the model's max_seq_length); longer texts are
    /// truncated, or refused with 413 when the request says `truncate: false`.
    #[arg(long, conflicts_with = "max_seq_length", value_parser = crate::limits::count::<2, { crate::limits::MAX_SEQ }>)]
    pub max_input_length: Option<usize>,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = kiln_serve::config::DEFAULT_MAX_BODY_BYTES, value_parser = crate::limits::count::<1, { 1 << 30 }>)]
    pub max_body_bytes: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    text_model::check(&args.model)?;
    if args.api_key.as_deref().is_some_and(str::is_empty) {
        return Err(usage("--api-key must not be empty"));
    }
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| run_server::<B>(
        args,
        &device,
        selection.backend.name()
    ))
}

fn run_server<B: Backend>(args: &ServeArgs, device: &B::Device, backend: &str) -> Result<()> {
    let encoder = load::<B>(&args.model, device)?;
    let config = ServeConfig {
        max_batch_tokens: args.max_batch_tokens,
        max_client_batch_size: args.max_client_batch_size,
        max_concurrent_requests: args.max_concurrent_requests,
        max_input_length: args
            .max_input_length
            .unwrap_or_else(|| encoder.max_seq_length()),
        max_body_bytes: args.max_body_bytes,
        api_key: args.api_key.clone(),
    };
    config.validate().map_err(|e| usage(flag_names(&e)))?;
    let (state, warm_up) =
        AppState::from_encoder(encoder, backend, config).map_err(|e| match e {
            ServeError::Config(message) => usage(flag_names(&message)),
            other => anyhow::Error::new(other),
        })?;
    warm_up
        .wait()
        .context("the model failed its warm-up pass")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kiln-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Signals are watched before the URL is printed: a SIGTERM right after it stops the
        // server gracefully instead of killing the process.
        let shutdown = shutdown_signal().context("cannot watch for SIGINT/SIGTERM")?;
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address: SocketAddr = listener.local_addr()?;
        println!("listening on http://{address}");
        tracing::info!("serving {} on {backend}", args.model.model.display());
        serve(listener, state, shutdown)
            .await
            .context("the server failed")?;
        anyhow::Ok(())
    })?;
    eprintln!("kiln: server stopped");
    Ok(())
}

/// The library's configuration names as the flags that set them.
fn flag_names(message: &str) -> String {
    message
        .replace("max_batch_tokens", "--max-batch-tokens")
        .replace("max_input_length", "--max-input-length")
        .replace("max_client_batch_size", "--max-client-batch-size")
        .replace("max_concurrent_requests", "--max-concurrent-requests")
        .replace("max_body_bytes", "--max-body-bytes")
}
