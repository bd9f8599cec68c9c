//! Calibration batches: the encoder inputs that data-dependent compression (Wanda, activation
//! importance, OBS, layer-wise reconstruction) runs the original model on, the capturing forward
//! pass they all read, and the per-token helpers they share. Every method builds on this module;
//! it imports none of them.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use kiln::{EncoderInput, EncoderOutput, KeyPaddingMask, TransformerEncoder};

use kiln::layout::to_batch_first as batch_first;

/// One calibration batch: the encoder's input in the model's layout and, per sequence, its
/// number of real tokens (the rest is padding; `None`: no padding).
#[derive(Debug, Clone)]
pub struct CalibrationBatch<B: Backend> {
    /// `[B, S, E]` if the model is batch-first, else `[S, B, E]`.
    pub src: Tensor<B, 3>,
    /// Real tokens per sequence.
    pub lengths: Option<Vec<usize>>,
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

/// `[B, S, 1]`: 1 on real tokens (the first `lengths[b]` of sequence `b`; all when `lengths`
/// is `None`), 0 on padding; and the number of real tokens.
pub(crate) fn token_mask<B: Backend>(
    lengths: Option<&[usize]>,
    batch: usize,
    seq: usize,
    device: &B::Device,
) -> (Tensor<B, 3>, usize) {
    let keep: Vec<f32> = (0..batch)
        .flat_map(|b| {
            let len = lengths.map_or(seq, |l| l.get(b).copied().unwrap_or(seq));
            (0..seq).map(move |s| if s < len { 1.0 } else { 0.0 })
        })
        .collect();
    let real = keep.iter().filter(|&&k| k > 0.0).count();
    let keep = Tensor::from_data(TensorData::new(keep, [batch, seq, 1]), device);
    (keep, real)
}
