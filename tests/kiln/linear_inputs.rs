//! `EncoderInput::output_linear_inputs`: the captured inputs of each layer's Linear layers are
//! the ones the forward pass used (rebuilding every layer's output from them gives the layer's
//! output), for post- and pre-norm, and asking for them leaves the output unchanged.

use burn::tensor::activation::gelu;
use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, Cpu};
use kiln::{
    Activation, EncoderInput, HostTensor, KeyPaddingMask, LinearInputs, TransformerEncoderConfig,
};
use kiln_tests::max_abs_diff;

fn close(a: Tensor<Cpu, 3>, b: Tensor<Cpu, 3>, what: &str) {
    let err = max_abs_diff(&HostTensor::from_tensor(a), &HostTensor::from_tensor(b));
    assert!(err < 1e-5, "{what}: max abs diff {err}");
}

#[test]
fn captured_linear_inputs_rebuild_every_layer() {
    let device = cpu_device();
    for norm_first in [false, true] {
        let config = TransformerEncoderConfig::new(16, 4, 3)
            .with_dim_feedforward(24)
            .with_activation(Activation::Gelu)
            .with_norm_first(norm_first)
            .with_batch_first(true);
        let model = config.init::<Cpu>(&device);
        let src = Tensor::<Cpu, 3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &device);
        let padding = KeyPaddingMask::from_lengths(&[5, 3], 5);
        let plain = model
            .run(EncoderInput::new(src.clone()).key_padding_mask(padding.clone()))
            .unwrap();
        // Asking for Linear inputs keeps the padded path even where padding would be skipped.
        let out = model
            .run_with(
                &kiln::Execution::default().with_pack_padding(true),
                EncoderInput::new(src.clone())
                    .key_padding_mask(padding)
                    .output_hidden_states(true)
                    .output_linear_inputs(true),
            )
            .unwrap();
        close(
            out.output.clone(),
            plain.output,
            "output with and without capture",
        );
        let hidden = out.hidden_states.unwrap();
        let inputs: Vec<LinearInputs<Cpu>> = out.linear_inputs.unwrap();
        assert_eq!(inputs.len(), 3);
        for (i, (layer, li)) in model.layers.iter().zip(&inputs).enumerate() {
            let what = |s: &str| format!("norm_first={norm_first} layer {i}: {s}");
            let layer_input = if i == 0 {
                src.clone()
            } else {
                hidden[i - 1].clone()
            };
            assert_eq!(li.linear2.dims(), [2, 5, 24]);
            close(
                li.linear2.clone(),
                gelu(layer.linear1.forward(li.linear1.clone())),
                &what("linear2 input = gelu(linear1(linear1 input))"),
            );
            let attention = layer.self_attn.out_proj.forward(li.out_proj.clone());
            let ffn = layer.linear2.forward(li.linear2.clone());
            if norm_first {
                close(
                    li.in_proj.clone(),
                    layer.norm1.forward(layer_input.clone()),
                    &what("in_proj input"),
                );
                let mid = layer_input + attention;
                close(
                    li.linear1.clone(),
                    layer.norm2.forward(mid.clone()),
                    &what("linear1 input"),
                );
                close(hidden[i].clone(), mid + ffn, &what("layer output"));
            } else {
                close(li.in_proj.clone(), layer_input, &what("in_proj input"));
                close(
                    li.linear1.clone(),
                    layer.norm1.forward(li.in_proj.clone() + attention),
                    &what("linear1 input"),
                );
                close(
                    hidden[i].clone(),
                    layer.norm2.forward(li.linear1.clone() + ffn),
                    &what("layer output"),
                );
            }
        }
    }
}
