//! How a student learns from its teacher: the distillation flags `kiln prune` and
//! `kiln distill` share, and the settings they make.

use clap::{Args, ValueEnum};
use kiln_compress::distill::FinetuneConfig;
use kiln_compress::text::TextLoss;

/// How a student learns from its teacher (`kiln prune --finetune-steps`, `kiln distill`).
#[derive(Args, Debug, Clone)]
pub struct DistillSettings {
    /// AdamW learning rate of the distillation.
    #[arg(long, default_value_t = 5e-5, value_parser = crate::limits::positive, allow_negative_numbers = true)]
    pub lr: f64,
    /// Evaluate on the held-out set every N steps (0: before and after only).
    #[arg(long, default_value_t = 0, value_parser = crate::limits::count::<0, { crate::limits::MAX_STEPS }>)]
    pub eval_every: usize,
    /// Text models: what distillation matches; `cosine,layers` adds both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cosine")]
    pub distill_loss: Vec<DistillLossChoice>,
    /// Keep dropout on in the student while distilling (off by default: the teacher is
    /// deterministic, and dropout noise made distillation drift away from it).
    #[arg(long)]
    pub dropout: bool,
}

/// `--distill-loss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistillLossChoice {
    /// 1 - cosine of the pooled sentence embeddings.
    Cosine,
    /// MSE of every layer's hidden states on the real tokens (TinyBERT).
    Layers,
}

impl DistillSettings {
    /// The text distillation's loss terms (`--distill-loss`).
    pub fn text_losses(&self) -> Vec<TextLoss> {
        self.distill_loss
            .iter()
            .map(|choice| match choice {
                DistillLossChoice::Cosine => TextLoss::Cosine,
                DistillLossChoice::Layers => TextLoss::Layers,
            })
            .collect()
    }

    /// The distillation of `steps` steps seeded by `seed`: warm-up over the first tenth of the
    /// steps (at most 100).
    pub fn finetune_config(&self, steps: usize, seed: u64) -> FinetuneConfig {
        FinetuneConfig::new()
            .with_steps(steps)
            .with_learning_rate(self.lr)
            .with_eval_every(self.eval_every)
            .with_seed(seed)
            .with_warmup_steps((steps / 10).min(100))
            .with_dropout(self.dropout)
    }
}
