//! How a forward pass runs, apart from what it computes: the encoder's [`Execution`] settings
//! and the one function, [`plan`], that turns them and an input into the path taken.
//!
//! Every choice here gives the same outputs at real tokens (to float rounding of differently
//! blocked matrix products); only speed differs, and with padding skipped, padded positions
//! read zeros instead of values computed from padding.

use burn::tensor::backend::Backend;

use crate::input::EncoderInput;
use crate::mask::KeyPaddingMask;

/// How a [`TransformerEncoder`](crate::TransformerEncoder) runs its forward passes: set once on
/// the model ([`TransformerEncoder::with_execution`](crate::TransformerEncoder::with_execution)),
/// automatic by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Execution {
    /// Skip the padding: when the only mask is padding given as host-side lengths
    /// ([`KeyPaddingMask::Lengths`]) and no attention weights or Linear inputs are asked for,
    /// the real tokens are packed end to end and attention runs per sequence, as PyTorch's
    /// nested tensors do. Real tokens get the same outputs; padded positions get zeros (as in
    /// PyTorch's fast path) instead of values computed from padding. Never while training with
    /// dropout (attention dropout runs on the padded path). Off by default, so that every
    /// position equals PyTorch's math path; text models turn it on where it pays
    /// ([`Self::pack_padding_pays`]).
    pub pack_padding: bool,
    /// Whether slices of the batch run on separate CPU threads (see [`BatchSplit`]).
    pub batch_split: BatchSplit,
    /// How attention is computed when its weights are not needed (see [`AttentionKernel`]).
    pub attention_kernel: AttentionKernel,
}

impl Execution {
    /// Whether skipping the padding ([`Self::pack_padding`]) pays on this backend: what text
    /// models default to. On the CPU backends (burn-flex, ndarray) the work follows the real
    /// tokens. On a GPU backend the packed path runs attention one sequence at a time (many
    /// small dispatches where the padded batch runs one fused kernel per layer) and is slower
    /// than the padded batch even with the padding's extra work, so text models run padded
    /// batches there (`docs/benchmarks.md`, "GPU").
    pub fn pack_padding_pays<B: Backend>(device: &B::Device) -> bool {
        is_cpu_backend::<B>(device)
    }

    /// Sets [`Self::pack_padding`].
    pub fn with_pack_padding(mut self, yes: bool) -> Self {
        self.pack_padding = yes;
        self
    }
    /// Sets [`Self::batch_split`].
    pub fn with_batch_split(mut self, split: BatchSplit) -> Self {
        self.batch_split = split;
        self
    }
    /// Sets [`Self::attention_kernel`].
    pub fn with_attention_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.attention_kernel = kernel;
        self
    }
}

/// Whether a forward pass runs slices of its batch on separate threads (rayon's pool).
///
/// Every choice gives the same outputs (each sequence is computed by the same ops); only speed
/// differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSplit {
    /// On the CPU backends (burn-flex, ndarray), outside autodiff, one slice per thread of
    /// rayon's pool. Between their multi-threaded matrix products both backends run much of a
    /// layer on one thread (flex: every element-wise op, bias adds, GELU's `erf`, residuals;
    /// both: small per-head matmuls, copies, LayerNorm), and a small matrix product does not
    /// keep every core busy; with one slice per thread all of that runs on every core
    /// (`kiln bench` times the unsplit pass beside it). Elsewhere (the GPU backends, one
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
            Self::Auto if is_cpu_backend::<B>(device) => rayon::current_num_threads(),
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

/// The CPU backends, whose forward passes gain from running slices on separate threads.
fn is_cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.contains("flex") || name.contains("ndarray")
}

/// How attention is computed when its weights are not needed (inference, or training without
/// attention dropout). Every choice gives the same outputs (to float rounding); only speed
/// differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// The faster one on the backend (`kiln bench` times both): `Matmul` on burn-flex, `Fused`
    /// elsewhere (the GPU backends' flash-attention kernels; on ndarray burn's op is the same
    /// math as `Matmul`).
    #[default]
    Auto,
    /// burn's fused `burn::tensor::module::attention` op.
    Fused,
    /// Two batched matmuls on views of the packed projection and the backend's softmax.
    Matmul,
}

impl AttentionKernel {
    /// Whether this choice uses burn's fused op on this backend.
    pub fn is_fused<B: Backend>(self, device: &B::Device) -> bool {
        match self {
            Self::Auto => !prefers_matmul_attention::<B>(device),
            Self::Fused => true,
            Self::Matmul => false,
        }
    }
}

/// Whether attention by matmuls beats burn's fused op on this backend: on burn-flex (possibly
/// under autodiff), whose fused op runs one `(batch, head)` at a time on one thread after
/// copying `q`, `k`, `v` element by element into `[B, H, S, Dh]`; the matmul path hands strided
/// views to flex's multi-threaded batched matmul (no copy) and uses its row-parallel softmax.
fn prefers_matmul_attention<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("flex")
}

/// Which attention kernel the masks are prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttentionPath {
    /// Scores are materialised and returned (weights asked for, or dropout in training): one
    /// additive bias.
    Explicit,
    /// Scores are materialised by batched matmuls on views of the packed projection, weights
    /// not returned: one additive bias.
    Matmul,
    /// burn's fused `attention` op: a bool mask, an additive bias and a causal flag.
    Fused,
    /// Padding removed: sequences of known lengths packed end to end, attention per sequence.
    Packed,
}

impl AttentionPath {
    /// The path of a padded batch: `Explicit` when the weights are needed (asked for, or
    /// dropout on them in training); otherwise `Fused` or `Matmul` as `fused_kernel` says.
    pub fn padded(weights_needed: bool, fused_kernel: bool) -> Self {
        if weights_needed {
            Self::Explicit
        } else if fused_kernel {
            Self::Fused
        } else {
            Self::Matmul
        }
    }
}

/// The path one forward pass takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Slices of the batch on separate threads; `cost[b]` is sequence `b`'s share of the work
    /// (its real tokens when the padding is skipped), by which the slices are balanced.
    Split { slices: usize, cost: Vec<usize> },
    /// The real tokens packed end to end (sequence `b` has `lengths[b]` of them).
    Packed { lengths: Vec<usize> },
    /// The padded batch, attention by `path`; `fused_kernel` as [`AttentionKernel::is_fused`].
    Padded {
        path: AttentionPath,
        fused_kernel: bool,
    },
}

/// Chooses the path of a forward pass over `input` (`[B, S]` = `batch_seq`) under `execution`.
/// `training_dropout`: an autodiff backend with dropout, where attention weights are sampled
/// and nothing is split. Reads nothing from the device.
pub(crate) fn plan<B: Backend>(
    execution: &Execution,
    input: &EncoderInput<B>,
    batch_seq: [usize; 2],
    training_dropout: bool,
) -> Plan {
    let [batch, seq] = batch_seq;
    let device = input.src.device();
    let packed_lengths = match &input.src_key_padding_mask {
        Some(KeyPaddingMask::Lengths { lengths, .. })
            if execution.pack_padding
                && !input.need_weights
                && !input.output_linear_inputs
                && !training_dropout
                && input.src_mask.is_none() =>
        {
            Some(lengths.clone())
        }
        _ => None,
    };
    let slices = execution.batch_split.slices::<B>(batch, &device);
    if slices > 1 {
        let cost = packed_lengths.unwrap_or_else(|| vec![seq; batch]);
        return Plan::Split { slices, cost };
    }
    if let Some(lengths) = packed_lengths {
        return Plan::Packed { lengths };
    }
    let fused_kernel = execution.attention_kernel.is_fused::<B>(&device);
    Plan::Padded {
        path: AttentionPath::padded(input.need_weights || training_dropout, fused_kernel),
        fused_kernel,
    }
}

#[cfg(test)]
mod tests {
    use super::BatchSplit;

    #[test]
    fn batch_split_parses_from_the_command_line() {
        assert_eq!("auto".parse::<BatchSplit>(), Ok(BatchSplit::Auto));
        assert_eq!("Off".parse::<BatchSplit>(), Ok(BatchSplit::Off));
        assert_eq!("4".parse::<BatchSplit>(), Ok(BatchSplit::Slices(4)));
        assert!("0".parse::<BatchSplit>().unwrap_err().contains("`0`"));
        assert!("many".parse::<BatchSplit>().is_err());
    }
}
