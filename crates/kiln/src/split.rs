//! Splitting a batch across CPU threads: the sequences of an encoder's batch are independent, so
//! a CPU forward pass can run slices of the batch on separate threads and concatenate the results.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::encoder::TransformerEncoder;
use crate::error::Result;
use crate::execution::{BatchSplit, Execution};
use crate::input::{EncoderInput, EncoderOutput, LinearInputs};
use crate::mask::{KeyPaddingMask, SrcMask};

impl<B: Backend> TransformerEncoder<B> {
    /// The forward pass as `slices` forward passes over slices of the batch, on rayon's threads.
    pub(crate) fn run_split(
        &self,
        execution: &Execution,
        input: EncoderInput<B>,
        cost: &[usize],
        slices: usize,
    ) -> Result<EncoderOutput<B>> {
        use rayon::prelude::*;
        let batch_dim = if self.config.batch_first { 0 } else { 1 };
        let members = assign(cost, slices);
        let inputs: Vec<EncoderInput<B>> = members
            .iter()
            .map(|indices| slice_input(&input, batch_dim, indices))
            .collect();
        drop(input);
        // Each slice runs as one pass (no further split), everything else as configured.
        let unsplit = execution.with_batch_split(BatchSplit::Off);
        let parts = inputs
            .into_par_iter()
            .map(|slice| self.run_with(&unsplit, slice))
            .collect::<Result<Vec<_>>>()?;
        Ok(join_outputs(parts, &members, batch_dim))
    }
}

/// Which sequences each of `slices` slices runs (each list ascending, none empty), balanced by
/// `cost[b]`: equal costs give contiguous blocks; unequal ones (lengths of packed sequences) go
/// longest first to the least loaded slice, then pairs are swapped while that lowers the
/// heaviest slice's load.
pub(crate) fn assign(cost: &[usize], slices: usize) -> Vec<Vec<usize>> {
    let batch = cost.len();
    let slices = slices.clamp(1, batch.max(1));
    if cost.windows(2).all(|w| w[0] == w[1]) {
        let (size, extra) = (batch / slices, batch % slices);
        let mut start = 0;
        return (0..slices)
            .map(|slice| {
                let len = size + usize::from(slice < extra);
                start += len;
                (start - len..start).collect()
            })
            .collect();
    }
    let mut order: Vec<usize> = (0..batch).collect();
    order.sort_by_key(|&b| std::cmp::Reverse(cost[b]));
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); slices];
    let mut load = vec![0usize; slices];
    for b in order {
        let slice = (0..slices)
            .min_by_key(|&s| (load[s], members[s].len()))
            .expect("at least one slice");
        load[slice] += cost[b];
        members[slice].push(b);
    }
    // Then swap pairs between the most loaded slice and another while that lowers the most.
    for _ in 0..4 * batch {
        let heaviest = (0..slices).max_by_key(|&s| load[s]).expect("slices");
        let mut best: Option<(usize, usize, usize, usize)> = None; // (new max, other, i, j)
        for other in (0..slices).filter(|&s| s != heaviest) {
            for (i, &a) in members[heaviest].iter().enumerate() {
                for (j, &b) in members[other].iter().enumerate() {
                    if cost[a] <= cost[b] {
                        continue;
                    }
                    let moved = cost[a] - cost[b];
                    let new_max = (load[heaviest] - moved).max(load[other] + moved);
                    if new_max < load[heaviest] && best.is_none_or(|(m, ..)| new_max < m) {
                        best = Some((new_max, other, i, j));
                    }
                }
            }
        }
        let Some((_, other, i, j)) = best else { break };
        let (a, b) = (members[heaviest][i], members[other][j]);
        members[heaviest][i] = b;
        members[other][j] = a;
        load[heaviest] = load[heaviest] - cost[a] + cost[b];
        load[other] = load[other] + cost[a] - cost[b];
    }
    for m in &mut members {
        m.sort_unstable();
    }
    members
}

/// `t` restricted to batch entries `indices` along `dim`: a view when they are contiguous.
fn pick<B: Backend, const D: usize, K>(
    t: Tensor<B, D, K>,
    dim: usize,
    indices: &[usize],
) -> Tensor<B, D, K>
where
    K: burn::tensor::BasicOps<B>,
{
    let first = indices[0];
    if indices.iter().enumerate().all(|(i, &b)| b == first + i) {
        return t.narrow(dim, first, indices.len());
    }
    let device = t.device();
    let ids: Vec<i64> = indices.iter().map(|&b| b as i64).collect();
    t.select(dim, Tensor::<B, 1, Int>::from_ints(ids.as_slice(), &device))
}

/// The input of the slice running batch entries `indices`: `src` (batch on `batch_dim`) and the
/// masks restricted to them (a shared `[S, S]` `src_mask` as it is; a per-sequence
/// `[B * nhead, S, S]` one by its rows `b * nhead + h`).
pub(crate) fn slice_input<B: Backend>(
    input: &EncoderInput<B>,
    batch_dim: usize,
    indices: &[usize],
) -> EncoderInput<B> {
    let batch = input.src.dims()[batch_dim];
    // Rows of a per-sequence mask: sequence b owns rows b * nhead .. (b + 1) * nhead.
    let mask_rows = |rows: usize| -> Vec<usize> {
        let nhead = rows / batch;
        indices
            .iter()
            .flat_map(|&b| b * nhead..(b + 1) * nhead)
            .collect()
    };
    let src_mask = input.src_mask.as_ref().map(|mask| match mask {
        SrcMask::Bool2(_) | SrcMask::Float2(_) => mask.clone(),
        SrcMask::Bool3(m) => SrcMask::Bool3(pick(m.clone(), 0, &mask_rows(m.dims()[0]))),
        SrcMask::Float3(m) => SrcMask::Float3(pick(m.clone(), 0, &mask_rows(m.dims()[0]))),
    });
    let src_key_padding_mask = input.src_key_padding_mask.as_ref().map(|mask| match mask {
        KeyPaddingMask::Bool(m) => KeyPaddingMask::Bool(pick(m.clone(), 0, indices)),
        KeyPaddingMask::Float(m) => KeyPaddingMask::Float(pick(m.clone(), 0, indices)),
        KeyPaddingMask::Lengths { lengths, seq_len } => KeyPaddingMask::Lengths {
            lengths: indices.iter().map(|&b| lengths[b]).collect(),
            seq_len: *seq_len,
        },
    });
    EncoderInput {
        src: pick(input.src.clone(), batch_dim, indices),
        src_mask,
        src_key_padding_mask,
        ..input.clone()
    }
}

/// Joins the outputs of the slices that ran `members` (see [`assign`]) back into batch order.
/// `batch_dim` is the batch dimension of the output and hidden states (the input's layout);
/// attention weights and Linear inputs are batch-first.
pub(crate) fn join_outputs<B: Backend>(
    parts: Vec<EncoderOutput<B>>,
    members: &[Vec<usize>],
    batch_dim: usize,
) -> EncoderOutput<B> {
    // Concatenated, the slices hold batch entries `order`; `restore` puts them back.
    let order: Vec<usize> = members.iter().flatten().copied().collect();
    let mut position = vec![0; order.len()];
    for (i, &b) in order.iter().enumerate() {
        position[b] = i;
    }
    let mut outputs = Vec::with_capacity(parts.len());
    let mut attentions = Vec::new();
    let mut hidden_states = Vec::new();
    let mut linear_inputs = Vec::new();
    for part in parts {
        outputs.push(part.output);
        attentions.extend(part.attentions);
        hidden_states.extend(part.hidden_states);
        linear_inputs.extend(part.linear_inputs);
    }
    let p = position.as_slice();
    EncoderOutput {
        output: join(outputs, batch_dim, p),
        attentions: (!attentions.is_empty()).then(|| join_per_layer(attentions, 0, p)),
        hidden_states: (!hidden_states.is_empty())
            .then(|| join_per_layer(hidden_states, batch_dim, p)),
        linear_inputs: (!linear_inputs.is_empty()).then(|| {
            transpose(linear_inputs)
                .into_iter()
                .map(|slices| {
                    let part = |field: fn(&LinearInputs<B>) -> &Tensor<B, 3>| {
                        join(slices.iter().map(|s| field(s).clone()).collect(), 0, p)
                    };
                    LinearInputs {
                        in_proj: part(|s| &s.in_proj),
                        out_proj: part(|s| &s.out_proj),
                        linear1: part(|s| &s.linear1),
                        linear2: part(|s| &s.linear2),
                    }
                })
                .collect()
        }),
    }
}

/// The slices' pieces concatenated along `dim`, then put back in batch order (`position[b]`:
/// where batch entry `b` sits in the concatenation).
fn join<B: Backend, const D: usize>(
    pieces: Vec<Tensor<B, D>>,
    dim: usize,
    position: &[usize],
) -> Tensor<B, D> {
    pick(Tensor::cat(pieces, dim), dim, position)
}

/// `slices x layers` -> per layer, [`join`]ed.
fn join_per_layer<B: Backend, const D: usize>(
    slices: Vec<Vec<Tensor<B, D>>>,
    dim: usize,
    position: &[usize],
) -> Vec<Tensor<B, D>> {
    transpose(slices)
        .into_iter()
        .map(|layer| join(layer, dim, position))
        .collect()
}
/// `slices x layers` -> `layers x slices`.
fn transpose<T>(slices: Vec<Vec<T>>) -> Vec<Vec<T>> {
    let layers = slices.first().map_or(0, Vec::len);
    let mut per_layer: Vec<Vec<T>> = (0..layers)
        .map(|_| Vec::with_capacity(slices.len()))
        .collect();
    for slice in slices {
        for (layer, t) in slice.into_iter().enumerate() {
            per_layer[layer].push(t);
        }
    }
    per_layer
}

#[cfg(test)]
mod tests {
    use super::assign;

    #[test]
    fn equal_costs_give_contiguous_blocks() {
        assert_eq!(
            assign(&[128; 8], 2),
            vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
        );
        assert_eq!(
            assign(&[5; 7], 3),
            vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]
        );
        assert_eq!(assign(&[5; 2], 4), vec![vec![0], vec![1]]);
        assert_eq!(assign(&[5; 3], 1), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn unequal_costs_are_balanced_and_every_slice_runs_something() {
        // The padded batch of `kiln bench` at "base": 403 / 329 real tokens in two contiguous
        // halves; longest-first gives 389 / 343, and one swap 377 / 355.
        let lengths = [109, 102, 85, 107, 110, 34, 97, 88];
        let slices = assign(&lengths, 2);
        let loads: Vec<usize> = slices
            .iter()
            .map(|s| s.iter().map(|&b| lengths[b]).sum())
            .collect();
        assert_eq!(loads.iter().sum::<usize>(), 732);
        assert!(loads.iter().all(|&l| l <= 377), "{loads:?}");
        let mut all: Vec<usize> = slices.concat();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert!(slices.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
        // Empty sequences still land in a slice, and no slice is empty.
        let slices = assign(&[0, 0, 5], 3);
        assert!(slices.iter().all(|s| !s.is_empty()));
    }
}
