//! `kiln train-classifier` and `kiln classify`: a classification head over a frozen text
//! encoder, trained supervised, with EDA copies, UDA consistency or pseudo-labels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::Backend;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_augment::eda::EdaConfig;
use kiln_augment::wordnet::WordNet;
use kiln_classify::classifier::{save_classifier, ClassifierManifest, EncoderRef, FORMAT_VERSION};
use kiln_classify::data::{read_labeled, LabelSet, LabeledText};
use kiln_classify::dataset::{build_training_set, DatasetSpec};
use kiln_classify::features::{EdaViews, FeatureCache, Features};
use kiln_classify::train::{argmax, predict_proba, train_head};
use kiln_classify::{
    ClassifierHeadConfig, ConsistencyConfig, Evaluation, PseudoLabelConfig, StepLog,
    TextClassifier, TrainConfig,
};
use serde_json::json;

use crate::augment::wordnet_dir;
use crate::backend_select::{select, BackendChoice};
use crate::embed::{announce, check_model_args, inside, load, read_lines, TextModelArgs};
use crate::info::same_file;
use crate::{usage, with_backend};

/// `--augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AugmentChoice {
    /// No augmented copies of the labelled texts.
    None,
    /// EDA (synonym replacement, insertion, swap, deletion; WordNet).
    Eda,
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
    /// Also train on augmented copies of the labelled texts.
    #[arg(long, value_enum, default_value_t = AugmentChoice::None)]
    pub augment: AugmentChoice,
    /// UDA consistency training on the unlabelled texts (their EDA views).
    #[arg(long, requires = "unlabeled")]
    pub consistency: bool,
    /// Pseudo-labels on the unlabelled texts.
    #[arg(long, requires = "unlabeled")]
    pub pseudo_labels: bool,
    /// Augmented views per text (EDA).
    #[arg(long, default_value_t = 4)]
    pub views: usize,
    /// EDA rate of every operation.
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f64,
    /// WordNet database folder (default: $KILN_WORDNET, else .cache/wordnet).
    #[arg(long)]
    pub wordnet: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long, default_value_t = TrainConfig::default().steps)]
    pub steps: usize,
    /// Labelled texts per step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub labeled_batch: usize,
    /// Unlabelled texts per step.
    #[arg(long, default_value_t = TrainConfig::default().unlabeled_batch_size)]
    pub unlabeled_batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Steps over which the unsupervised loss weights ramp up from 0.
    #[arg(long, default_value_t = TrainConfig::default().ramp_up_steps)]
    pub ramp_up_steps: usize,
    /// UDA: sharpening temperature of the targets.
    #[arg(long, default_value_t = ConsistencyConfig::default().temperature)]
    pub uda_temperature: f64,
    /// UDA: confidence below which an unlabelled text is left out.
    #[arg(long, default_value_t = ConsistencyConfig::default().threshold)]
    pub uda_threshold: f64,
    /// UDA: weight of the consistency loss.
    #[arg(long, default_value_t = ConsistencyConfig::default().weight)]
    pub uda_weight: f64,
    /// Pseudo-labels: confidence a prediction needs to become a label.
    #[arg(long, default_value_t = PseudoLabelConfig::default().threshold)]
    pub pseudo_threshold: f64,
    /// Pseudo-labels: weight of their loss.
    #[arg(long, default_value_t = PseudoLabelConfig::default().weight)]
    pub pseudo_weight: f64,
    /// Hidden width of the head (0: linear head).
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// Dropout in the head while training.
    #[arg(long, default_value_t = 0.1)]
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
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// A directory written by `kiln train-classifier`.
    #[arg(long)]
    pub model: PathBuf,
    /// The encoder's directory, if it moved since training (default: the recorded one).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Backend of the encoder: auto picks wgpu when a GPU adapter is present, else ndarray.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Read one text per line from this file (`-` for stdin) instead of arguments.
    #[arg(long, conflicts_with_all = ["texts", "eval"])]
    pub input_file: Option<PathBuf>,
    /// Evaluate on labelled texts (`label<TAB>text`): accuracy, macro-F1, per class.
    #[arg(long, conflicts_with = "texts")]
    pub eval: Option<PathBuf>,
    /// Print JSON (predictions with every class's probability, or the evaluation).
    #[arg(long)]
    pub json: bool,
    /// The texts.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn labeled_file(path: &Path) -> Result<Vec<LabeledText>> {
    read_labeled(path).map_err(|e| usage(e.to_string()))
}

fn check_train_args(args: &TrainClassifierArgs) -> Result<()> {
    check_model_args(&args.model)?;
    if args.steps == 0 || args.labeled_batch == 0 || args.unlabeled_batch == 0 {
        return Err(usage(
            "--steps, --labeled-batch and --unlabeled-batch must be at least 1",
        ));
    }
    if args.views == 0 {
        return Err(usage("--views must be at least 1"));
    }
    EdaConfig::uniform(args.alpha)
        .check()
        .map_err(|e| usage(format!("--alpha: {e}")))?;
    if args.unlabeled.is_some() && !args.consistency && !args.pseudo_labels {
        return Err(usage(
            "--unlabeled is only used with --consistency or --pseudo-labels",
        ));
    }
    let out = &args.out;
    if out.is_file() {
        return Err(usage(format!(
            "--out {} is a file, not a directory",
            out.display()
        )));
    }
    let model = &args.model.model;
    let same = matches!((out.canonicalize(), model.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same || inside(out, model) {
        return Err(usage(format!(
            "--out {} is the encoder's directory (or inside it): kiln never writes there",
            out.display()
        )));
    }
    let inputs = [
        Some(&args.labeled),
        args.unlabeled.as_ref(),
        args.eval.as_ref(),
    ];
    for input in inputs.into_iter().flatten() {
        for name in [
            kiln_classify::classifier::MANIFEST_FILE,
            kiln_classify::classifier::HEAD_FILE,
        ] {
            if same_file(&out.join(name), input) {
                return Err(usage(format!(
                    "--out {} would overwrite the input {}",
                    out.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

pub fn run_train_classifier(args: &TrainClassifierArgs) -> Result<()> {
    check_train_args(args)?;
    let labeled = labeled_file(&args.labeled)?;
    let labels = LabelSet::from_examples(&labeled)
        .map_err(|e| usage(format!("--labeled {}: {e}", args.labeled.display())))?;
    let unlabeled: Vec<String> = match &args.unlabeled {
        Some(path) => read_lines(path)?
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect(),
        None => Vec::new(),
    };
    if args.unlabeled.is_some() && unlabeled.is_empty() {
        return Err(usage("--unlabeled holds no texts"));
    }
    let eval = match &args.eval {
        Some(path) => {
            let examples = labeled_file(path)?;
            labels
                .indices(&examples)
                .map_err(|e| usage(format!("--eval {}: {e}", path.display())))?;
            Some(examples)
        }
        None => None,
    };
    let wordnet = if args.augment == AugmentChoice::Eda || args.consistency {
        let dir = wordnet_dir(args.wordnet.as_ref());
        Some(
            WordNet::load(&dir)
                .with_context(|| format!("cannot load WordNet from {}", dir.display()))?,
        )
    } else {
        None
    };
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| train::<B>(
        args,
        &labels,
        &labeled,
        &unlabeled,
        eval.as_deref(),
        wordnet.as_ref(),
        &device,
        selection.backend.name()
    ))
}

#[allow(clippy::too_many_arguments)]
fn train<B: Backend>(
    args: &TrainClassifierArgs,
    labels: &LabelSet,
    labeled: &[LabeledText],
    unlabeled: &[String],
    eval: Option<&[LabeledText]>,
    wordnet: Option<&WordNet>,
    device: &B::Device,
    backend: &str,
) -> Result<()> {
    let start = Instant::now();
    let encoder = load::<B>(&args.model, device)?;
    let views = wordnet.map(|wordnet| EdaViews {
        wordnet,
        config: EdaConfig::uniform(args.alpha),
        per_text: args.views,
        seed: args.seed,
    });
    let spec = DatasetSpec {
        labeled,
        unlabeled: if args.consistency || args.pseudo_labels {
            unlabeled
        } else {
            &[]
        },
        labeled_views: views.filter(|_| args.augment == AugmentChoice::Eda),
        unlabeled_views: views.filter(|_| args.consistency),
    };
    let mut cache = match &args.cache {
        Some(dir) => Some(
            FeatureCache::open(dir, &EncoderRef::of(&encoder).cache_key(), encoder.dim())
                .map_err(|e| usage(format!("--cache: {e}")))?,
        ),
        None => None,
    };
    let embed_bar = bar(
        0,
        "embedding {bar:30} {pos}/{len} texts, {per_sec}, eta {eta}",
    );
    let mut embedding = 0;
    let embedded = build_training_set(
        &encoder,
        labels,
        &spec,
        cache.as_mut(),
        |n| {
            embedding = n;
            embed_bar.set_length(n as u64)
        },
        |n| embed_bar.inc(n as u64),
    )?;
    embed_bar.finish_and_clear();
    let embed_s = start.elapsed().as_secs_f64();
    let views_count = embedded
        .texts
        .saturating_sub(labeled.len() + spec.unlabeled.len());
    eprintln!(
        "kiln: {} distinct texts ({} labelled, {} unlabelled, {views_count} augmented views); {embedding} embedded in {embed_s:.1} s on {backend}",
        embedded.texts,
        labeled.len(),
        spec.unlabeled.len()
    );

    let config = TrainConfig {
        steps: args.steps,
        batch_size: args.labeled_batch,
        unlabeled_batch_size: args.unlabeled_batch,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        seed: args.seed,
        augment: args.augment == AugmentChoice::Eda,
        consistency: args.consistency.then_some(ConsistencyConfig {
            weight: args.uda_weight,
            temperature: args.uda_temperature,
            threshold: args.uda_threshold,
        }),
        pseudo_labels: args.pseudo_labels.then_some(PseudoLabelConfig {
            weight: args.pseudo_weight,
            threshold: args.pseudo_threshold,
        }),
        ramp_up_steps: args.ramp_up_steps,
    };
    config
        .check(&embedded.set)
        .map_err(|e| usage(e.to_string()))?;
    let head_config = ClassifierHeadConfig::new(encoder.dim(), labels.len())
        .with_hidden(args.hidden)
        .with_dropout(args.dropout);
    head_config
        .check()
        .map_err(|e| usage(format!("--hidden/--dropout: {e}")))?;

    // The head is tiny: it trains on the CPU whatever backend embedded the texts.
    type Train = kiln::backend::CpuAutodiff;
    let cpu = kiln::backend::cpu_device();
    let head = head_config.init::<Train>(args.seed, &cpu)?;
    let train_bar = bar(
        args.steps as u64,
        "training {bar:30} {pos}/{len} steps {msg}",
    );
    let train_start = Instant::now();
    let (head, log) = train_head(head, &embedded.set, &config, &cpu, |s: &StepLog| {
        train_bar.inc(1);
        if s.step % 10 == 0 || s.step == 1 {
            train_bar.set_message(step_message(s));
        }
    })?;
    train_bar.finish_and_clear();
    let train_s = train_start.elapsed().as_secs_f64();
    let head = head.valid();
    let first = &log[0];
    let last = log.last().expect("at least one step");
    eprintln!(
        "kiln: trained {} steps in {train_s:.1} s; first step {}; last step {}",
        log.len(),
        step_message(first),
        step_message(last)
    );

    let evaluation = match eval {
        Some(examples) => {
            let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
            let features = match cache.as_mut() {
                Some(cache) => cache.features(&encoder, &texts, |_| {}, |_| {}),
                None => encoder
                    .embed(&texts)
                    .map(|rows| Features::new(encoder.dim(), rows.concat()))
                    .map_err(Into::into),
            }
            .context("embedding the --eval texts")?;
            let predicted = argmax(&predict_proba(&head, &features)?);
            let gold = labels.indices(examples)?;
            let evaluation = Evaluation::new(&gold, &predicted, labels.names());
            print_evaluation(&evaluation);
            Some(evaluation)
        }
        None => None,
    };

    if let Some(cache) = &cache {
        cache
            .save()
            .with_context(|| format!("cannot write {}", cache.path().display()))?;
    }

    let method = match (config.augment, args.consistency, args.pseudo_labels) {
        (false, false, false) => "supervised",
        (true, false, false) => "supervised+augmentation",
        (_, true, false) => "consistency",
        (_, false, true) => "pseudo-labels",
        (_, true, true) => "consistency+pseudo-labels",
    };
    let mean =
        |steps: &[StepLog]| steps.iter().map(|s| s.supervised).sum::<f64>() / steps.len() as f64;
    let k = log.len().min(10);
    let training = json!({
        "method": method,
        "labeled": args.labeled,
        "labeled_texts": labeled.len(),
        "unlabeled": args.unlabeled,
        "unlabeled_texts": spec.unlabeled.len(),
        "views_per_text": if views.is_some() { Some(args.views) } else { None },
        "eda_alpha": if views.is_some() { Some(args.alpha) } else { None },
        "distinct_texts": embedded.texts,
        "embedded_texts": embedding,
        "config": config,
        "backend": backend,
        "embed_seconds": embed_s,
        "train_seconds": train_s,
        "supervised_loss_first_10_steps": mean(&log[..k]),
        "supervised_loss_last_10_steps": mean(&log[log.len() - k..]),
        "last_step": last,
        "evaluation": evaluation,
    });
    let manifest = ClassifierManifest {
        kiln_classifier: FORMAT_VERSION,
        labels: labels.names().to_vec(),
        head: head_config,
        encoder: EncoderRef::of(&encoder),
        training: training.clone(),
    };
    save_classifier(&args.out, &manifest, head)
        .with_context(|| format!("cannot write the classifier to {}", args.out.display()))?;
    eprintln!("kiln: wrote {}", args.out.display());
    if args.json {
        println!(
            "{}",
            json!({"out": args.out, "labels": labels.names(), "training": training})
        );
    }
    Ok(())
}

fn step_message(s: &StepLog) -> String {
    let mut m = format!("loss {:.4} (supervised {:.4}", s.loss, s.supervised);
    if let (Some(c), Some(kept)) = (s.consistency, s.consistency_kept) {
        m += &format!(", consistency {c:.4} on {:.0}%", kept * 100.0);
    }
    if let (Some(p), Some(kept)) = (s.pseudo_label, s.pseudo_labeled) {
        m += &format!(", pseudo {p:.4} on {:.0}%", kept * 100.0);
    }
    m + ")"
}

fn print_evaluation(e: &Evaluation) {
    eprintln!(
        "kiln: {} texts: accuracy {:.4}, macro-F1 {:.4}",
        e.count, e.accuracy, e.macro_f1
    );
    let width = e
        .classes
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(5)
        .max(5);
    eprintln!("  {:width$}  precision  recall     f1  support", "class");
    for c in &e.classes {
        eprintln!(
            "  {:width$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
}

pub fn run_classify(args: &ClassifyArgs) -> Result<()> {
    if !args.model.is_dir() {
        return Err(usage(format!(
            "--model {}: not a directory (write one with kiln train-classifier)",
            args.model.display()
        )));
    }
    let eval = args.eval.as_deref().map(labeled_file).transpose()?;
    let texts = match (&args.input_file, &eval) {
        (Some(path), _) => read_lines(path)?,
        (None, Some(_)) => Vec::new(),
        (None, None) if args.texts.is_empty() => {
            return Err(usage(
                "give texts as arguments, --input-file FILE or --eval FILE",
            ))
        }
        (None, None) => args.texts.clone(),
    };
    let selection = select(args.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| {
        let classifier =
            TextClassifier::<B>::load(&args.model, args.encoder.as_deref(), &device)
                .with_context(|| format!("cannot load the classifier {}", args.model.display()))?;
        let n = eval.as_ref().map_or(texts.len(), Vec::len);
        let progress = bar(n as u64, "{bar:30} {pos}/{len} texts, {per_sec}, eta {eta}");
        if let Some(examples) = &eval {
            let evaluation = classifier
                .evaluate(examples, |k| progress.inc(k as u64))
                .map_err(|e| usage(format!("--eval: {e}")))?;
            progress.finish_and_clear();
            if args.json {
                println!("{}", serde_json::to_string(&evaluation)?);
            } else {
                print_evaluation(&evaluation);
                println!(
                    "accuracy\t{:.4}\nmacro_f1\t{:.4}",
                    evaluation.accuracy, evaluation.macro_f1
                );
            }
            return Ok(());
        }
        let predictions = classifier
            .predict(&texts, |k| progress.inc(k as u64))
            .context("classifying failed")?;
        progress.finish_and_clear();
        if args.json {
            println!(
                "{}",
                json!({"labels": classifier.labels.names(), "predictions": predictions})
            );
        } else {
            for p in &predictions {
                println!("{}\t{:.4}", p.label, p.confidence);
            }
        }
        Ok(())
    })
}
