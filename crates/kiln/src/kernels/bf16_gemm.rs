//! `bf16 x bf16 -> f32` matrix products for bf16 Linear layers, with the bias fused into the
//! store.
//!
//! The weight is rounded to bf16 once (round to nearest even) and packed into panels of
//! [`PANEL`] output channels laid out for `vdpbf16ps`: for every pair of inputs, the panel's 48
//! channels' two bf16 side by side, so one 512-bit load feeds 16 channels and one broadcast of
//! a row's pair feeds all of them. Activations are rounded to bf16 per call (one pass over
//! `[M, K]`, cheap next to the `M * K * N` products); products accumulate in f32. One
//! `vdpbf16ps` does twice the multiply-adds of one f32 FMA on the same register width, which is
//! where the speed comes from.
//!
//! A feed-forward block (`linear2(activation(linear1(x)))`) whose two layers are both bf16 can
//! skip the f32 hidden values: [`PackedBf16::forward_activation_rounded`] applies the
//! activation and the rounding to each tile of the first product as it stores it, straight into
//! the second product's input layout ([`PackedBf16::forward_rounded`] then reads it).
//!
//! Where the CPU has Intel AMX, the same packed panels feed `tdpbf16ps` tile products instead
//! (16 rows x 16 channels x 32 inputs per instruction; see [`super::amx`]).
//!
//! The kernel is picked at run time: AMX-BF16, AVX-512 BF16, or a portable one (the same arithmetic in
//! f32 FMA: correct but no faster than f32, so the CLI refuses bf16 on CPUs without the
//! instructions rather than running it). Every kernel is tested against an f64 reference over
//! the same bf16 values on odd shapes.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::activation::gelu;
use super::amx;
use super::{cpu_features, PanelTasks, SharedOut};
use crate::config::Activation;

/// Output channels per packed panel: three 512-bit registers of f32 accumulators.
pub const PANEL: usize = 48;
/// Rows of the activations per kernel call: 8 x 3 accumulators + 3 panel loads + 1 broadcast
/// fit AVX-512's 32 registers.
const MR: usize = 8;
/// Rows per parallel task: a panel is reused by this many rows while it is in cache.
const ROWS_PER_TASK: usize = 64;

/// Which bf16 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX-BF16 (`tdpbf16ps` on tiles of 16 rows x 16 channels).
    Amx,
    /// AVX-512 BF16 (`vdpbf16ps` on 512-bit registers).
    Avx512Bf16,
    /// Plain Rust in f32 over the bf16 values (vectorized by the compiler).
    Portable,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        let cpu = cpu_features();
        if cpu.amx_bf16 {
            Self::Amx
        } else if cpu.avx512_bf16 {
            Self::Avx512Bf16
        } else {
            Self::Portable
        }
    }

    /// Every kernel this CPU can run (the tests check each against the reference).
    pub fn available() -> Vec<Self> {
        let mut kernels = vec![Self::Portable];
        if cpu_features().avx512_bf16 {
            kernels.push(Self::Avx512Bf16);
        }
        if cpu_features().amx_bf16 {
            kernels.push(Self::Amx);
        }
        kernels
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "amx-bf16",
            Self::Avx512Bf16 => "avx512-bf16",
            Self::Portable => "portable",
        }
    }
}

/// `x` rounded to the nearest bf16 (ties to even; NaN stays NaN), as its bits. Branch-free, so
/// a loop of it vectorizes.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x40) as u16;
    if x.is_nan() {
        quiet_nan
    } else {
        rounded
    }
}

/// The f32 value of bf16 bits (exact).
#[inline(always)]
pub fn from_bf16(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `values` rounded to bf16 and back: what a bf16 layer's weights hold.
pub fn round_to_bf16(values: &[f32]) -> Vec<f32> {
    values.iter().map(|&v| from_bf16(to_bf16(v))).collect()
}

/// A Linear weight (burn's `[K, N]`) in bf16, packed for the kernels, with its f32 bias.
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    /// Input features `K`.
    pub k: usize,
    /// Output features `N`.
    pub n: usize,
    /// `K` rounded up to a whole AMX tile ([`amx::K_BF16`] inputs; zeros past `K`).
    k_padded: usize,
    /// `ceil(N / PANEL)` panels of `k_padded * PANEL` values: `[panel][k / 2][PANEL][2]`.
    panels: Vec<u16>,
    /// Per output channel, padded to whole panels (0 without a bias).
    bias: Vec<f32>,
}

impl PackedBf16 {
    /// Rounds `weight` (`[K, N]` row-major, burn's Linear layout) to bf16 and packs it with
    /// `bias` (`[N]`).
    pub fn new(weight: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [K, N]");
        let k_padded = k.div_ceil(amx::K_BF16) * amx::K_BF16;
        let num_panels = n.div_ceil(PANEL);
        let mut panels = vec![0u16; num_panels * k_padded * PANEL];
        for row in 0..k {
            for col in 0..n {
                let (panel, lane) = (col / PANEL, col % PANEL);
                let at = panel * k_padded * PANEL + (row / 2) * PANEL * 2 + lane * 2 + row % 2;
                panels[at] = to_bf16(weight[row * n + col]);
            }
        }
        let mut padded_bias = bias.map_or_else(Vec::new, <[f32]>::to_vec);
        padded_bias.resize(num_panels * PANEL, 0.0);
        Self {
            k,
            n,
            k_padded,
            panels,
            bias: padded_bias,
        }
    }

    fn panel(&self, p: usize) -> &[u16] {
        let len = self.k_padded * PANEL;
        &self.panels[p * len..(p + 1) * len]
    }

    /// `x [M, K] -> y [M, N]`: `x` rounded to bf16, products accumulated in f32, plus the bias.
    ///
    /// # Shapes
    /// - `x`: `[M, K]` row-major; returns `[M, N]` row-major
    pub fn forward(&self, x: &[f32], m: usize, kernel: Bf16Kernel) -> Vec<f32> {
        self.forward_rounded(&self.round_rows(x, m), m, kernel)
    }

    /// `x` rounded to bf16 in the layout the kernels read: `[rows, K_padded]` with the rows
    /// padded with zeros to whole AMX tiles and zeros past `K` in each row.
    ///
    /// # Shapes
    /// - `x`: `[M, K]` row-major; returns `[ceil(M / 16) * 16, K_padded]`
    pub fn round_rows(&self, x: &[f32], m: usize) -> Vec<u16> {
        assert_eq!(x.len(), m * self.k, "input is not [M, K]");
        let (k, kp) = (self.k, self.k_padded);
        // Every value is written once (rounded inputs, then zeros past `K` and in the padding
        // rows): zeroing the buffer first would cost another pass over it.
        let rows_padded = m.div_ceil(amx::TILE_ROWS) * amx::TILE_ROWS;
        let mut a: Vec<u16> = Vec::with_capacity(rows_padded * kp);
        let spare = &mut a.spare_capacity_mut()[..rows_padded * kp];
        let (real_rows, padding_rows) = spare.split_at_mut(m * kp);
        // (`kp` is 0 exactly when `k` is: then there is nothing to write, and no chunk size.)
        if k > 0 {
            real_rows
                .par_chunks_mut(kp)
                .zip(x.par_chunks(k))
                .with_min_len(16)
                .for_each(|(dst, row)| {
                    let (values, zeros) = dst.split_at_mut(k);
                    round_row(row, values);
                    zeros.fill(MaybeUninit::new(0));
                });
        }
        padding_rows.fill(MaybeUninit::new(0));
        // SAFETY: every one of the `rows_padded * kp` values was written above.
        unsafe { a.set_len(rows_padded * kp) };
        a
    }

    /// [`Self::forward`] of rows already rounded ([`Self::round_rows`]'s layout).
    ///
    /// # Shapes
    /// - `a`: `[ceil(M / 16) * 16, K_padded]`; returns `[M, N]` row-major
    pub fn forward_rounded(&self, a: &[u16], m: usize, kernel: Bf16Kernel) -> Vec<f32> {
        // Every value is written exactly once by the stores (tiles cover all rows x
        // channels), so the buffer is not zeroed first: that pass would cost as much as the
        // store itself.
        let mut out: Vec<f32> = Vec::with_capacity(m * self.n);
        let out_ptr = SharedOut(out.as_mut_ptr());
        self.for_each_tile(a, m, kernel, |acc, rows, row0, col0| {
            // SAFETY: tiles are disjoint (rows x channels) and within `[M, N]`, which `out`
            // has room for and outlives the loop.
            unsafe { self.store(acc, rows, row0, col0, &out_ptr) }
        });
        // SAFETY: the stores above wrote all `m * n` values (disjoint tiles covering
        // `[M, N]`), within the capacity reserved.
        unsafe { out.set_len(m * self.n) };
        out
    }

    /// `activation(x W + b)` rounded to bf16 as the input rows of `next` ([`Self::round_rows`]'s
    /// layout for `next`): a feed-forward block's first Linear layer and its activation, with
    /// the activation and the rounding applied to each tile as it is stored. The hidden values
    /// are then written once, in bf16, rather than in f32, read and written again by the
    /// activation, and read once more to be rounded for the second layer. The same values as
    /// `next.round_rows(activation(self.forward(x)))`.
    ///
    /// # Shapes
    /// - `x`: `[M, K]` row-major; returns `[ceil(M / 16) * 16, next's K_padded]`
    pub fn forward_activation_rounded(
        &self,
        x: &[f32],
        m: usize,
        kernel: Bf16Kernel,
        activation: Activation,
        next: &PackedBf16,
    ) -> Vec<u16> {
        assert_eq!(
            next.k, self.n,
            "next layer's inputs are not this layer's outputs"
        );
        let a = self.round_rows(x, m);
        let (n, ld) = (self.n, next.k_padded);
        let rows_padded = m.div_ceil(amx::TILE_ROWS) * amx::TILE_ROWS;
        let mut out: Vec<u16> = Vec::with_capacity(rows_padded * ld);
        // The zeros of the layout first (past `N` in every row, and the padding rows): the
        // stores below write the rest, each value once.
        let spare = &mut out.spare_capacity_mut()[..rows_padded * ld];
        let (real_rows, padding_rows) = spare.split_at_mut(m * ld);
        if ld > n {
            for row in real_rows.chunks_exact_mut(ld) {
                row[n..].fill(MaybeUninit::new(0));
            }
        }
        padding_rows.fill(MaybeUninit::new(0));
        let out_ptr = SharedBf16(out.as_mut_ptr());
        self.for_each_tile(&a, m, kernel, |acc, rows, row0, col0| {
            // SAFETY: tiles are disjoint (rows x channels) and within the first `N` columns
            // of the first `M` rows of `[rows_padded, ld]`, which `out` has room for.
            unsafe { self.store_rounded(acc, rows, row0, col0, activation, ld, &out_ptr) }
        });
        // SAFETY: the zeros and the stores above wrote all `rows_padded * ld` values.
        unsafe { out.set_len(rows_padded * ld) };
        out
    }

    /// Runs the products of the rounded rows `a` (`M` real rows) tile by tile in parallel,
    /// handing each tile's f32 accumulators (`rows` rows from `row0`, the panel's channels
    /// from `col0`) to `store`. Tiles are disjoint and together cover `[M, N]`.
    fn for_each_tile(
        &self,
        a: &[u16],
        m: usize,
        kernel: Bf16Kernel,
        store: impl Fn(&[[f32; PANEL]], usize, usize, usize) + Sync,
    ) {
        let (kp, n) = (self.k_padded, self.n);
        assert_eq!(
            a.len(),
            m.div_ceil(amx::TILE_ROWS) * amx::TILE_ROWS * kp,
            "input is not in the kernels' layout"
        );
        let tasks = PanelTasks::new(m, n, PANEL, ROWS_PER_TASK);
        (0..tasks.len()).into_par_iter().for_each(|task| {
            let (row0, rows, panels) = tasks.get(task);
            #[cfg(target_arch = "x86_64")]
            if kernel == Bf16Kernel::Amx && cpu_features().amx_bf16 {
                // The tile product overwrites the accumulators: zeroed once per task.
                let mut acc = [[0f32; PANEL]; amx::TILE_ROWS];
                for p in panels {
                    for r in (0..rows).step_by(amx::TILE_ROWS) {
                        let mr = amx::TILE_ROWS.min(rows - r);
                        let a_tile = &a[(row0 + r) * kp..(row0 + r + amx::TILE_ROWS) * kp];
                        // SAFETY: the CPU has AMX-BF16 and the tile permission (checked
                        // above); `kp` is a whole number of tiles, `a` holds 16 rows from
                        // here (rows are padded to whole tiles), the panel `kp * PANEL`.
                        unsafe { amx::bf16_tile_16x48(a_tile, kp, kp, self.panel(p), &mut acc) };
                        store(&acc, mr, row0 + r, p * PANEL);
                    }
                }
                // SAFETY: as above.
                unsafe { amx::release_tiles() };
                return;
            }
            // The microkernels overwrite the accumulators of the rows they compute (and the
            // store reads only those): zeroed once per task.
            let mut acc = [[0f32; PANEL]; MR];
            for p in panels {
                for r in (0..rows).step_by(MR) {
                    let mr = MR.min(rows - r);
                    let a_tile = &a[(row0 + r) * kp..(row0 + r + mr) * kp];
                    self.run_tile(kernel, a_tile, mr, p, &mut acc);
                    store(&acc, mr, row0 + r, p * PANEL);
                }
            }
        });
    }

    fn run_tile(
        &self,
        kernel: Bf16Kernel,
        a: &[u16],
        rows: usize,
        panel: usize,
        acc: &mut [[f32; PANEL]; MR],
    ) {
        let b = self.panel(panel);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 if cpu_features().avx512_bf16 => {
                // SAFETY: the CPU has AVX-512 F/BW/VL and BF16 (checked above); slices are in
                // bounds by construction (a: rows * k_padded, b: k_padded * PANEL).
                unsafe { x86::tile_avx512_bf16(a, rows, self.k_padded, b, acc) }
            }
            _ => tile_portable(a, rows, self.k_padded, b, acc),
        }
    }

    /// `out[row0 + r, col0 + c] = acc[r][c] + bias[col0 + c]` for the tile's real rows and
    /// channels.
    ///
    /// # Safety
    /// `out` points to room for `[M, N]` values and no other thread writes these rows x
    /// channels.
    unsafe fn store(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        out: &SharedOut,
    ) {
        #[cfg(target_arch = "x86_64")]
        if cpu_features().avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the rest as the caller says.
            return self.store_avx512(acc, rows, row0, col0, out);
        }
        self.store_portable(acc, rows, row0, col0, out)
    }

    /// [`Self::store`] compiled for AVX-512: the same additions, 16 lanes at a time (the task
    /// loop that calls it is compiled for the baseline x86-64, where they took 4).
    ///
    /// # Safety
    /// As [`Self::store`], and the CPU has AVX-512 F/BW/VL.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store_avx512(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        out: &SharedOut,
    ) {
        self.store_portable(acc, rows, row0, col0, out)
    }

    /// # Safety
    /// As [`Self::store`].
    #[inline(always)]
    unsafe fn store_portable(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        out: &SharedOut,
    ) {
        let n = self.n;
        let cols = PANEL.min(n - col0);
        let bias = &self.bias[col0..col0 + cols];
        for (r, acc) in acc.iter().enumerate().take(rows) {
            // SAFETY: in bounds of `[M, N]` (row0 + r < M, col0 + cols <= N); exclusive as the
            // caller promises. Raw writes: the memory may not be initialized yet.
            let dst = out.0.add((row0 + r) * n + col0);
            for (c, (&a, &b)) in acc[..cols].iter().zip(bias).enumerate() {
                dst.add(c).write(a + b);
            }
        }
    }
}

/// The bf16 output buffer, shared by tiles that write disjoint parts of it.
struct SharedBf16(*mut u16);
// SAFETY: only used to write disjoint tiles from different threads.
unsafe impl Sync for SharedBf16 {}

impl PackedBf16 {
    /// `out[row0 + r, col0 + c] = bf16(activation(acc[r][c] + bias[col0 + c]))` for the
    /// tile's real rows and channels, rows `ld` apart.
    ///
    /// # Safety
    /// `out` points to room for the tile's rows at `ld` (`col0 + PANEL.min(N - col0) <= ld`)
    /// and no other thread writes these rows x channels.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_rounded(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        activation: Activation,
        ld: usize,
        out: &SharedBf16,
    ) {
        #[cfg(target_arch = "x86_64")]
        if cpu_features().avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the rest as the caller says.
            return self.store_rounded_avx512(acc, rows, row0, col0, activation, ld, out);
        }
        self.store_rounded_portable(acc, rows, row0, col0, activation, ld, out)
    }

    /// [`Self::store_rounded`] compiled for AVX-512 (GELU's arithmetic and the rounding 16
    /// lanes at a time).
    ///
    /// # Safety
    /// As [`Self::store_rounded`], and the CPU has AVX-512 F/BW/VL.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store_rounded_avx512(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        activation: Activation,
        ld: usize,
        out: &SharedBf16,
    ) {
        self.store_rounded_portable(acc, rows, row0, col0, activation, ld, out)
    }

    /// # Safety
    /// As [`Self::store_rounded`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn store_rounded_portable(
        &self,
        acc: &[[f32; PANEL]],
        rows: usize,
        row0: usize,
        col0: usize,
        activation: Activation,
        ld: usize,
        out: &SharedBf16,
    ) {
        let cols = PANEL.min(self.n - col0);
        let bias = &self.bias[col0..col0 + cols];
        for (r, acc) in acc.iter().enumerate().take(rows) {
            // SAFETY: in bounds and exclusive, as the caller promises. Raw writes: the memory
            // may not be initialized yet.
            let dst = out.0.add((row0 + r) * ld + col0);
            let values = acc[..cols].iter().zip(bias).map(|(&a, &b)| a + b);
            // The same functions as the separate passes (`gelu_in_place`, `relu_in_place`,
            // `round_row`), so the same bits.
            match activation {
                Activation::Gelu => {
                    for (c, v) in values.enumerate() {
                        dst.add(c).write(to_bf16(gelu(v)));
                    }
                }
                Activation::Relu => {
                    for (c, v) in values.enumerate() {
                        dst.add(c).write(to_bf16(if v <= 0.0 { 0.0 } else { v }));
                    }
                }
            }
        }
    }
}

/// One row of activations rounded to bf16.
fn round_row(row: &[f32], dst: &mut [MaybeUninit<u16>]) {
    #[cfg(target_arch = "x86_64")]
    if cpu_features().avx512 {
        // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe Rust.
        return unsafe { x86::round_row_avx512(row, dst) };
    }
    round_row_portable(row, dst)
}

#[inline(always)]
fn round_row_portable(row: &[f32], dst: &mut [MaybeUninit<u16>]) {
    for (d, &v) in dst.iter_mut().zip(row) {
        d.write(to_bf16(v));
    }
}

/// The portable kernel: per row, per pair of inputs, the panel's 48 channels in f32.
fn tile_portable(a: &[u16], rows: usize, kp: usize, b: &[u16], acc: &mut [[f32; PANEL]; MR]) {
    for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
        let a_row = &a[r * kp..(r + 1) * kp];
        acc_row.fill(0.0);
        for (pair, b_pair) in b.chunks_exact(PANEL * 2).enumerate() {
            let a0 = from_bf16(a_row[2 * pair]);
            let a1 = from_bf16(a_row[2 * pair + 1]);
            for (acc_c, bc) in acc_row.iter_mut().zip(b_pair.chunks_exact(2)) {
                *acc_c += a0 * from_bf16(bc[0]) + a1 * from_bf16(bc[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MaybeUninit, MR, PANEL};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn round_row_avx512(row: &[f32], dst: &mut [MaybeUninit<u16>]) {
        super::round_row_portable(row, dst)
    }

    /// Up to 8 rows x 48 channels: 24 accumulators, three panel loads and one broadcast per row
    /// for every two inputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn tile_avx512_bf16(
        a: &[u16],
        rows: usize,
        kp: usize,
        b: &[u16],
        acc: &mut [[f32; PANEL]; MR],
    ) {
        debug_assert!(a.len() >= rows * kp && b.len() >= kp * PANEL);
        super::super::with_rows!(rows, avx512_rows(a, kp, b, acc))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn avx512_rows<const R: usize>(
        a: &[u16],
        kp: usize,
        b: &[u16],
        acc: &mut [[f32; PANEL]; MR],
    ) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        let mut c2 = [_mm512_setzero_ps(); R];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for pair in 0..kp / 2 {
            let bp = b.add(pair * PANEL * 2);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(32) as *const _));
            let b2: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(64) as *const _));
            for r in 0..R {
                let pair_bits = (a.add(r * kp + pair * 2) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair_bits));
                c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
                c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
                c2[r] = _mm512_dpbf16_ps(c2[r], av, b2);
            }
        }
        for r in 0..R {
            let dst = acc[r].as_mut_ptr();
            _mm512_storeu_ps(dst, c0[r]);
            _mm512_storeu_ps(dst.add(16), c1[r]);
            _mm512_storeu_ps(dst.add(32), c2[r]);
        }
    }
}

/// `bf16(x) @ bf16(weight) + bias` in f64: what every kernel approximates, to f32 rounding.
///
/// # Shapes
/// - `x`: `[M, K]`, `weight`: `[K, N]`, `bias`: `[N]`; returns `[M, N]`
pub fn bf16_linear_reference(
    x: &[f32],
    m: usize,
    weight: &[f32],
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    super::f32_linear_reference(&round_to_bf16(x), m, &round_to_bf16(weight), k, n, bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::assert_within_accumulation_error;
    use super::super::test_values as values;
    use super::super::ODD_SHAPES;

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_nan_and_infinities() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3F80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
        assert_eq!(to_bf16(-2.5), 0xC020);
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(f32::NEG_INFINITY)), f32::NEG_INFINITY);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert!(from_bf16(to_bf16(-f32::NAN)).is_nan());
        // The largest finite f32 rounds up to infinity, as IEEE round-to-nearest does.
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
        for v in values(1000, 9) {
            let r = from_bf16(to_bf16(v));
            assert!((r - v).abs() <= v.abs() * 2f32.powi(-8), "{v} -> {r}");
        }
    }

    #[test]
    fn every_kernel_equals_the_reference_on_odd_shapes() {
        for (m, k, n) in ODD_SHAPES {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let bias = values(n, 3);
            for bias in [None, Some(bias.as_slice())] {
                let packed = PackedBf16::new(&w, k, n, bias);
                let reference = bf16_linear_reference(&x, m, &w, k, n, bias);
                // The products are exact in f32: the bound is the f32 one over the rounded values.
                let (xr, wr) = (round_to_bf16(&x), round_to_bf16(&w));
                for kernel in Bf16Kernel::available() {
                    let y = packed.forward(&x, m, kernel);
                    let what = format!("{kernel:?}");
                    assert_within_accumulation_error(
                        &y,
                        &reference,
                        &xr,
                        &wr,
                        bias,
                        (m, k, n),
                        &what,
                    );
                }
            }
        }
    }

    #[test]
    fn the_fused_activation_and_rounding_equal_the_separate_passes() {
        use crate::kernels::activation::{gelu_in_place, relu_in_place};
        // (m, k, hidden, n): hidden widths off the panel and off the AMX tile's 32 inputs.
        for (m, k, hidden, n) in [
            (1, 5, 7, 3),
            (7, 33, 48, 9),
            (19, 64, 100, 48),
            (40, 384, 1536, 384),
        ] {
            let x = values(m * k, 11);
            let (w1, b1) = (values(k * hidden, 12), values(hidden, 13));
            let w2 = values(hidden * n, 14);
            let first = PackedBf16::new(&w1, k, hidden, Some(&b1));
            let second = PackedBf16::new(&w2, hidden, n, None);
            for kernel in Bf16Kernel::available() {
                for activation in [Activation::Gelu, Activation::Relu] {
                    let mut separate = first.forward(&x, m, kernel);
                    match activation {
                        Activation::Gelu => gelu_in_place(&mut separate),
                        Activation::Relu => relu_in_place(&mut separate),
                    }
                    let fused =
                        first.forward_activation_rounded(&x, m, kernel, activation, &second);
                    let what = format!("{kernel:?} {activation:?} ({m}, {k}, {hidden}, {n})");
                    assert!(fused == second.round_rows(&separate, m), "{what}");
                    let out = second.forward_rounded(&fused, m, kernel);
                    assert!(out == second.forward(&separate, m, kernel), "{what}");
                }
            }
        }
    }

    #[test]
    fn bf16_is_close_to_f32() {
        let (m, k, n) = (5, 384, 48);
        let x = values(m * k, 4);
        let w = values(k * n, 5);
        let y = PackedBf16::new(&w, k, n, None).forward(&x, m, Bf16Kernel::best());
        for row in 0..m {
            for col in 0..n {
                let exact: f32 = (0..k).map(|i| x[row * k + i] * w[i * n + col]).sum();
                let scale: f32 = (0..k)
                    .map(|i| (x[row * k + i] * w[i * n + col]).abs())
                    .sum();
                let err = (y[row * n + col] - exact).abs();
                assert!(
                    err <= 2f32.powi(-7) * scale,
                    "[{row}, {col}]: {} vs {exact}",
                    y[row * n + col]
                );
            }
        }
    }

    #[test]
    fn empty_inputs_give_empty_or_bias_outputs() {
        let packed = PackedBf16::new(&values(6, 7), 3, 2, Some(&[0.5, -2.0]));
        assert!(packed.forward(&[], 0, Bf16Kernel::best()).is_empty());
        assert_eq!(
            packed.forward(&[0.0; 3], 1, Bf16Kernel::best()),
            vec![0.5, -2.0]
        );
    }
}
