//! The forward pass without padding: the real tokens of a batch packed end to end into one
//! sequence `[1, N, E]`, attention run per sequence, and the outputs unpacked to `[B, S, E]`
//! with zeros at padded positions (as PyTorch's nested-tensor fast path returns).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::bias::AttentionBias;
use crate::encoder::TransformerEncoder;
use crate::execution::Execution;
use crate::input::{EncoderInput, EncoderOutput};
use crate::layout::to_batch_first;

impl<B: Backend> TransformerEncoder<B> {
    /// The forward pass without padding: real tokens packed into `[1, N, E]`.
    pub(crate) fn run_packed(
        &self,
        input: EncoderInput<B>,
        lengths: Vec<usize>,
        execution: &Execution,
    ) -> EncoderOutput<B> {
        let batch_first = self.config.batch_first;
        let x = to_batch_first(input.src, batch_first);
        let [batch, seq, d_model] = x.dims();
        let device = x.device();
        // [B, S, E] -> [1, N, E]: the first len_b rows of each sequence, end to end.
        let pieces: Vec<Tensor<B, 3>> = lengths
            .iter()
            .enumerate()
            .filter(|(_, &len)| len > 0)
            .map(|(b, &len)| x.clone().narrow(0, b, 1).narrow(1, 0, len))
            .collect();
        if pieces.is_empty() {
            // Every sequence is empty: zeros everywhere, as for any padded position.
            let zeros = to_batch_first(Tensor::zeros([batch, seq, d_model], &device), batch_first);
            return EncoderOutput {
                hidden_states: input
                    .output_hidden_states
                    .then(|| vec![zeros.clone(); self.layers.len()]),
                output: zeros,
                attentions: None,
                linear_inputs: None,
            };
        }
        let bias = AttentionBias::packed(
            lengths.clone(),
            input.is_causal,
            execution.attention_kernel.is_fused::<B>(&device),
        );
        let unpack = |packed: Tensor<B, 3>| -> Tensor<B, 3> {
            // [1, N, E] -> [B, S, E], zeros at padded positions.
            let mut offset = 0;
            let rows: Vec<Tensor<B, 3>> = lengths
                .iter()
                .map(|&len| {
                    let mut parts = Vec::with_capacity(2);
                    if len > 0 {
                        parts.push(packed.clone().narrow(1, offset, len));
                    }
                    if len < seq {
                        parts.push(Tensor::zeros([1, seq - len, d_model], &device));
                    }
                    offset += len;
                    Tensor::cat(parts, 1)
                })
                .collect();
            to_batch_first(Tensor::cat(rows, 0), batch_first)
        };
        let mut x = Tensor::cat(pieces, 1);
        let mut hidden_states = input.output_hidden_states.then(Vec::new);
        for layer in &self.layers {
            let y = layer.forward_batch_first(x, &bias, false).output;
            if let Some(all) = hidden_states.as_mut() {
                all.push(unpack(y.clone()));
            }
            x = y;
        }
        if let Some(norm) = &self.norm {
            x = norm.forward(x);
        }
        EncoderOutput {
            output: unpack(x),
            attentions: None,
            hidden_states,
            linear_inputs: None,
        }
    }
}
