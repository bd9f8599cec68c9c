//! Calibration statistics: what the choice of heads and neurons to prune reads from the original
//! model on calibration data ([`CalibrationBatch`]es), gathered by [`statistics`] in one pass.

use burn::tensor::backend::Backend;
use kiln::TransformerEncoder;

pub use crate::calibration_batch::{capture, CalibrationBatch};
use crate::error::{CompressError, Result};
use crate::importance::{ActivationSums, Importance};
use crate::obs::InputGrams;

/// What [`statistics`] gathers from the original model; each is `None` unless asked for.
#[derive(Debug, Clone, Default)]
pub struct CalibrationStatistics {
    /// Activation importance ([`crate::importance::activation_importance`]).
    pub importance: Option<Importance>,
    /// OBS's Gram matrices ([`InputGrams::collect`]).
    pub grams: Option<InputGrams>,
}

/// Activation importance (if `importance`) and OBS's Gram matrices (if `grams`) of `encoder`
/// over `batches`, from one capturing forward per batch; `progress()` after each batch.
pub fn statistics<B: Backend>(
    encoder: &TransformerEncoder<B>,
    batches: &[CalibrationBatch<B>],
    importance: bool,
    grams: bool,
    mut progress: impl FnMut(),
) -> Result<CalibrationStatistics> {
    if !importance && !grams {
        return Ok(CalibrationStatistics::default());
    }
    if batches.is_empty() {
        return Err(CompressError::Invalid(
            "activation importance and OBS need calibration data".into(),
        ));
    }
    let mut sums = importance.then(|| ActivationSums::new(encoder));
    let mut gram_sums = grams.then(|| InputGrams::zeros(encoder));
    for batch in batches {
        let out = capture(encoder, batch)?;
        if let Some(sums) = &mut sums {
            sums.add(encoder, batch, &out);
        }
        if let Some(gram_sums) = &mut gram_sums {
            gram_sums.add(batch, &out);
        }
        progress();
    }
    Ok(CalibrationStatistics {
        importance: sums.map(|s| s.finish(encoder)),
        grams: gram_sums,
    })
}
