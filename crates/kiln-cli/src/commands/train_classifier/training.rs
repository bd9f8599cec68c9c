//! The training run of `kiln train-classifier` on one backend: embed the texts (through the
//! feature cache), train the head, evaluate it, and write the classifier.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::Backend;
use kiln::atomic::StagedDir;
use kiln_augment::apertium::Apertium;
use kiln_augment::eda::EdaConfig;
use kiln_augment::wordnet::WordNet;
use kiln_classify::classifier::{save_classifier, ClassifierManifest, EncoderRef, FORMAT_VERSION};
use kiln_classify::data::{LabelSet, LabeledText};
use kiln_classify::dataset::{build_training_set, DatasetSpec};
use kiln_classify::features::{EdaViews, FeatureCache, Features};
use kiln_classify::train::{argmax, predict_proba, train_head};
use kiln_classify::{
    Augmentation, BackTranslationViews, ClassifierHeadConfig, ConsistencyConfig, Evaluation,
    PseudoLabelConfig, StepLog, TrainConfig, TranslationCache,
};
use serde_json::json;

use super::args::{AugmentChoice, TrainClassifierArgs, UdaAugment};
use crate::commands::augment::SOURCE;
use crate::commands::classify::print_evaluation;
use crate::common::progress_bar;
use crate::text_model::load;
use crate::usage::usage;

/// Trains and writes the classifier of `args` with the text model on backend `B`; `wordnet`
/// is loaded when EDA views are asked for, `back_translation` (the pivots and an Apertium
/// that has their pairs) when back-translated ones are.
#[allow(clippy::too_many_arguments)]
pub fn train<B: Backend>(
    args: &TrainClassifierArgs,
    labels: &LabelSet,
    labeled: &[LabeledText],
    unlabeled: &[String],
    eval: Option<&[LabeledText]>,
    wordnet: Option<&WordNet>,
    back_translation: Option<(&[String], &Apertium)>,
    device: &B::Device,
    backend: &str,
) -> Result<()> {
    let start = Instant::now();
    let encoder = load::<B>(&args.model, device)?;
    let eda = wordnet.map(|wordnet| EdaViews {
        wordnet,
        config: EdaConfig::uniform(args.alpha),
        per_text: args.views,
        seed: args.seed,
    });
    // Translations go through a cache beside the embeddings': a second run translates nothing.
    let translations = match back_translation {
        Some((_, apertium)) => Some(
            TranslationCache::open(args.cache.as_deref(), &apertium.version()?, apertium)
                .map_err(|e| usage(format!("--cache: {e}")))?,
        ),
        None => None,
    };
    let back_translated = match (&translations, back_translation) {
        (Some(cache), Some((pivots, _))) => Some(BackTranslationViews {
            translator: cache,
            source: SOURCE,
            pivots,
        }),
        _ => None,
    };
    let eda_views = || Augmentation::Eda(eda.expect("WordNet is loaded for EDA views"));
    let bt_views = || {
        Augmentation::BackTranslation(
            back_translated.expect("Apertium is checked for back-translated views"),
        )
    };
    let mut labeled_views = Vec::new();
    if args.augments(AugmentChoice::Eda) {
        labeled_views.push(eda_views());
    }
    if args.augments(AugmentChoice::BackTranslate) {
        labeled_views.push(bt_views());
    }
    let mut unlabeled_views = Vec::new();
    if args.uda_augments(UdaAugment::Eda) {
        unlabeled_views.push(eda_views());
    }
    if args.uda_augments(UdaAugment::BackTranslate) {
        unlabeled_views.push(bt_views());
    }
    let spec = DatasetSpec {
        labeled,
        unlabeled: if args.consistency || args.pseudo_labels {
            unlabeled
        } else {
            &[]
        },
        labeled_views: &labeled_views,
        unlabeled_views: &unlabeled_views,
    };
    let mut cache = match &args.cache {
        Some(dir) => Some(
            FeatureCache::open(dir, &EncoderRef::of(&encoder).cache_key(), encoder.dim())
                .map_err(|e| usage(format!("--cache: {e}")))?,
        ),
        None => None,
    };
    let embed_bar = progress_bar(
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
    if let Some(cache) = &translations {
        // Saved before training: the translations are kept even if a later step fails.
        cache.save().with_context(|| {
            format!(
                "cannot write the translation cache {}",
                cache
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        })?;
        eprintln!(
            "kiln: back-translation through {}: {} translations, {} by Apertium now, the rest from the cache",
            args.pivot
                .iter()
                .map(|p| p.code())
                .collect::<Vec<_>>()
                .join(", "),
            cache.looked_up(),
            cache.translated()
        );
    }
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
        augment: !labeled_views.is_empty(),
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
    let train_bar = progress_bar(
        args.steps as u64,
        "training {bar:30} {pos}/{len} steps {msg}",
    );
    let train_start = Instant::now();
    let (head, log) = train_head(head, &embedded.set, &config, &cpu, |s: &StepLog| {
        train_bar.inc(1);
        if s.step.is_multiple_of(10) || s.step == 1 {
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
        "augment": names(&args.augment),
        "uda_augment": if args.consistency { Some(names(&args.uda_augment)) } else { None },
        "views_per_text": if eda.is_some() { Some(args.views) } else { None },
        "eda_alpha": if eda.is_some() { Some(args.alpha) } else { None },
        "pivots": back_translation.map(|(pivots, _)| pivots),
        "translator": translation_cache_summary(translations.as_ref()),
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
    let staged = StagedDir::new(&args.out, args.force)?;
    save_classifier(staged.path(), &manifest, head)
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(staged.commit()?))
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

/// The translator and how many translations it made in this run (the rest came from the cache).
fn translation_cache_summary(cache: Option<&TranslationCache<'_>>) -> serde_json::Value {
    match cache {
        Some(cache) => json!({
            "translations": cache.looked_up(),
            "translated_now": cache.translated(),
        }),
        None => serde_json::Value::Null,
    }
}

/// The flag values of `items`, as typed on the command line.
fn names<T: clap::ValueEnum>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item.to_possible_value())
        .map(|value| value.get_name().to_string())
        .collect()
}
