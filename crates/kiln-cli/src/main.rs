//! `kiln`: run PyTorch-compatible Transformer encoders from the shell.
//!
//! Exit codes: 0 success, 1 runtime error, 2 usage error. Errors are one line on stderr.

mod augment;
mod backend_select;
mod bench;
mod classify;
mod compress;
mod distill;
mod embed;
mod explain;
mod forward;
mod info;
mod model_source;
mod npy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// PyTorch-compatible Transformer encoders on burn, on GPU (wgpu) or CPU (ndarray, flex).
#[derive(Parser, Debug)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log verbosity (error, warn, info, debug, trace); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a forward pass (the built-in default model and random input unless given files).
    Forward(forward::ForwardArgs),
    /// Show a model's config, size and FLOPs, and the backends and devices available.
    Info(info::InfoArgs),
    /// Write a freshly initialised model.safetensors for a config.json.
    Init(info::InitArgs),
    /// Benchmark kiln against burn's built-in encoder (same weights, inputs and process).
    Bench(bench::BenchArgs),
    /// Embed texts with a pretrained sentence encoder (e.g. all-MiniLM-L6-v2).
    Embed(embed::EmbedArgs),
    /// Cosine similarity of two texts' embeddings.
    Similarity(embed::SimilarityArgs),
    /// Prune a text model or encoder (unstructured, or heads/feed-forward neurons that shrink
    /// it), optionally distilling from the original to recover; writes a loadable directory.
    Prune(compress::PruneArgs),
    /// Distil a (pruned) student from a teacher: fine-tuning to recover on its own, e.g. to
    /// continue what `prune --finetune-steps` started.
    Distill(compress::DistillArgs),
    /// Quantize a model's Linear weights to int8 (4x less room for them; loads everywhere).
    Quantize(compress::QuantizeArgs),
    /// Explain a text model on one text: attention maps, rollout, gradient x input or
    /// Integrated Gradients; JSON report, PNG heatmap, HTML page.
    Explain(explain::ExplainArgs),
    /// Augment text lines with EDA (WordNet synonyms, insertion, swap, deletion): K augmented
    /// lines per input line, deterministic under --seed.
    Augment(augment::AugmentArgs),
    /// Train a classification head over a frozen text encoder from `label<TAB>text` lines:
    /// supervised, with EDA copies (--augment eda), UDA consistency (--consistency) or
    /// pseudo-labels (--pseudo-labels) on unlabelled texts.
    TrainClassifier(classify::TrainClassifierArgs),
    /// Classify texts with a trained classifier, or evaluate it on labelled texts (--eval).
    Classify(classify::ClassifyArgs),
}

/// `--config` / `--weights`, shared by subcommands that load a plain encoder.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// config.json with PyTorch's nn.TransformerEncoder fields (default: the built-in model).
    #[arg(long, requires = "weights")]
    pub config: Option<PathBuf>,
    /// model.safetensors with PyTorch's state_dict names.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// Seed of the built-in model's weights and of random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// An error in how kiln was called (exit code 2), as opposed to a failure while running (1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error (exit code 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let message = message.lines().next().unwrap_or_default();
        eprintln!("kiln: internal error: {message}");
    }));

    quiet_window_system_probe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.log);

    let result = std::panic::catch_unwind(|| match &cli.command {
        Command::Forward(args) => forward::run(args),
        Command::Info(args) => info::run_info(args),
        Command::Init(args) => info::run_init(args),
        Command::Bench(args) => bench::run(args),
        Command::Embed(args) => embed::run_embed(args),
        Command::Similarity(args) => embed::run_similarity(args),
        Command::Prune(args) => compress::run_prune(args),
        Command::Distill(args) => distill::run_distill(args),
        Command::Quantize(args) => compress::run_quantize(args),
        Command::Explain(args) => explain::run_explain(args),
        Command::Augment(args) => augment::run_augment(args),
        Command::TrainClassifier(args) => classify::run_train_classifier(args),
        Command::Classify(args) => classify::run_classify(args),
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
        Err(_) => ExitCode::from(1),
    }
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
