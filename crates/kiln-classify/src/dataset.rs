//! From texts to a [`TrainingSet`]: make the augmented views (EDA, back-translation), embed
//! everything once.

use burn::tensor::backend::Backend;
use kiln_text::TextEncoder;

use crate::data::{LabelSet, LabeledText};
use crate::error::{ClassifyError, Result};
use crate::features::{FeatureCache, TextTable};
use crate::train::{LabeledRow, TrainingSet, UnlabeledRow};
use crate::views::{views, Augmentation};

/// What to embed: the labelled and unlabelled texts and which of them get augmented views.
pub struct DatasetSpec<'a> {
    /// Labelled texts.
    pub labeled: &'a [LabeledText],
    /// Unlabelled texts.
    pub unlabeled: &'a [String],
    /// How the labelled texts' views are made (for training on augmented copies; none: no
    /// views).
    pub labeled_views: &'a [Augmentation<'a>],
    /// How the unlabelled texts' views are made (for consistency training).
    pub unlabeled_views: &'a [Augmentation<'a>],
}

/// How many texts a [`build_training_set`] call embeds (for a progress bar's length).
pub struct Embedded {
    /// The training set.
    pub set: TrainingSet,
    /// Distinct texts (originals and views).
    pub texts: usize,
}

/// Draws the views, then embeds every distinct text with `encoder` (only those `cache` lacks,
/// when given). `on_texts(n)` is called once with the number of texts about to be embedded,
/// `progress(n)` after each batch.
pub fn build_training_set<B: Backend>(
    encoder: &TextEncoder<B>,
    labels: &LabelSet,
    spec: &DatasetSpec<'_>,
    cache: Option<&mut FeatureCache>,
    on_texts: impl FnOnce(usize),
    progress: impl FnMut(usize),
) -> Result<Embedded> {
    let classes = labels.indices(spec.labeled)?;
    let labeled_texts: Vec<String> = spec.labeled.iter().map(|e| e.text.clone()).collect();
    let labeled_views = views(spec.labeled_views, &labeled_texts, 0)?;
    let unlabeled_views = views(spec.unlabeled_views, spec.unlabeled, labeled_texts.len())?;
    let mut table = TextTable::default();
    let labeled = labeled_texts
        .iter()
        .zip(&classes)
        .zip(&labeled_views)
        .map(|((text, &label), views)| LabeledRow {
            row: table.row(text),
            label,
            views: views.iter().map(|v| table.row(v)).collect(),
        })
        .collect();
    let unlabeled = spec
        .unlabeled
        .iter()
        .zip(&unlabeled_views)
        .map(|(text, views)| UnlabeledRow {
            row: table.row(text),
            views: views.iter().map(|v| table.row(v)).collect(),
        })
        .collect();
    if table.texts().is_empty() {
        return Err(ClassifyError::Invalid("no texts to train on".into()));
    }
    let features = table.embed(encoder, cache, on_texts, progress)?;
    Ok(Embedded {
        texts: table.texts().len(),
        set: TrainingSet {
            features,
            labeled,
            unlabeled,
            num_classes: labels.len(),
        },
    })
}
