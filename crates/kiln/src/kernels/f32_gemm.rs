//! f32 matrix products for Linear layers, with the weight packed once at load and the bias
//! fused into the first pass over the output.
//!
//! burn-flex multiplies through the `gemm` crate, which packs the weight again on every call
//! and adds the bias in a second pass over the output. Here the weight is packed once into
//! panels of [`PANEL`] output channels (`[panel][K][48]`, every row of a panel three aligned
//! 512-bit lines), so the AVX-512 microkernel reads it with plain aligned loads, keeps 8 rows x
//! 48 channels of accumulators in registers (24 of AVX-512's 32), and broadcasts one input per
//! row and step. The inputs are split into blocks of [`KC`] so that the part of a panel a block
//! reads stays in the core's caches while every row of a task passes over it; the output
//! starts as the bias and the next blocks accumulate into it.
//!
//! The AVX-512 kernel is only worth packing for: on a CPU without AVX-512 (F/BW/VL) the
//! Linear layers keep burn's matrix product ([`packs_f32`]). The portable kernel computes the
//! same sums in the same order, so the packed layout is tested on any CPU; every kernel is
//! tested against an f64 reference on odd shapes.

use rayon::prelude::*;

use super::{cpu_features, PanelTasks, SharedOut};

/// Output channels per packed panel: three 512-bit registers of f32 accumulators.
pub const PANEL: usize = 48;
/// Rows of the input per microkernel call: 8 x 3 accumulators, 3 panel loads and a broadcast
/// fit AVX-512's 32 registers.
const MR: usize = 8;
/// Inputs per block: the block's part of a panel (`KC x 48` f32, 144 KiB) stays in L2 while
/// every row of a task passes over it. Each block after the first reloads and stores the
/// output tile, so blocks are few: one for most Linear layers of BERT-size models, four for a
/// 3,072-wide feed-forward's second layer (L1-sized blocks, and blocks of 256, were slower).
const KC: usize = 768;
/// Rows per parallel task: a panel block is reused by this many rows while it is in cache.
const ROWS_PER_TASK: usize = 64;

/// Which f32 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Kernel {
    /// AVX-512 F FMAs on 512-bit registers.
    Avx512,
    /// Plain Rust over the packed layout (vectorized by the compiler as far as it can).
    Portable,
}

impl F32Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        if cpu_features().avx512 {
            Self::Avx512
        } else {
            Self::Portable
        }
    }

    /// Every kernel this CPU can run (the tests check each against the reference).
    pub fn available() -> Vec<Self> {
        let mut kernels = vec![Self::Portable];
        if cpu_features().avx512 {
            kernels.push(Self::Avx512);
        }
        kernels
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Portable => "portable",
        }
    }
}

/// Whether f32 Linear layers are worth packing on this CPU: the AVX-512 kernel beats the
/// matrix product burn-flex runs; without AVX-512 burn's (the `gemm` crate's AVX2 kernels)
/// stays.
pub fn packs_f32() -> bool {
    F32Kernel::best() == F32Kernel::Avx512
}

/// One 64-byte line of 16 f32: the unit the panels are allocated in, so every panel row
/// starts on a cache line and the kernel's loads are aligned.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Lines per panel row (`PANEL / 16`).
const LINES: usize = PANEL / 16;

/// A Linear weight (burn's `[K, N]`) packed for the f32 kernels, with its bias.
#[derive(Debug, Clone)]
pub struct PackedF32 {
    /// Input features `K`.
    pub k: usize,
    /// Output features `N`.
    pub n: usize,
    /// `ceil(N / PANEL)` panels of `K` rows of [`PANEL`] channels (zeros past `N`).
    panels: Vec<Line>,
    /// Per output channel, padded to whole panels (0 without a bias).
    bias: Vec<f32>,
}

impl PackedF32 {
    /// Packs `weight` (`[K, N]` row-major, burn's Linear layout) with `bias` (`[N]`).
    pub fn new(weight: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [K, N]");
        let num_panels = n.div_ceil(PANEL);
        let mut panels = vec![Line::default(); num_panels * k * LINES];
        if k > 0 {
            panels
                .par_chunks_mut(k * LINES)
                .enumerate()
                .for_each(|(p, panel)| {
                    let col0 = p * PANEL;
                    let cols = PANEL.min(n - col0);
                    for (row, lines) in panel.chunks_exact_mut(LINES).enumerate() {
                        let src = &weight[row * n + col0..row * n + col0 + cols];
                        for (i, &v) in src.iter().enumerate() {
                            lines[i / 16].0[i % 16] = v;
                        }
                    }
                });
        }
        let mut padded_bias = bias.map_or_else(Vec::new, <[f32]>::to_vec);
        padded_bias.resize(num_panels * PANEL, 0.0);
        Self {
            k,
            n,
            panels,
            bias: padded_bias,
        }
    }

    /// Bytes the packed weight and bias hold.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of_val(self.panels.as_slice()) + std::mem::size_of_val(self.bias.as_slice())
    }

    /// Panel `p`'s rows `k0..` as a pointer to its first value (`[K - k0][PANEL]` follow).
    fn panel_from(&self, p: usize, k0: usize) -> *const f32 {
        self.panels[(p * self.k + k0) * LINES..].as_ptr() as *const f32
    }

    /// `x [M, K] -> y [M, N] = x @ weight + bias`.
    ///
    /// # Shapes
    /// - `x`: `[M, K]` row-major; returns `[M, N]` row-major
    pub fn forward(&self, x: &[f32], m: usize, kernel: F32Kernel) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "input is not [M, K]");
        let (k, n) = (self.k, self.n);
        if m == 0 || n == 0 {
            return Vec::new();
        }
        let tasks = PanelTasks::new(m, n, PANEL, ROWS_PER_TASK);
        let k_blocks = k.div_ceil(KC).max(1);
        // Every value is written by the first block below before any block reads it (tasks
        // cover all rows x channels), so the buffer is not zeroed first.
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let out_ptr = SharedOut(out.as_mut_ptr());
        (0..tasks.len()).into_par_iter().for_each(|task| {
            let (row0, rows, panels) = tasks.get(task);
            for kb in 0..k_blocks {
                let k0 = kb * KC;
                let kc = KC.min(k - k0.min(k));
                for p in panels.clone() {
                    let col0 = p * PANEL;
                    let tile = Tile {
                        b: self.panel_from(p, k0.min(k)),
                        kc,
                        cols: PANEL.min(n - col0),
                        bias: (kb == 0).then(|| self.bias[col0..].as_ptr()),
                    };
                    for r in (0..rows).step_by(MR) {
                        let mr = MR.min(rows - r);
                        let row = row0 + r;
                        // SAFETY: `x` holds rows `row..row + mr` of `k` values from `k0`
                        // on; `out` has room for `[M, N]` and this task alone writes these
                        // rows x channels (tasks are disjoint); blocks after the first read
                        // only values the first one wrote.
                        unsafe {
                            let a = x.as_ptr().add(row * k + k0.min(k));
                            let c = out_ptr.at(row * n + col0);
                            run_tile(kernel, a, k, mr, &tile, c, n);
                        }
                    }
                }
            }
        });
        // SAFETY: the tasks above wrote all `m * n` values (disjoint rows x channels covering
        // `[M, N]`), within the capacity reserved.
        unsafe { out.set_len(m * n) };
        out
    }
}

/// One panel's block for the microkernels: `kc` rows of [`PANEL`] packed channels from `b`,
/// `cols` of them real, and the bias to start from (the first block) or `None` (accumulate
/// into the output).
struct Tile {
    b: *const f32,
    kc: usize,
    cols: usize,
    bias: Option<*const f32>,
}

/// `c[r, ..cols] (=|+=) a[r, ..kc] @ tile + bias` for `rows` rows (`a` and `c` strided by
/// `lda` and `ldc`).
///
/// # Safety
/// `a` holds `rows` rows of `kc` values at stride `lda`, `tile.b` `kc * PANEL` values,
/// `tile.bias` `PANEL`; `c` has `rows` rows of `cols` writable values at stride `ldc`, already
/// written when `tile.bias` is `None`.
unsafe fn run_tile(
    kernel: F32Kernel,
    a: *const f32,
    lda: usize,
    rows: usize,
    tile: &Tile,
    c: *mut f32,
    ldc: usize,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        F32Kernel::Avx512 if cpu_features().avx512 => {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); bounds as the caller says.
            x86::tile_avx512(a, lda, rows, tile, c, ldc)
        }
        _ => tile_portable(a, lda, rows, tile, c, ldc),
    }
}

/// The portable kernel: per row, the panel's channels accumulated over the block's inputs.
///
/// # Safety
/// As [`run_tile`].
unsafe fn tile_portable(
    a: *const f32,
    lda: usize,
    rows: usize,
    tile: &Tile,
    c: *mut f32,
    ldc: usize,
) {
    let b = std::slice::from_raw_parts(tile.b, tile.kc * PANEL);
    for r in 0..rows {
        let a_row = std::slice::from_raw_parts(a.add(r * lda), tile.kc);
        let c_row = c.add(r * ldc);
        let mut acc = [0f32; PANEL];
        match tile.bias {
            Some(bias) => acc.copy_from_slice(std::slice::from_raw_parts(bias, PANEL)),
            None => {
                for (i, v) in acc.iter_mut().enumerate().take(tile.cols) {
                    *v = c_row.add(i).read();
                }
            }
        }
        for (&av, b_row) in a_row.iter().zip(b.chunks_exact(PANEL)) {
            for (v, &bv) in acc.iter_mut().zip(b_row) {
                *v = av.mul_add(bv, *v);
            }
        }
        for (i, &v) in acc.iter().enumerate().take(tile.cols) {
            c_row.add(i).write(v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, MR, PANEL};
    use std::arch::x86_64::*;

    /// Up to 8 rows x 48 channels.
    ///
    /// # Safety
    /// As [`super::run_tile`], and the CPU has AVX-512 F.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn tile_avx512(
        a: *const f32,
        lda: usize,
        rows: usize,
        tile: &Tile,
        c: *mut f32,
        ldc: usize,
    ) {
        debug_assert!((1..=MR).contains(&rows));
        super::super::with_rows!(rows, avx512_rows(a, lda, tile, c, ldc))
    }

    /// The mask of the first `n` of 16 lanes.
    #[inline(always)]
    fn lanes(n: usize) -> __mmask16 {
        if n >= 16 {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// `R` rows: 3R accumulators; per input, three aligned panel loads and one broadcast per
    /// row feed 3R FMAs.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn avx512_rows<const R: usize>(
        a: *const f32,
        lda: usize,
        tile: &Tile,
        c: *mut f32,
        ldc: usize,
    ) {
        let cols = tile.cols;
        let masks = [
            lanes(cols),
            lanes(cols.saturating_sub(16)),
            lanes(cols.saturating_sub(32)),
        ];
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        let mut c2 = [_mm512_setzero_ps(); R];
        match tile.bias {
            Some(bias) => {
                let (b0, b1, b2) = (
                    _mm512_loadu_ps(bias),
                    _mm512_loadu_ps(bias.add(16)),
                    _mm512_loadu_ps(bias.add(32)),
                );
                for r in 0..R {
                    (c0[r], c1[r], c2[r]) = (b0, b1, b2);
                }
            }
            None => {
                for r in 0..R {
                    let row = c.add(r * ldc);
                    c0[r] = _mm512_maskz_loadu_ps(masks[0], row);
                    c1[r] = _mm512_maskz_loadu_ps(masks[1], row.add(16));
                    c2[r] = _mm512_maskz_loadu_ps(masks[2], row.add(32));
                }
            }
        }
        let b = tile.b;
        for i in 0..tile.kc {
            let bp = b.add(i * PANEL);
            let b0 = _mm512_load_ps(bp);
            let b1 = _mm512_load_ps(bp.add(16));
            let b2 = _mm512_load_ps(bp.add(32));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * lda + i));
                c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
                c2[r] = _mm512_fmadd_ps(av, b2, c2[r]);
            }
        }
        if cols == PANEL {
            for r in 0..R {
                let row = c.add(r * ldc);
                _mm512_storeu_ps(row, c0[r]);
                _mm512_storeu_ps(row.add(16), c1[r]);
                _mm512_storeu_ps(row.add(32), c2[r]);
            }
        } else {
            for r in 0..R {
                let row = c.add(r * ldc);
                _mm512_mask_storeu_ps(row, masks[0], c0[r]);
                _mm512_mask_storeu_ps(row.add(16), masks[1], c1[r]);
                _mm512_mask_storeu_ps(row.add(32), masks[2], c2[r]);
            }
        }
    }
}

/// `x @ weight + bias` in f64: what every kernel approximates, to f32 rounding.
///
/// # Shapes
/// - `x`: `[M, K]`, `weight`: `[K, N]`, `bias`: `[N]`; returns `[M, N]`
pub fn f32_linear_reference(
    x: &[f32],
    m: usize,
    weight: &[f32],
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for row in 0..m {
        for col in 0..n {
            let dot: f64 = (0..k)
                .map(|i| x[row * k + i] as f64 * weight[i * n + col] as f64)
                .sum();
            out[row * n + col] = dot + bias.map_or(0.0, |b| b[col] as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::assert_within_accumulation_error;
    use super::super::test_values as values;
    use super::super::ODD_SHAPES;

    #[test]
    fn every_kernel_equals_the_reference_on_odd_shapes() {
        for (m, k, n) in ODD_SHAPES {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let bias = values(n, 3);
            for bias in [None, Some(bias.as_slice())] {
                let packed = PackedF32::new(&w, k, n, bias);
                let reference = f32_linear_reference(&x, m, &w, k, n, bias);
                for kernel in F32Kernel::available() {
                    let y = packed.forward(&x, m, kernel);
                    let what = format!("{kernel:?}");
                    assert_within_accumulation_error(
                        &y,
                        &reference,
                        &x,
                        &w,
                        bias,
                        (m, k, n),
                        &what,
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_agree_with_each_other_exactly() {
        // Same blocks, same order of FMAs per output: the AVX-512 and portable kernels give
        // the same bits.
        let (m, k, n) = (19, 600, 100);
        let (x, w, bias) = (values(m * k, 4), values(k * n, 5), values(n, 6));
        let packed = PackedF32::new(&w, k, n, Some(&bias));
        let portable = packed.forward(&x, m, F32Kernel::Portable);
        for kernel in F32Kernel::available() {
            assert_eq!(packed.forward(&x, m, kernel), portable, "{kernel:?}");
        }
    }

    #[test]
    fn empty_inputs_give_empty_or_bias_outputs() {
        let packed = PackedF32::new(&values(6, 7), 3, 2, Some(&[0.5, -2.0]));
        for kernel in F32Kernel::available() {
            assert!(packed.forward(&[], 0, kernel).is_empty());
            assert_eq!(packed.forward(&[0.0; 3], 1, kernel), vec![0.5, -2.0]);
            let no_inputs = PackedF32::new(&[], 0, 2, Some(&[0.5, -2.0]));
            assert_eq!(
                no_inputs.forward(&[], 2, kernel),
                vec![0.5, -2.0, 0.5, -2.0]
            );
        }
    }
}
