//! kiln's kernel layer: the fast paths that a forward pass takes on the CPU, behind the same
//! generic modules.
//!
//! The modules stay generic over [`Backend`](burn::tensor::backend::Backend); where a kernel
//! applies, the module calls this layer (e.g. [`LinearKernel`] for every Linear layer), which
//! checks at run time whether the tensor is a burn-flex tensor (host memory, read in place) and
//! then runs a kernel picked for this CPU ([`cpu_features`]); on every other backend (wgpu,
//! ndarray, autodiff) it takes a generic path made of burn tensor ops that computes the same
//! numbers. So wgpu and training keep working, and one binary runs on any x86-64.
//!
//! Where a new kernel goes: the host code in a file of its own here (with a plain reference
//! it is tested against on odd shapes), the call from the module through `flex.rs`'s
//! bridge, and the generic fallback beside it.

/// `f::<R>(args)` for a row count `rows` known only at run time (1 to 8; more is a caller's
/// bug): a microkernel keeps `R` rows of accumulators in registers, so `R` must be a constant.
macro_rules! with_rows {
    ($rows:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $rows {
            8 => $f::<8>($($arg),*),
            7 => $f::<7>($($arg),*),
            6 => $f::<6>($($arg),*),
            5 => $f::<5>($($arg),*),
            4 => $f::<4>($($arg),*),
            3 => $f::<3>($($arg),*),
            2 => $f::<2>($($arg),*),
            _ => $f::<1>($($arg),*),
        }
    };
}
pub(crate) use with_rows;

pub mod activation;
mod amx;
pub mod attention;
mod bf16_gemm;
mod cpu_features;
mod f32_gemm;
#[cfg(feature = "flex")]
mod flex;
mod int8_gemm;
mod linear;
mod precision;
pub mod quantize;

pub use bf16_gemm::{bf16_linear_reference, Bf16Kernel, PackedBf16};
pub use cpu_features::{cpu_features, CpuFeatures};
pub use f32_gemm::{f32_linear_reference, F32Kernel, PackedF32};
pub use int8_gemm::{pack_linear, Int8Kernel, PackedInt8, PANEL};
pub use linear::LinearKernel;
pub(crate) use linear::{linear_forward, try_fused_feed_forward};
pub use precision::Precision;

/// The output buffer, shared by tasks that write disjoint parts of it.
pub(crate) struct SharedOut(*mut f32);
// SAFETY: only used to write disjoint regions from different threads (the GEMMs' `forward`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `offset` values in (a method, so closures capture the whole `SharedOut`).
    ///
    /// # Safety
    /// `offset` is within the buffer.
    pub(crate) unsafe fn at(&self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// How a GEMM's output `[M, N]` is cut into parallel tasks: blocks of `rows_per_task` rows,
/// and where there are too few of them to keep every thread busy (short inputs), groups of
/// panels (of `panel` output channels) within each block. The tasks cover every row x channel
/// once, so each can write its own part of the output.
pub(crate) struct PanelTasks {
    m: usize,
    rows_per_task: usize,
    num_panels: usize,
    panel_groups: usize,
    panels_per_group: usize,
}

impl PanelTasks {
    pub(crate) fn new(m: usize, n: usize, panel: usize, rows_per_task: usize) -> Self {
        let num_panels = n.div_ceil(panel);
        let row_blocks = m.div_ceil(rows_per_task);
        let wanted = rayon::current_num_threads() * 4;
        let panel_groups = wanted
            .div_ceil(row_blocks.max(1))
            .clamp(1, num_panels.max(1));
        Self {
            m,
            rows_per_task,
            num_panels,
            panel_groups,
            panels_per_group: num_panels.div_ceil(panel_groups),
        }
    }

    /// How many tasks there are.
    pub(crate) fn len(&self) -> usize {
        self.m.div_ceil(self.rows_per_task) * self.panel_groups
    }

    /// Task `task` (`< len()`): its first row, its number of rows and its panels.
    pub(crate) fn get(&self, task: usize) -> (usize, usize, std::ops::Range<usize>) {
        let (block, group) = (task / self.panel_groups, task % self.panel_groups);
        let row0 = block * self.rows_per_task;
        let first = group * self.panels_per_group;
        (
            row0,
            self.rows_per_task.min(self.m - row0),
            first..(first + self.panels_per_group).min(self.num_panels),
        )
    }
}

/// [`attention::packed_attention`] on a burn-flex tensor (its two products in bf16 for
/// [`Precision::Bf16`]: [`attention::packed_attention_bf16`]), or the tensor back on any other
/// backend (the caller then takes its per-sequence tensor ops, in f32).
///
/// # Shapes
/// - `qkv`: `[1, N, 3 * H * Dh]`; returns the context `[1, N, H * Dh]`
pub(crate) fn try_packed_attention<B: burn::tensor::backend::Backend>(
    qkv: burn::tensor::Tensor<B, 3>,
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
    causal: bool,
    precision: Precision,
) -> std::result::Result<burn::tensor::Tensor<B, 3>, burn::tensor::Tensor<B, 3>> {
    #[cfg(feature = "flex")]
    {
        let host = flex::host_f32(qkv)?;
        let attend = match precision {
            Precision::Bf16 => attention::packed_attention_bf16,
            Precision::F32 | Precision::Int8 => attention::packed_attention,
        };
        let context = attend(flex::values(&host), lengths, heads, head_dim, causal);
        let tokens = lengths.iter().sum();
        Ok(flex::flex_tensor(context, [1, tokens, heads * head_dim]))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (lengths, heads, head_dim, causal, precision);
        Err(qkv)
    }
}

/// Whether [`try_packed_attention`] runs its host kernel on `B` (burn-flex without autodiff);
/// elsewhere the packed path computes attention per sequence with tensor ops.
pub(crate) fn has_packed_attention<B: burn::tensor::backend::Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        flex::is_flex::<B>()
    }
    #[cfg(not(feature = "flex"))]
    {
        false
    }
}

/// Whether f32 Linear layers on `B` run kiln's packed f32 kernel: on burn-flex without
/// autodiff (host tensors) and a CPU with AVX-512 ([`f32_gemm::packs_f32`]); elsewhere burn's
/// `Linear`.
pub(crate) fn packs_f32<B: burn::tensor::backend::Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        flex::is_flex::<B>() && f32_gemm::packs_f32()
    }
    #[cfg(not(feature = "flex"))]
    {
        false
    }
}

/// GELU (PyTorch's exact form): on burn-flex the vectorized, multi-threaded host kernel
/// ([`activation::gelu_in_place`]), elsewhere burn's `gelu`.
pub(crate) fn gelu<B: burn::tensor::backend::Backend, const D: usize>(
    x: burn::tensor::Tensor<B, D>,
) -> burn::tensor::Tensor<B, D> {
    match on_flex_in_place(x, activation::gelu_in_place) {
        Ok(y) => y,
        Err(x) => burn::tensor::activation::gelu(x),
    }
}

/// `f` over a burn-flex tensor's values in place, or the tensor back on any other backend.
fn on_flex_in_place<B: burn::tensor::backend::Backend, const D: usize>(
    x: burn::tensor::Tensor<B, D>,
    f: fn(&mut [f32]),
) -> std::result::Result<burn::tensor::Tensor<B, D>, burn::tensor::Tensor<B, D>> {
    #[cfg(feature = "flex")]
    {
        let mut host = flex::host_f32(x)?;
        f(flex::values_mut(&mut host));
        Ok(flex::from_flex_primitive(host))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = f;
        Err(x)
    }
}

/// ReLU as PyTorch computes it: `x <= 0 -> 0`, and NaN stays NaN (burn-flex's and
/// burn-ndarray's own `relu` map NaN to 0, hiding a corrupt weight or input behind a finite but
/// wrong output). On burn-flex in place over threads, elsewhere a mask (burn's generic form).
pub(crate) fn relu<B: burn::tensor::backend::Backend, const D: usize>(
    x: burn::tensor::Tensor<B, D>,
) -> burn::tensor::Tensor<B, D> {
    match on_flex_in_place(x, activation::relu_in_place) {
        Ok(y) => y,
        Err(x) => {
            let not_positive = x.clone().lower_equal_elem(0.0);
            x.mask_fill(not_positive, 0.0)
        }
    }
}

/// One line on the CPU kernels this build and machine run: the CPU features found, and the
/// f32, int8 and bf16 kernels picked.
pub fn describe() -> String {
    let f32_kernel = if f32_gemm::packs_f32() {
        "packed avx512"
    } else {
        "burn-flex's gemm"
    };
    let bf16 = match Bf16Kernel::best() {
        kernel @ (Bf16Kernel::Amx | Bf16Kernel::Avx512Bf16) => kernel.name(),
        // The portable kernel is never picked for --precision bf16 (check_cpu refuses it).
        Bf16Kernel::Portable => "unavailable (needs avx512_bf16)",
    };
    format!(
        "{}; f32 kernel {f32_kernel}; int8 kernel {}; bf16 kernel {bf16}",
        cpu_features().summary(),
        Int8Kernel::best().name()
    )
}

/// `(M, K, N)` shapes every GEMM kernel is checked on against its reference: one value; K past
/// one f32 block (768) and not a multiple of it, up to the feed-forward's 1,536; N below, at
/// and past one panel of each kernel (32 for int8, 48 for f32 and bf16) and not a multiple of
/// it; M below and past one tile (8 rows; 16 and 32 for AMX) and one task (32 or 64 rows).
#[cfg(test)]
const ODD_SHAPES: [(usize, usize, usize); 15] = [
    (1, 1, 1),
    (1, 384, 5),
    (7, 33, 13),
    (8, 4, 32),
    (8, 4, 48),
    (9, 7, 33),
    (9, 7, 49),
    (3, 257, 47),
    (33, 384, 65),
    (17, 1536, 384),
    (5, 1000, 50),
    (40, 384, 1536),
    (64, 100, 96),
    (97, 768, 33),
    (130, 768, 100),
];

/// Asserts that `y` (`[M, N]`) is `x @ w + bias` (`reference`, in f64) to f32 accumulation:
/// each value within `K + 2` ulps of the absolute sum of its products and bias (a wrong layout
/// is off by a sizeable part of it).
#[cfg(test)]
fn assert_within_accumulation_error(
    y: &[f32],
    reference: &[f64],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (m, k, n): (usize, usize, usize),
    what: &str,
) {
    assert_eq!(y.len(), m * n, "{what}: output length");
    for row in 0..m {
        for col in 0..n {
            let abs_sum: f64 = (0..k)
                .map(|i| (x[row * k + i] as f64 * w[i * n + col] as f64).abs())
                .sum::<f64>()
                + bias.map_or(0.0, |b| b[col].abs() as f64);
            let bound = (k as f64 + 2.0) * f32::EPSILON as f64 * abs_sum + 1e-6;
            let (got, want) = (y[row * n + col] as f64, reference[row * n + col]);
            assert!(
                (got - want).abs() <= bound,
                "{what} on {m}x{k}x{n} at [{row}, {col}]: {got} vs {want}"
            );
        }
    }
}

/// Deterministic values in [-1, 1) with every 17th six times larger, so rows and channels
/// differ in range: the inputs of the kernels' tests.
#[cfg(test)]
fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if i % 17 == 0 {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}
