//! Splitting a batch across CPU threads: the sequences of an encoder's batch are independent, so
//! a CPU forward pass can run slices of the batch on separate threads and concatenate the results.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::encoder::{EncoderInput, EncoderOutput};
use crate::layer::LinearInputs;
use crate::mask::{KeyPaddingMask, SrcMask};

/// Whether a forward pass runs slices of its batch on separate threads (rayon's pool).
///
/// Every choice gives the same outputs (each sequence is computed by the same ops); only speed
/// differs. Set with [`EncoderInput::batch_split`](crate::EncoderInput::batch_split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSplit {
    /// Split where it measured faster: on the CPU backends (burn-flex, ndarray), outside
    /// autodiff, into one slice per thread of rayon's pool. Between their multi-threaded
    /// matrix products, both run much of a layer on one thread (flex: every element-wise op,
    /// bias adds, GELU's `erf`, residuals; both: small per-head matmuls, copies, LayerNorm), and
    /// a small matrix product does not keep every core busy; with one slice per thread all of
    /// that runs on every core. Measured 1.48x on flex and 1.30x on ndarray at "base" (`kiln
    /// bench` prints the unsplit row; docs/benchmarks.md). Elsewhere (the GPU backends, one
    /// queue): no split.
    #[default]
    Auto,
    /// One forward pass over the whole batch.
    Off,
    /// At most this many slices (1 = no split), on any backend, never under autodiff (one
    /// backward graph).
    Slices(usize),
}

impl BatchSplit {
    /// How many slices a batch of `batch` sequences is cut into on this backend.
    pub fn slices<B: Backend>(self, batch: usize, device: &B::Device) -> usize {
        if B::ad_enabled(device) {
            return 1;
        }
        let wanted = match self {
            Self::Off => 1,
            Self::Slices(n) => n,
            Self::Auto if splits_by_default::<B>(device) => rayon::current_num_threads(),
            Self::Auto => 1,
        };
        wanted.clamp(1, batch.max(1))
    }
}

impl std::str::FromStr for BatchSplit {
    type Err = String;

    /// `auto`, `off`, or a number of slices (`1` = off).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "off" | "none" => Ok(Self::Off),
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Self::Slices(n)),
                _ => Err(format!(
                    "batch split must be `auto`, `off` or a number of slices >= 1, not `{s}`"
                )),
            },
        }
    }
}

/// The CPU backends, where slices on separate threads measured faster (docs/benchmarks.md).
fn splits_by_default<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.contains("flex") || name.contains("ndarray")
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
/// key padding mask restricted to them, no finiteness check (done once before splitting), no
/// further split. `src_mask` must be 2-D (shared by every sequence).
pub(crate) fn slice_input<B: Backend>(
    input: &EncoderInput<B>,
    batch_dim: usize,
    indices: &[usize],
) -> EncoderInput<B> {
    let src_mask = input.src_mask.as_ref().map(|mask| match mask {
        SrcMask::Bool2(_) | SrcMask::Float2(_) => mask.clone(),
        SrcMask::Bool3(_) | SrcMask::Float3(_) => {
            unreachable!("a per-sequence src_mask is never split")
        }
    });
    let src_key_padding_mask = input.src_key_padding_mask.as_ref().map(|mask| match mask {
        KeyPaddingMask::Bool(m) => KeyPaddingMask::Bool(pick(m.clone(), 0, indices)),
        KeyPaddingMask::Float(m) => KeyPaddingMask::Float(pick(m.clone(), 0, indices)),
    });
    EncoderInput {
        src: pick(input.src.clone(), batch_dim, indices),
        src_mask,
        src_key_padding_mask,
        is_causal: input.is_causal,
        need_weights: input.need_weights,
        output_hidden_states: input.output_hidden_states,
        check_finite: false,
        pack_padding: input.pack_padding,
        output_linear_inputs: input.output_linear_inputs,
        attention_kernel: input.attention_kernel,
        batch_split: BatchSplit::Off,
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
    fn batch_split_parses_from_the_command_line() {
        use super::BatchSplit;
        assert_eq!("auto".parse::<BatchSplit>(), Ok(BatchSplit::Auto));
        assert_eq!("Off".parse::<BatchSplit>(), Ok(BatchSplit::Off));
        assert_eq!("4".parse::<BatchSplit>(), Ok(BatchSplit::Slices(4)));
        assert!("0".parse::<BatchSplit>().unwrap_err().contains("`0`"));
        assert!("many".parse::<BatchSplit>().is_err());
    }

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
