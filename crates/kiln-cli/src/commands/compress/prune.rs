//! `kiln prune`: prunes a text model or a plain encoder ([`kiln_compress::prune()`]) into a new
//! directory that `kiln embed` / `kiln forward` load unchanged, optionally distilling from the
//! original to recover.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use kiln_compress::prune::{ImportanceMethod, PruneMethod as Method, StructuredSpec};
use kiln_compress::reconstruct::LinearFit;
use kiln_compress::unstructured::UnstructuredMethod;
use kiln_compress::{prune, DataSource, EncoderModel, PruneSpec, Pruned, TextData};
use serde_json::{json, Value};

use super::progress::Bars;
use super::report::{describe, distillation_json, fidelity_json, step_records, write_report};
use super::settings::DistillSettings;
use super::source::{self, load_text, random_data, text_data, CompressSource};
use crate::backend_select::{announce, select};
use crate::model_source::load_files;
use crate::usage::usage;
use crate::with_autodiff_backend;

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PruneMethod {
    /// Smallest |w| of each Linear weight (PyTorch's l1_unstructured).
    Magnitude,
    /// Smallest |w| across all Linear weights (global_unstructured).
    GlobalMagnitude,
    /// Random weights of each tensor (random_unstructured), the baseline.
    Random,
    /// Smallest |w| * ||x|| in each output row (Wanda): activation-aware, calibrated on --data
    /// (text) or random inputs (plain encoders).
    Wanda,
    /// Whole attention heads, least important first; the model shrinks.
    Heads,
    /// Feed-forward neurons, least important first; the model shrinks.
    Ffn,
}

/// `--importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportanceChoice {
    /// Michel et al. 2019: |dL/d gate| from gradients on data (text: --data; plain: random inputs).
    Gradient,
    /// Activation-aware (text: --data; plain: random inputs): a head by the norm of what it
    /// adds to the attention output, a neuron by ||activation|| * ||outgoing weights||.
    Activation,
    /// Weight norms, no data.
    Norm,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub source: CompressSource,
    /// What to prune; `heads,ffn` does both.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub method: Vec<PruneMethod>,
    /// Fraction to prune: of the Linear weights, of all heads, or of each layer's neurons.
    #[arg(long, allow_negative_numbers = true)]
    pub rate: f64,
    /// Fraction of feed-forward neurons when pruning heads and ffn together (default: --rate).
    #[arg(long, allow_negative_numbers = true)]
    pub ffn_rate: Option<f64>,
    /// Importance used by heads/ffn.
    #[arg(long, value_enum, default_value_t = ImportanceChoice::Gradient)]
    pub importance: ImportanceChoice,
    /// Plain encoders: random batches for gradient importance and wanda's calibration.
    #[arg(long, default_value_t = 8, value_parser = crate::limits::count::<1, { crate::limits::MAX_REPEAT }>)]
    pub importance_batches: usize,
    /// heads/ffn: refit each layer's out_proj and linear2 by least squares so the shrunk layers
    /// reproduce the original ones on --data (text) or random inputs (plain); no gradient steps.
    #[arg(long)]
    pub reconstruct: bool,
    /// heads/ffn: within each layer, choose which heads and neurons go by Optimal Brain Surgeon
    /// on the calibration data (those the least-squares update of the rest makes up for best);
    /// how many each layer loses still follows --importance. Best with --reconstruct.
    #[arg(long)]
    pub obs: bool,
    /// Ridge factor of --reconstruct and --obs, relative to the mean diagonal of X^T X.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::limits::non_negative, allow_negative_numbers = true)]
    pub ridge: f64,
    /// Distillation steps after pruning (0: none). Text models need --data.
    #[arg(long, default_value_t = 0, value_parser = crate::limits::count::<0, { crate::limits::MAX_STEPS }>)]
    pub finetune_steps: usize,
    #[command(flatten)]
    pub distill: DistillSettings,
}

impl PruneArgs {
    /// Whether `--method` removes heads or neurons (and shrinks the model).
    fn structured(&self) -> bool {
        self.method
            .iter()
            .any(|m| matches!(m, PruneMethod::Heads | PruneMethod::Ffn))
    }

    /// Refuses flags that contradict each other or lack the data they need.
    fn check(&self) -> Result<()> {
        let args = self;
        let source = &self.source;
        source::check(source, &[])?;
        let structured = self.structured();
        let unstructured: Vec<PruneMethod> = args
            .method
            .iter()
            .copied()
            .filter(|m| !matches!(m, PruneMethod::Heads | PruneMethod::Ffn))
            .collect();
        if structured && !unstructured.is_empty() || unstructured.len() > 1 {
            return Err(usage(
                "--method: give one unstructured method (magnitude, global-magnitude, random, wanda) or heads and/or ffn",
            ));
        }
        if args.obs && !structured {
            return Err(usage(
                "--obs chooses the heads or neurons to remove: use it with --method heads and/or ffn",
            ));
        }
        if args.reconstruct && !structured {
            return Err(usage(
                "--reconstruct refits a model whose heads or neurons were removed: use it with --method heads and/or ffn",
            ));
        }
        if !(args.ridge >= 0.0 && args.ridge.is_finite()) {
            return Err(usage(format!("--ridge {}: must be >= 0", args.ridge)));
        }
        for (flag, rate) in [("--rate", Some(args.rate)), ("--ffn-rate", args.ffn_rate)] {
            if let Some(rate) = rate {
                if !(0.0..1.0).contains(&rate) {
                    return Err(usage(format!("{flag} {rate}: must be in [0, 1)")));
                }
            }
        }
        if source.model.is_some() && source.data.is_none() {
            if args.finetune_steps > 0 {
                return Err(usage(
                    "--finetune-steps needs --data (unlabeled text lines)",
                ));
            }
            if unstructured.contains(&PruneMethod::Wanda) {
                return Err(usage(
                    "--method wanda needs --data (calibration text lines)",
                ));
            }
            if structured && args.importance != ImportanceChoice::Norm {
                return Err(usage(
                    "--importance gradient/activation needs --data (text lines); or use --importance norm",
                ));
            }
            if args.reconstruct {
                return Err(usage("--reconstruct needs --data (calibration text lines)"));
            }
            if args.obs {
                return Err(usage("--obs needs --data (calibration text lines)"));
            }
        }
        Ok(())
    }

    /// The library's spec of this run.
    fn spec(&self) -> PruneSpec {
        let seed = self.source.seed;
        let unstructured = self
            .method
            .iter()
            .find(|m| !matches!(m, PruneMethod::Heads | PruneMethod::Ffn));
        let method = match unstructured {
            Some(PruneMethod::Wanda) => Method::Wanda { rate: self.rate },
            Some(&choice) => Method::Unstructured {
                method: match choice {
                    PruneMethod::Magnitude => UnstructuredMethod::Magnitude,
                    PruneMethod::GlobalMagnitude => UnstructuredMethod::GlobalMagnitude,
                    _ => UnstructuredMethod::Random { seed },
                },
                rate: self.rate,
            },
            None => {
                let heads = self.method.contains(&PruneMethod::Heads);
                let ffn_rate = if heads {
                    self.ffn_rate.unwrap_or(self.rate)
                } else {
                    self.rate
                };
                Method::Structured(StructuredSpec {
                    heads: heads.then_some(self.rate),
                    neurons: self.method.contains(&PruneMethod::Ffn).then_some(ffn_rate),
                    importance: match self.importance {
                        ImportanceChoice::Gradient => ImportanceMethod::Gradient,
                        ImportanceChoice::Activation => ImportanceMethod::Activation,
                        ImportanceChoice::Norm => ImportanceMethod::WeightNorm,
                    },
                    obs: self.obs,
                    reconstruct: self.reconstruct,
                    ridge: self.ridge,
                })
            }
        };
        PruneSpec {
            method,
            finetune: self.distill.finetune_config(self.finetune_steps, seed),
            seed,
        }
    }
}

pub fn run(args: &PruneArgs) -> Result<()> {
    args.check()?;
    let source = &args.source;
    let structured = args.structured();
    let selection = select(source.backend)?;
    announce(&selection);
    let (staged, staging) = source::stage(source)?;
    let start = Instant::now();
    let (pruned, kind) = with_autodiff_backend!(selection.backend, |B, device| {
        if let Some(dir) = &source.model {
            // The data first: a bad file costs no model load.
            let (train, heldout) = text_data(source)?;
            let student = load_text::<B>(dir, source, &device)?;
            let teacher = load_text::<<B as AutodiffBackend>::InnerBackend>(dir, source, &device)?;
            let data = TextData {
                train,
                heldout,
                batch_size: source.batch_size,
                seed: source.seed,
                losses: args.distill.text_losses(),
            };
            (
                prune_and_save::<B, _>(args, &staging, student, &teacher, &data)?,
                "text",
            )
        } else {
            let (config, weights) = (
                source.config.as_ref().expect("checked"),
                source.weights.as_ref().expect("checked"),
            );
            let student = load_files::<B>(config, weights, &device)?;
            let teacher = student.valid();
            let data = random_data(source, args.importance_batches);
            (
                prune_and_save::<B, _>(args, &staging, student, &teacher, &data)?,
                "encoder",
            )
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let after = pruned.fidelity_after_finetune();
    let report = json!({
        "command": "prune",
        "kind": kind,
        "method": args.method.iter().map(|m| format!("{m:?}").to_lowercase()).collect::<Vec<_>>(),
        "rate": args.rate,
        "ffn_rate": args.ffn_rate.unwrap_or(args.rate),
        "importance": structured.then(|| format!("{:?}", args.importance).to_lowercase()),
        "obs": args.obs,
        "backend": selection.backend.name(),
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
        "layer_heads": pruned.layer_heads,
        "layer_dim_feedforward": pruned.layer_dim_feedforward,
        "sparsity": pruned.sparsity,
        "head_importance": pruned.importance.as_ref().map(|i| &i.heads),
        "reconstruction": reconstruction_json(&pruned.reconstruction),
        "fidelity_before_finetune": fidelity_json(&pruned.fidelity_before_finetune),
        "fidelity_after_finetune": if args.finetune_steps > 0 { fidelity_json(&after) } else { Value::Null },
        "distillation": (args.finetune_steps > 0).then(|| distillation_json(&args.distill, source, kind)),
        "finetune_steps": step_records(&pruned.finetune_steps),
        "seconds": seconds,
        "out": source.out,
    });
    if write_report(&staging, &report, staged)? {
        println!(
            "pruned ({}) {} -> {} parameters; heads per layer {:?}, feed-forward widths {:?}; sparsity of Linear weights {:.4}",
            report["method"], pruned.params_before, pruned.params_after, pruned.layer_heads, pruned.layer_dim_feedforward,
            report["sparsity"]["total"]["sparsity"].as_f64().unwrap_or(0.0)
        );
        if let Some(f) = &pruned.fidelity_before_finetune {
            println!("fidelity to the original (held-out): {}", describe(f));
        }
        if let (true, Some(f)) = (args.finetune_steps > 0, &after) {
            println!(
                "after {} distillation steps: {}",
                args.finetune_steps,
                describe(f)
            );
        }
        println!("wrote {} in {seconds:.1} s", source.out.display());
    }
    Ok(())
}

/// Prunes `student` (loaded from the same files as `teacher`) on `data` and writes it to `--out`.
fn prune_and_save<B: AutodiffBackend, D: DataSource>(
    args: &PruneArgs,
    source: &CompressSource,
    student: D::Model<B>,
    teacher: &D::Model<B::InnerBackend>,
    data: &D,
) -> Result<Pruned<()>> {
    let pruned = prune(student, teacher, data, &args.spec(), &mut Bars::default())?;
    let (model, pruned) = pruned.into_parts();
    model
        .save_dir(source.write_dir())
        .context("cannot write the pruned model")?;
    Ok(pruned)
}

/// The report's `reconstruction`: per refit Linear, the block's mean squared error before and
/// after (`null` without `--reconstruct`).
fn reconstruction_json(fits: &[LinearFit]) -> Value {
    if fits.is_empty() {
        return Value::Null;
    }
    fits.iter()
        .map(|f| {
            json!({
                "weight": format!("layers.{}.{}", f.layer, f.kind.torch_name()),
                "mse_before": f.mse[0],
                "mse_after": f.mse[1],
            })
        })
        .collect()
}
