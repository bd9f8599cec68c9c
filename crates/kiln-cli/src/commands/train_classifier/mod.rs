//! `kiln train-classifier`: a classification head over a frozen text encoder, trained
//! supervised, with EDA or back-translated copies, UDA consistency or pseudo-labels.

mod args;
mod training;

pub use args::{AugmentChoice, TrainClassifierArgs};

use anyhow::Result;
use kiln_augment::eda::EdaConfig;
use kiln_classify::data::LabelSet;

use crate::backend_select::{announce, select};
use crate::commands::augment::pivot_translator;
use crate::commands::classify::labeled_file;
use crate::common::{inside, load_wordnet_if, read_lines, same_file};
use crate::text_model;
use crate::usage::usage;
use crate::with_backend;

fn check_train_args(args: &TrainClassifierArgs) -> Result<()> {
    text_model::check(&args.model)?;
    if args.steps == 0 || args.labeled_batch == 0 || args.unlabeled_batch == 0 {
        return Err(usage(
            "--steps, --labeled-batch and --unlabeled-batch must be at least 1",
        ));
    }
    if args.views == 0 {
        return Err(usage("--views must be at least 1"));
    }
    if args.augment.len() > 1 && args.augments(AugmentChoice::None) {
        return Err(usage(
            "--augment none cannot be combined with other augmentations",
        ));
    }
    if has_duplicates(&args.augment) || has_duplicates(&args.uda_augment) {
        return Err(usage(
            "--augment and --uda-augment name each method at most once",
        ));
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
    let model = &args.model.model;
    let same = matches!((out.canonicalize(), model.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same || inside(out, model) {
        return Err(usage(format!(
            "--out {} is the encoder's directory (or inside it): kiln never writes there",
            out.display()
        )));
    }
    kiln::atomic::check_new_dir(out, args.force).map_err(|e| usage(format!("--out {e}")))?;
    let inputs = [
        Some(&args.labeled),
        args.unlabeled.as_ref(),
        args.eval.as_ref(),
        args.cache.as_ref(),
    ];
    for input in inputs.into_iter().flatten() {
        // `--force` replaces --out whole: it must not hold an input.
        if out.exists() && inside(input, out) {
            return Err(usage(format!(
                "--out {} holds the input {}: kiln never writes over its inputs",
                out.display(),
                input.display()
            )));
        }
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

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, x)| items[..i].contains(x))
}

pub fn run(args: &TrainClassifierArgs) -> Result<()> {
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
    let wordnet = load_wordnet_if(args.needs_wordnet(), args.wordnet.as_ref())?;
    // Apertium and its pairs are checked before the model is loaded.
    let back_translation = if args.back_translates() {
        Some(pivot_translator(
            &args.pivot,
            kiln_augment::apertium::DEFAULT_BATCH_LINES,
        )?)
    } else {
        None
    };
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| training::train::<B>(
        args,
        &labels,
        &labeled,
        &unlabeled,
        eval.as_deref(),
        wordnet.as_ref(),
        back_translation
            .as_ref()
            .map(|(pivots, apertium)| (pivots.as_slice(), apertium)),
        &device,
        selection.backend.name()
    ))
}
