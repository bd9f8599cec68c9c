//! `kiln forward`: one forward pass, timed, with `.npy` in and out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::prelude::Backend;
use burn::tensor::Tensor;
use clap::Args;
use kiln::{EncoderInput, Execution, HostTensor, KeyPaddingMask, SrcMask, TransformerEncoder};

use crate::backend_select::{select, BackendChoice};
use crate::common::{check_output_file, same_file};
use crate::model_source::{self, ModelArgs};
use crate::precision::PrecisionChoice;
use crate::usage::usage;
use crate::{npy, with_backend};

#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Backend: auto picks wgpu when a GPU adapter is present, else flex.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input .npy (f32 or f16): [S, B, E], or [B, S, E] for batch_first models.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// src_mask .npy: bool (true = masked) or float (added), [S, S] or [B*nhead, S, S].
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// src_key_padding_mask .npy: bool [B, S], true = padding (or float, added).
    #[arg(long)]
    pub key_padding_mask: Option<PathBuf>,
    /// Apply the causal mask.
    #[arg(long)]
    pub causal: bool,
    /// Write the output here (.npy, f32).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write per-layer per-head attention weights [L, B, H, S, S] here (.npy, f32).
    #[arg(long)]
    pub attention_out: Option<PathBuf>,
    /// Batch size of the random input (without --input).
    #[arg(long, default_value_t = 8, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub batch: usize,
    /// Sequence length of the random input (without --input).
    #[arg(long, default_value_t = 128, value_parser = crate::limits::count::<1, { crate::limits::MAX_SEQ }>)]
    pub seq: usize,
    /// Time this many forward passes after one warm-up and report the median.
    #[arg(long, default_value_t = 1, value_parser = crate::limits::count::<1, { crate::limits::MAX_REPEAT }>)]
    pub repeat: usize,
    /// Split the batch across CPU threads: `auto` (on the CPU backends), `off`, or a number of
    /// slices. The output is the same; for comparison and tuning.
    #[arg(long, default_value = "auto")]
    pub batch_split: kiln::BatchSplit,
    /// Arithmetic of the Linear layers: `auto` (int8 for `kiln quantize`'s output, else f32),
    /// `f32`, or `int8` (quantized at load; integer matrix products on the CPU).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ForwardArgs) -> Result<()> {
    check_paths(args)?;
    if args.repeat == 0 {
        return Err(usage("--repeat must be at least 1"));
    }
    let selection = select(args.backend)?;
    if let Some(reason) = &selection.reason {
        eprintln!(
            "kiln: --backend auto picked {} ({reason})",
            selection.backend.name()
        );
    }
    with_backend!(selection.backend, |B, device| forward::<B>(
        args,
        &device,
        selection.backend.name(),
        &selection.device_name
    ))
}

/// Refuses outputs that would overwrite an input, before any work.
fn check_paths(args: &ForwardArgs) -> Result<()> {
    let inputs: Vec<(&str, &PathBuf)> = [
        ("--config", &args.model.config),
        ("--weights", &args.model.weights),
        ("--input", &args.input),
        ("--mask", &args.mask),
        ("--key-padding-mask", &args.key_padding_mask),
    ]
    .into_iter()
    .filter_map(|(name, p)| p.as_ref().map(|p| (name, p)))
    .collect();
    let outputs = [
        ("--output", &args.output),
        ("--attention-out", &args.attention_out),
    ];
    for (out_name, out) in outputs
        .iter()
        .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
    {
        for (in_name, input) in &inputs {
            if same_file(input, out) {
                return Err(usage(format!(
                    "{out_name} {} is the same file as {in_name}: kiln never overwrites its inputs",
                    out.display()
                )));
            }
        }
    }
    for (flag, out) in outputs
        .iter()
        .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
    {
        check_output_file(flag, out)?;
    }
    if let (Some(a), Some(b)) = (&args.output, &args.attention_out) {
        if same_file(a, b) {
            return Err(usage("--output and --attention-out name the same file"));
        }
    }
    Ok(())
}

fn forward<B: Backend>(
    args: &ForwardArgs,
    device: &B::Device,
    backend: &str,
    device_name: &str,
) -> Result<()> {
    let precision = args.precision.resolve(args.model.weights.as_deref())?;
    let model: TransformerEncoder<B> = model_source::load(&args.model, device)?
        .with_execution(Execution::default().with_batch_split(args.batch_split))
        .with_precision(precision);
    let config = model.config.clone();

    let src = match &args.input {
        Some(path) => {
            let npy::NpyArray::Float(t) = npy::read(path)? else {
                bail!(
                    "{}: input must be float32 or float16, not bool",
                    path.display()
                );
            };
            if t.shape.len() != 3 {
                bail!(
                    "{}: input has shape {:?}, expected 3 dimensions {}",
                    path.display(),
                    t.shape,
                    layout(config.batch_first)
                );
            }
            if t.shape[2] != config.d_model {
                bail!(
                    "{}: input last dimension is {} but the model's d_model is {} (shape {:?}, expected {})",
                    path.display(),
                    t.shape[2],
                    config.d_model,
                    t.shape,
                    layout(config.batch_first)
                );
            }
            if !kiln::weights::nonfinite_weights_allowed() {
                let bad = t.data.iter().filter(|v| !v.is_finite()).count();
                if bad > 0 {
                    bail!(
                        "{}: input contains {bad} NaN/inf value(s) (pass --allow-nonfinite to run anyway)",
                        path.display()
                    );
                }
            }
            t
        }
        None => {
            if args.batch == 0 || args.seq == 0 {
                return Err(usage("--batch and --seq must be at least 1"));
            }
            kiln::memory::check_fits(
                &format!("a forward pass over {} x {} tokens", args.batch, args.seq),
                config.activation_bytes(args.batch, args.seq),
            )?;
            random_input(&config, args.batch, args.seq, args.model.seed)
        }
    };
    let (batch, seq) = if config.batch_first {
        (src.shape[0], src.shape[1])
    } else {
        (src.shape[1], src.shape[0])
    };

    let src_mask = match &args.mask {
        Some(path) => Some(read_src_mask::<B>(path, device)?),
        None => None,
    };
    let key_padding_mask = match &args.key_padding_mask {
        Some(path) => Some(read_padding_mask::<B>(path, device)?),
        None => None,
    };
    let need_weights = args.attention_out.is_some();
    let make_input = || EncoderInput {
        src_mask: src_mask.clone(),
        src_key_padding_mask: key_padding_mask.clone(),
        is_causal: args.causal,
        need_weights,
        ..EncoderInput::new(src.to_tensor::<B, 3>(device))
    };

    // Warm-up (and the run whose output is kept when --repeat is 1).
    let mut out = model.run(make_input()).context("forward pass")?;
    let mut times = Vec::with_capacity(args.repeat);
    let timed_runs = if args.repeat > 1 { args.repeat } else { 0 };
    for _ in 0..timed_runs {
        let input = make_input();
        B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        let start = Instant::now();
        out = model.run(input)?;
        B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        times.push(start.elapsed().as_secs_f64());
    }
    if timed_runs == 0 {
        // One run: time the warm-up itself (includes first-use costs).
        let start = Instant::now();
        out = model.run(make_input())?;
        B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tokens = (batch * seq) as f64;

    let output = HostTensor::from_tensor(out.output);
    if let Some(path) = &args.output {
        npy::write_f32(path, &output.shape, &output.data)?;
    }
    if let (Some(path), Some(attentions)) = (&args.attention_out, out.attentions) {
        write_attentions(path, attentions)?;
    }

    let stats = Stats::of(&output.data);
    let num_params = model.num_params();
    if args.json {
        let value = serde_json::json!({
            "backend": backend,
            "device": device_name,
            "precision": precision.name(),
            "model": match &args.model.config { Some(p) => p.display().to_string(), None => "built-in default".into() },
            "input_shape": src.shape,
            "output_shape": output.shape,
            "batch": batch,
            "seq_len": seq,
            "repeat": args.repeat,
            "median_seconds": median,
            "tokens_per_second": tokens / median,
            "num_params": num_params,
            "gflops_per_second": config.flops_per_token(seq) * tokens / median / 1e9,
            "output_stats": {"mean": stats.mean, "std": stats.std, "min": stats.min, "max": stats.max, "finite": stats.finite},
            "output": args.output.as_ref().map(|p| p.display().to_string()),
            "attention_out": args.attention_out.as_ref().map(|p| p.display().to_string()),
        });
        println!("{value}");
    } else {
        println!(
            "kiln forward on {backend} [{device_name}], {precision}: {} layers, d_model {}, {num_params} parameters",
            config.num_layers, config.d_model
        );
        println!(
            "input {:?} -> output {:?}: mean {:.6}, std {:.6}, min {:.6}, max {:.6}",
            src.shape, output.shape, stats.mean, stats.std, stats.min, stats.max
        );
        println!(
            "{} run(s), median {:.3} ms, {:.0} tokens/s",
            times.len(),
            median * 1e3,
            tokens / median
        );
        if let Some(p) = &args.output {
            println!("wrote {}", p.display());
        }
        if let Some(p) = &args.attention_out {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

fn layout(batch_first: bool) -> &'static str {
    if batch_first {
        "[B, S, d_model] (batch_first)"
    } else {
        "[S, B, d_model]"
    }
}

/// Seeded standard-normal input, identical on every backend.
fn random_input(
    config: &kiln::TransformerEncoderConfig,
    batch: usize,
    seq: usize,
    seed: u64,
) -> HostTensor {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6e);
    let n = batch * seq * config.d_model;
    let data = (0..n)
        .map(|_| {
            // Box-Muller.
            let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
            let u2: f32 = rng.random();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        })
        .collect();
    let shape = if config.batch_first {
        vec![batch, seq, config.d_model]
    } else {
        vec![seq, batch, config.d_model]
    };
    HostTensor::new(shape, data)
}

fn read_src_mask<B: Backend>(path: &Path, device: &B::Device) -> Result<SrcMask<B>> {
    let array = npy::read(path)?;
    Ok(match array {
        npy::NpyArray::Bool { shape, values } if matches!(shape.len(), 2 | 3) => {
            SrcMask::from_bool_values(values, &shape, device)
                .context("src_mask: a bool mask of rank 2 or 3")?
        }
        npy::NpyArray::Float(t) if t.shape.len() == 2 => SrcMask::Float2(t.to_tensor(device)),
        npy::NpyArray::Float(t) if t.shape.len() == 3 => SrcMask::Float3(t.to_tensor(device)),
        other => bail!(
            "{}: src_mask has shape {:?}, expected [S, S] or [B*nhead, S, S]",
            path.display(),
            other.shape()
        ),
    })
}

/// A `[B, S]` key padding mask. A bool mask that only pads the end of each row becomes
/// lengths on the host ([`KeyPaddingMask::from_bool_values`]).
fn read_padding_mask<B: Backend>(path: &Path, device: &B::Device) -> Result<KeyPaddingMask<B>> {
    let array = npy::read(path)?;
    if array.shape().len() != 2 {
        bail!(
            "{}: key padding mask has shape {:?}, expected [B, S]",
            path.display(),
            array.shape()
        );
    }
    Ok(match array {
        npy::NpyArray::Bool { shape, values } => {
            KeyPaddingMask::from_bool_values(values, [shape[0], shape[1]], device)
        }
        npy::NpyArray::Float(t) => KeyPaddingMask::Float(t.to_tensor(device)),
    })
}

fn write_attentions<B: Backend>(path: &Path, attentions: Vec<Tensor<B, 4>>) -> Result<()> {
    let first = attentions[0].dims();
    if let Some(other) = attentions.iter().find(|w| w.dims() != first) {
        bail!(
            "--attention-out needs the same head count in every layer ({:?} vs {:?}); this model's heads were pruned",
            first,
            other.dims()
        );
    }
    let layers = attentions.len();
    // L x [B, H, S, S] -> [L, B, H, S, S]
    let stacked = Tensor::stack::<5>(attentions, 0);
    let host = HostTensor::from_tensor(stacked);
    debug_assert_eq!(host.shape[0], layers);
    npy::write_f32(path, &host.shape, &host.data)
}

struct Stats {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
    finite: bool,
}

impl Stats {
    fn of(data: &[f32]) -> Self {
        let n = data.len().max(1) as f64;
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
            min: data.iter().copied().fold(f32::INFINITY, f32::min) as f64,
            max: data.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
            finite: data.iter().all(|v| v.is_finite()),
        }
    }
}
