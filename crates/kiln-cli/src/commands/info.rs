//! `kiln info`: a model's config, size and FLOPs, and the backends and devices available.

use anyhow::{Context, Result};
use clap::Args;
use kiln::TransformerEncoderConfig;

use crate::model_source::{default_config, ModelArgs};

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequence length at which FLOPs per token are counted.
    #[arg(long, default_value_t = 128, value_parser = crate::limits::count::<1, { crate::limits::MAX_SEQ }>)]
    pub seq: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let (config, source) = match &args.model.config {
        Some(path) => (
            TransformerEncoderConfig::from_json_file(path)
                .with_context(|| format!("config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (default_config(), "built-in default".to_string()),
    };
    let weights_bytes = match &args.model.weights {
        Some(path) => Some(
            std::fs::metadata(path)
                .with_context(|| format!("weights {}", path.display()))?
                .len(),
        ),
        None => None,
    };
    // With weights, also check they load (names every missing or mis-shaped key).
    if let (Some(c), Some(w)) = (&args.model.config, &args.model.weights) {
        crate::model_source::load_files::<kiln::backend::Cpu>(c, w, &kiln::backend::cpu_device())?;
    }
    let adapters = kiln::backend::wgpu_adapters();
    let auto = crate::backend_select::select(crate::backend_select::BackendChoice::Auto)?;
    let auto_reason = auto.reason.clone().unwrap_or_default();
    let cpu = kiln::kernels::cpu_features();
    let params = config.num_params();
    let flops = config.flops_per_token(args.seq);
    if args.json {
        let value = serde_json::json!({
            "source": source,
            "config": serde_json::from_str::<serde_json::Value>(&config.to_json_string())?,
            "num_params": params,
            "flops_per_token": flops,
            "flops_seq_len": args.seq,
            "weights_file_bytes": weights_bytes,
            "auto": {"backend": auto.backend.name(), "device": auto.device_name, "reason": auto_reason},
            "cpu_features": cpu.names(),
            "backends": {
                "flex": {"available": true, "kernels": kiln::kernels::describe()},
                "ndarray": {"available": true, "blas": cfg!(feature = "blas")},
                "wgpu": {"available": !adapters.is_empty(), "optimizations": kiln::backend::wgpu_optimizations(), "adapters": adapters.iter().map(|a| serde_json::json!({
                    "name": a.name, "kind": format!("{:?}", a.kind), "api": a.api, "driver": a.driver,
                })).collect::<Vec<_>>()},
            },
        });
        println!("{value}");
        return Ok(());
    }
    println!("model: {source}");
    println!("{}", config.to_json_string());
    println!("parameters: {params} ({:.2} M)", params as f64 / 1e6);
    println!("FLOPs per token at seq {}: {:.3} M", args.seq, flops / 1e6);
    if let Some(bytes) = weights_bytes {
        println!(
            "weights file: {bytes} bytes ({:.2} MiB)",
            bytes as f64 / 1048576.0
        );
    }
    println!("backends:");
    println!("  flex: CPU ({})", kiln::kernels::describe());
    println!(
        "  ndarray: CPU{}",
        if cfg!(feature = "blas") {
            " (OpenBLAS)"
        } else {
            ""
        }
    );
    if adapters.is_empty() {
        println!("  wgpu: no adapter found");
    }
    for a in &adapters {
        println!("  wgpu: {} ({:?}, {}, {})", a.name, a.kind, a.api, a.driver);
    }
    println!(
        "  wgpu runs with burn's {}",
        kiln::backend::wgpu_optimizations().join(" and ")
    );
    println!(
        "auto picks: {} on {} ({auto_reason})",
        auto.backend.name(),
        auto.device_name
    );
    Ok(())
}
