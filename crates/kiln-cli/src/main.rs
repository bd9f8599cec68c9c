//! `kiln`: run PyTorch-compatible Transformer encoders from the shell.
//!
//! Exit codes: 0 success, 1 runtime error, 2 usage error. Errors are one line on stderr.

mod backend_select;
mod commands;
mod common;
mod limits;
mod model_source;
mod npy;
mod precision;
mod text_model;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
// The backend dispatch of every command (`crate::with_backend!` in the command modules).
use kiln::{with_autodiff_backend, with_backend};

use crate::commands::compress::{distill, prune, quantize};
use crate::commands::{
    augment, bench, classify, embed, explain, forward, info, init, serve, similarity,
    train_classifier,
};
use crate::usage::UsageError;

/// PyTorch-compatible Transformer encoders on burn, on GPU (wgpu) or CPU (flex, ndarray).
#[derive(Parser, Debug)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log verbosity (error, warn, info, debug, trace); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Accept NaN/inf in weights (and `forward`'s input) instead of refusing them.
    #[arg(long, global = true)]
    allow_nonfinite: bool,
    /// Refuse a model or batch needing more memory than this: `auto` (the memory available
    /// now), `none`, or a size such as 512M or 8G.
    #[arg(long, global = true, default_value = "auto", value_parser = parse_memory_limit)]
    memory_limit: kiln::memory::MemoryLimit,
}

fn parse_memory_limit(text: &str) -> Result<kiln::memory::MemoryLimit, String> {
    text.parse()
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a forward pass (the built-in default model and random input unless given files).
    Forward(forward::ForwardArgs),
    /// Show a model's config, size and FLOPs, and the backends and devices available.
    Info(info::InfoArgs),
    /// Write a freshly initialised model.safetensors for a config.json.
    Init(init::InitArgs),
    /// Benchmark kiln against burn's built-in encoder (same weights, inputs and process).
    Bench(bench::BenchArgs),
    /// Embed texts with a pretrained sentence encoder (e.g. all-MiniLM-L6-v2).
    Embed(embed::EmbedArgs),
    /// Cosine similarity of two texts' embeddings.
    Similarity(similarity::SimilarityArgs),
    /// Prune a text model or encoder (unstructured, or heads/feed-forward neurons that shrink
    /// it), optionally distilling from the original to recover; writes a loadable directory.
    Prune(prune::PruneArgs),
    /// Distil a (pruned) student from a teacher: fine-tuning to recover on its own, e.g. to
    /// continue what `prune --finetune-steps` started.
    Distill(distill::DistillArgs),
    /// Quantize a model's Linear weights to int8 (4x less room for them; loads everywhere).
    Quantize(quantize::QuantizeArgs),
    /// Explain a text model on one text: attention maps, rollout, gradient x input or
    /// Integrated Gradients; JSON report, PNG heatmap, HTML page.
    Explain(explain::ExplainArgs),
    /// Augment text lines with EDA (WordNet synonyms, insertion, swap, deletion) or
    /// back-translation (Apertium): K augmented lines per input line, deterministic under --seed.
    Augment(augment::AugmentArgs),
    /// Train a classification head over a frozen text encoder from `label<TAB>text` lines:
    /// supervised, with EDA or back-translated copies (--augment eda,back-translate), UDA
    /// consistency (--consistency) or pseudo-labels (--pseudo-labels) on unlabelled texts.
    TrainClassifier(train_classifier::TrainClassifierArgs),
    /// Classify texts with a trained classifier, or evaluate it on labelled texts (--eval).
    Classify(classify::ClassifyArgs),
    /// Serve a text model over HTTP: OpenAI's /v1/embeddings and text-embeddings-inference's
    /// /embed, /similarity, /tokenize, with /info, /health and Prometheus /metrics.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace: where it happened, and who
    // to tell.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let message = message.lines().next().unwrap_or_default();
        // `println!` to a reader that went away (`kiln embed ... | head`): a normal end, not a
        // bug (Rust ignores SIGPIPE, so the write fails instead of ending the process).
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "kiln: internal error{location}: {message} (a bug in kiln {}: please report it with the command that caused it)",
            env!("CARGO_PKG_VERSION")
        );
    }));
    quiet_window_system_probe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("kiln: {}", clap_error_line(&e));
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    // `kiln serve` handles SIGINT / SIGTERM itself: it stops accepting, finishes the requests
    // in flight and exits 0. It writes no files, so there is nothing half-written to remove.
    if !matches!(cli.command, Command::Serve(_)) {
        remove_half_written_outputs_on_signal();
    }
    init_logging(&cli.log);
    kiln::weights::allow_nonfinite_weights(cli.allow_nonfinite);
    kiln::memory::set_memory_limit(cli.memory_limit);

    let result = std::panic::catch_unwind(|| match &cli.command {
        Command::Forward(args) => forward::run(args),
        Command::Info(args) => info::run(args),
        Command::Init(args) => init::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Similarity(args) => similarity::run(args),
        Command::Prune(args) => prune::run(args),
        Command::Distill(args) => distill::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Augment(args) => augment::run(args),
        Command::TrainClassifier(args) => train_classifier::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Serve(args) => serve::run(args),
    });
    remove_runtime_dir();
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let code = if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("kiln: {}", one_line(&e));
            ExitCode::from(code)
        }
        Err(_) if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Set when a print to stdout failed because its reader closed the pipe.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// clap's usage error on one line (its message, without the usage block and tips), like every
/// other kiln error.
fn clap_error_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        parts.push(line.trim_start_matches("error: ").to_string());
    }
    format!(
        "{} (kiln --help lists the commands and flags)",
        parts.join(" ")
    )
}

/// The error and its causes on one line: `context: cause: cause`.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// SIGINT / SIGTERM remove the temporary files and directories being written (atomic outputs
/// are written beside their target and renamed at the end), then end the process with the
/// shell's code for the signal (128 + its number).
fn remove_half_written_outputs_on_signal() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        kiln::atomic::remove_pending();
                        std::process::exit(128 + signal);
                    }
                });
            }
            Err(e) => tracing::warn!("cannot watch for SIGINT/SIGTERM: {e}"),
        }
    }
}

/// Mesa's Vulkan drivers complain on stderr ("XDG_RUNTIME_DIR is invalid") when probing for a
/// display on headless machines. kiln never opens a window; give them a private runtime dir.
fn quiet_window_system_probe() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kiln-runtime-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
        {
            // Single-threaded at this point: nothing else reads the environment concurrently.
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
            RUNTIME_DIR.with(|d| *d.borrow_mut() = Some(dir));
        }
    }
}

thread_local! {
    static RUNTIME_DIR: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

fn remove_runtime_dir() {
    RUNTIME_DIR.with(|d| {
        if let Some(dir) = d.borrow_mut().take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    });
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("kiln={level},kiln_cli={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
