//! Calibration data: batches of encoder inputs that data-dependent compression (activation
//! importance, OBS, layer-wise reconstruction) runs the model on, the capturing forward pass,
//! and [`statistics`], which gathers what the pruning choice needs in one pass.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{EncoderInput, EncoderOutput, KeyPaddingMask, TransformerEncoder};

use crate::importance::{ActivationSums, Importance};
use crate::obs::InputGrams;

/// One calibration batch: the encoder's input in the model's layout and, per sequence, its
/// number of real tokens (the rest is padding; `None`: no padding).
#[derive(Debug, Clone)]
pub struct CalibrationBatch<B: Backend> {
    /// `[B, S, E]` if the model is batch-first, else `[S, B, E]`.
    pub src: Tensor<B, 3>,
    /// Real tokens per sequence.
    pub lengths: Option<Vec<usize>>,
}

/// `[B, S, E]` from the model's layout.
pub(crate) fn batch_first<B: Backend>(t: Tensor<B, 3>, batch_first: bool) -> Tensor<B, 3> {
    if batch_first {
        t
    } else {
        t.swap_dims(0, 1)
    }
}

/// The forward pass that calibration reads: every layer's Linear inputs and hidden states.
pub fn capture<B: Backend>(
    encoder: &TransformerEncoder<B>,
    batch: &CalibrationBatch<B>,
) -> kiln::Result<EncoderOutput<B>> {
    let mut input = EncoderInput::new(batch.src.clone())
        .output_linear_inputs(true)
        .output_hidden_states(true);
    if let Some(lengths) = &batch.lengths {
        let seq = batch_first(batch.src.clone(), encoder.config.batch_first).dims()[1];
        input = input.key_padding_mask(KeyPaddingMask::from_lengths(lengths, seq));
    }
    encoder.run(input)
}

/// `x` `[N, k]` with a column of ones appended (the bias input) and the rows where `keep`
/// `[N, 1]` is 0 (padding) zeroed: `[N, k + 1]`, whose `XᵀX` OBS and the refit accumulate.
pub(crate) fn with_bias_column<B: Backend>(x: Tensor<B, 2>, keep: &Tensor<B, 2>) -> Tensor<B, 2> {
    Tensor::cat(vec![x, Tensor::ones_like(keep)], 1) * keep.clone()
}

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
) -> crate::Result<CalibrationStatistics> {
    if !importance && !grams {
        return Ok(CalibrationStatistics::default());
    }
    if batches.is_empty() {
        return Err(crate::CompressError::Invalid(
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
