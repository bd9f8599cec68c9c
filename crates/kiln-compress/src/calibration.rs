//! Calibration data: batches of encoder inputs that data-dependent compression (activation
//! importance, layer-wise reconstruction) runs the model on, and the capturing forward pass.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{EncoderInput, EncoderOutput, KeyPaddingMask, TransformerEncoder};

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
        input = input.key_padding_mask(KeyPaddingMask::from_lengths(
            lengths,
            seq,
            &batch.src.device(),
        ));
    }
    encoder.run(input)
}
