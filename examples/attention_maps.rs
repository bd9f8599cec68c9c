//! Per-layer attention weights from the one forward pass, averaged over heads, and the
//! attention rollout through all layers (kiln-explain).
//!
//! ```sh
//! cargo run --example attention_maps
//! ```

use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, Cpu};
use kiln::{EncoderInput, HostTensor, KeyPaddingMask, TransformerEncoderConfig};
use kiln_explain::attention::AttentionMaps;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = cpu_device();
    let model = TransformerEncoderConfig::new(32, 4, 2)
        .with_dim_feedforward(64)
        .with_batch_first(true)
        .init::<Cpu>(&device);
    let (batch, seq) = (1, 6);
    let src = Tensor::<Cpu, 3>::random([batch, seq, 32], Distribution::Normal(0.0, 1.0), &device);
    // The last two tokens are padding: no query attends to them.
    let padding = KeyPaddingMask::from_lengths(&[4], seq);
    let out = model.run(
        EncoderInput::new(src)
            .key_padding_mask(padding)
            .need_weights(true),
    )?;
    let attentions = out.attentions.unwrap();
    let maps = AttentionMaps::from_batch(&attentions, Some(&[4]))?;
    for (layer, weights) in attentions.into_iter().enumerate() {
        // [B, H, S, S] -> mean over heads -> [B, S, S]
        let mean = HostTensor::from_tensor(weights.mean_dim(1).reshape([batch, seq, seq]));
        println!("layer {layer} (rows: queries, columns: keys):");
        for row in mean.data.chunks(seq) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
            println!("  {}", cells.join(" "));
        }
    }
    // Rollout (Abnar & Zuidema 2020): rows sum to 1, padded tokens receive nothing.
    println!("rollout:");
    for row in kiln_explain::rollout(&maps[0]).to_rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
        println!("  {}", cells.join(" "));
    }
    Ok(())
}
