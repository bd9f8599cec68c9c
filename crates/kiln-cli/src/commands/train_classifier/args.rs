//! The flags of `kiln train-classifier`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kiln_classify::{ConsistencyConfig, PseudoLabelConfig, TrainConfig};

use crate::commands::augment::Pivot;
use crate::text_model::TextModelArgs;

/// `--augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AugmentChoice {
    /// No augmented copies of the labelled texts.
    None,
    /// EDA (synonym replacement, insertion, swap, deletion; WordNet).
    Eda,
    /// Back-translation through Apertium (one copy per --pivot).
    BackTranslate,
}

/// `--uda-augment`: how consistency training augments the unlabelled texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UdaAugment {
    /// EDA views (--views of them).
    Eda,
    /// Back-translated views through Apertium (one per --pivot), as in UDA's paper.
    BackTranslate,
}

#[derive(Args, Debug)]
pub struct TrainClassifierArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// Labelled training texts: one `label<TAB>text` per line.
    #[arg(long)]
    pub labeled: PathBuf,
    /// Unlabelled texts, one per line (for --consistency and --pseudo-labels).
    #[arg(long)]
    pub unlabeled: Option<PathBuf>,
    /// Also train on augmented copies of the labelled texts (comma-separated to combine:
    /// eda,back-translate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
    pub augment: Vec<AugmentChoice>,
    /// UDA consistency training on the unlabelled texts (their augmented views, see
    /// --uda-augment).
    #[arg(long, requires = "unlabeled")]
    pub consistency: bool,
    /// The augmented views of the unlabelled texts for --consistency (comma-separated to
    /// combine).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "eda",
        requires = "consistency"
    )]
    pub uda_augment: Vec<UdaAugment>,
    /// Pivot languages of back-translation, comma-separated, one view each (Apertium pairs
    /// with English, as installed).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "spa")]
    pub pivot: Vec<Pivot>,
    /// Pseudo-labels on the unlabelled texts.
    #[arg(long, requires = "unlabeled")]
    pub pseudo_labels: bool,
    /// Augmented views per text (EDA).
    #[arg(long, default_value_t = 4, value_parser = crate::limits::count::<1, { crate::limits::MAX_COPIES }>)]
    pub views: usize,
    /// EDA rate of every operation.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub alpha: f64,
    /// WordNet database folder (default: $KILN_WORDNET, else .cache/wordnet).
    #[arg(long)]
    pub wordnet: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long, default_value_t = TrainConfig::default().steps, value_parser = crate::limits::count::<1, { crate::limits::MAX_STEPS }>)]
    pub steps: usize,
    /// Labelled texts per step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub labeled_batch: usize,
    /// Unlabelled texts per step.
    #[arg(long, default_value_t = TrainConfig::default().unlabeled_batch_size, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub unlabeled_batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate, value_parser = crate::limits::positive, allow_negative_numbers = true)]
    pub learning_rate: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay, value_parser = crate::limits::non_negative, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Steps over which the unsupervised loss weights ramp up from 0.
    #[arg(long, default_value_t = TrainConfig::default().ramp_up_steps, value_parser = crate::limits::count::<0, { crate::limits::MAX_STEPS }>)]
    pub ramp_up_steps: usize,
    /// UDA: sharpening temperature of the targets.
    #[arg(long, default_value_t = ConsistencyConfig::default().temperature, value_parser = crate::limits::positive, allow_negative_numbers = true)]
    pub uda_temperature: f64,
    /// UDA: confidence below which an unlabelled text is left out.
    #[arg(long, default_value_t = ConsistencyConfig::default().threshold, value_parser = crate::limits::unit_interval, allow_negative_numbers = true)]
    pub uda_threshold: f64,
    /// UDA: weight of the consistency loss.
    #[arg(long, default_value_t = ConsistencyConfig::default().weight, value_parser = crate::limits::non_negative, allow_negative_numbers = true)]
    pub uda_weight: f64,
    /// Pseudo-labels: confidence a prediction needs to become a label.
    #[arg(long, default_value_t = PseudoLabelConfig::default().threshold, value_parser = crate::limits::unit_interval, allow_negative_numbers = true)]
    pub pseudo_threshold: f64,
    /// Pseudo-labels: weight of their loss.
    #[arg(long, default_value_t = PseudoLabelConfig::default().weight, value_parser = crate::limits::non_negative, allow_negative_numbers = true)]
    pub pseudo_weight: f64,
    /// Hidden width of the head (0: linear head).
    #[arg(long, default_value_t = 0, value_parser = crate::limits::count::<0, { crate::limits::MAX_WIDTH }>)]
    pub hidden: usize,
    /// Dropout in the head while training.
    #[arg(long, default_value_t = 0.1, value_parser = crate::limits::below_one, allow_negative_numbers = true)]
    pub dropout: f64,
    /// Seed of the views, batches and initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Labelled held-out texts (`label<TAB>text`) to evaluate on after training.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Keep the embeddings of every text (and view) here and reuse them in later runs with the
    /// same encoder settings: only new texts are embedded.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output directory: classifier.json and head.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists and is not empty (the whole directory: never merged into).
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

impl TrainClassifierArgs {
    /// Whether the labelled texts get `choice`'s copies.
    pub fn augments(&self, choice: AugmentChoice) -> bool {
        self.augment.contains(&choice)
    }

    /// Whether consistency training uses `choice`'s views of the unlabelled texts.
    pub fn uda_augments(&self, choice: UdaAugment) -> bool {
        self.consistency && self.uda_augment.contains(&choice)
    }

    /// Whether anything is back-translated (Apertium is needed).
    pub fn back_translates(&self) -> bool {
        self.augments(AugmentChoice::BackTranslate) || self.uda_augments(UdaAugment::BackTranslate)
    }

    /// Whether anything gets EDA views (WordNet is needed).
    pub fn needs_wordnet(&self) -> bool {
        self.augments(AugmentChoice::Eda) || self.uda_augments(UdaAugment::Eda)
    }
}
