//! Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

use crate::attention::{AttentionMaps, SquareMatrix};

/// Attention rollout over the real tokens of `maps`: per layer `Â = 0.5·mean_h(A) + 0.5·I`
/// (the residual connection), rows renormalised, multiplied through the layers:
/// `R = Â_L ⋯ Â_1`. Row `i` of `R` says how much of output position `i` flows from each input
/// token; each row of a real token is non-negative and sums to 1.
///
/// The result is `S x S` for the padded length `S`; rows and columns of padding are 0: a padded
/// token receives no mass, and a padded text's rollout equals the same text's alone.
pub fn rollout(maps: &AttentionMaps) -> SquareMatrix {
    let len = maps.len;
    let mut flow: Option<SquareMatrix> = None;
    for layer in 0..maps.num_layers() {
        // [S, S] mean over heads -> the real block [len, len] + 0.5 I, rows renormalised.
        let mean = maps.mean(layer).expect("layer in range").crop(len);
        let mut step = SquareMatrix::zeros(len);
        for i in 0..len {
            let row = &mut step.data[i * len..(i + 1) * len];
            for (j, v) in row.iter_mut().enumerate() {
                *v = 0.5 * mean.get(i, j) + if i == j { 0.5 } else { 0.0 };
            }
            let sum: f32 = row.iter().sum();
            if sum > 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        flow = Some(match flow {
            None => step,
            Some(below) => step.matmul(&below),
        });
    }
    let flow = flow.unwrap_or_else(|| {
        let mut identity = SquareMatrix::zeros(len);
        (0..len).for_each(|i| identity.data[i * len + i] = 1.0);
        identity
    });
    // Back into S x S, zeros at padding.
    let mut out = SquareMatrix::zeros(maps.seq);
    for i in 0..len {
        out.data[i * maps.seq..i * maps.seq + len].copy_from_slice(flow.row(i));
    }
    out
}
