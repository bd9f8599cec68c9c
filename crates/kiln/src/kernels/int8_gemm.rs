//! `u8 x i8 -> i32` matrix products for int8 Linear layers, with the rescale to f32 (and the
//! bias) fused into the store.
//!
//! The weight is packed once into panels of [`PANEL`] output channels, each laid out for the
//! dot-product instructions: for every group of four inputs, the panel's 32 channels' four
//! `i8` side by side, so one 512-bit load feeds `vpdpbusd` for 16 channels. The kernel is
//! picked at run time: AMX-INT8 (`tdpbusd` tile products over the same panels, see
//! [`super::amx`]), AVX-512 VNNI, AVX-VNNI, or a portable one (which the compiler
//! vectorizes with AVX2 where present, widening to `i16`/`i32`: never the saturating
//! `vpmaddubsw`). Every kernel is tested against [`int8_linear_reference`] on odd shapes.
//!
//! [`int8_linear_reference`]: super::quantize::int8_linear_reference

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::amx;
use super::cpu_features;
use super::quantize::{quantize_row, rescale, Int8Weight, RowScale};

/// Output channels per packed panel.
pub const PANEL: usize = 32;
/// Rows of the activations per kernel call.
const MR: usize = 8;
/// Rows per parallel task: a panel is reused by this many rows while in cache; one AMX call.
const ROWS_PER_TASK: usize = 2 * amx::TILE_ROWS;

/// Which integer kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// AMX-INT8 (`tdpbusd` on tiles: 32 rows x 32 channels per call).
    Amx,
    /// AVX-512 VNNI (`vpdpbusd` on 512-bit registers).
    Avx512Vnni,
    /// AVX-VNNI (`vpdpbusd` on 256-bit registers).
    AvxVnni,
    /// Plain Rust, vectorized by the compiler (AVX2 where present).
    Portable,
}

impl Int8Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        let cpu = cpu_features();
        if cpu.amx_int8 {
            Self::Amx
        } else if cpu.avx512_vnni {
            Self::Avx512Vnni
        } else if cpu.avx_vnni {
            Self::AvxVnni
        } else {
            Self::Portable
        }
    }

    /// Every kernel this CPU can run (the tests check each against the reference).
    pub fn available() -> Vec<Self> {
        let cpu = cpu_features();
        let mut kernels = vec![Self::Portable];
        if cpu.avx_vnni {
            kernels.push(Self::AvxVnni);
        }
        if cpu.avx512_vnni {
            kernels.push(Self::Avx512Vnni);
        }
        if cpu.amx_int8 {
            kernels.push(Self::Amx);
        }
        kernels
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "amx-int8",
            Self::Avx512Vnni => "avx512-vnni",
            Self::AvxVnni => "avx-vnni",
            Self::Portable => "portable",
        }
    }
}

/// An [`Int8Weight`] packed for the kernels, with the host copy of the bias.
#[derive(Debug, Clone)]
pub struct PackedInt8 {
    /// Input features `K`.
    pub k: usize,
    /// Output features `N`.
    pub n: usize,
    /// `K` rounded up to a whole AMX tile ([`amx::K_INT8`] inputs; zeros past `K`).
    k_padded: usize,
    /// `ceil(N / PANEL)` panels of `k_padded * PANEL` bytes: `[panel][k / 4][PANEL][4]`.
    panels: Vec<i8>,
    /// Per output channel: scale, column sum, bias (0 without one); padded to whole panels.
    scales: Vec<f32>,
    column_sums: Vec<i32>,
    bias: Vec<f32>,
}

impl PackedInt8 {
    /// Packs a quantized weight and its bias (`[N]`).
    pub fn new(weight: &Int8Weight, bias: Option<&[f32]>) -> Self {
        let (k, n) = (weight.k, weight.n);
        let k_padded = k.div_ceil(amx::K_INT8) * amx::K_INT8;
        let num_panels = n.div_ceil(PANEL);
        let mut panels = vec![0i8; num_panels * k_padded * PANEL];
        for col in 0..n {
            let (panel, lane) = (col / PANEL, col % PANEL);
            let base = panel * k_padded * PANEL;
            for row in 0..k {
                panels[base + (row / 4) * PANEL * 4 + lane * 4 + row % 4] =
                    weight.values[col * k + row];
            }
        }
        let padded = num_panels * PANEL;
        let pad = |v: &[f32]| {
            let mut out = v.to_vec();
            out.resize(padded, 0.0);
            out
        };
        let mut column_sums = weight.column_sums.clone();
        column_sums.resize(padded, 0);
        Self {
            k,
            n,
            k_padded,
            panels,
            scales: pad(&weight.scales),
            column_sums,
            bias: bias.map_or_else(|| vec![0.0; padded], pad),
        }
    }

    fn panel(&self, p: usize) -> &[i8] {
        let len = self.k_padded * PANEL;
        &self.panels[p * len..(p + 1) * len]
    }

    /// `x [M, K] -> y [M, N]`: `x` quantized per row, integer products, rescaled with the bias.
    ///
    /// # Shapes
    /// - `x`: `[M, K]` row-major; returns `[M, N]` row-major
    pub fn forward(&self, x: &[f32], m: usize, kernel: Int8Kernel) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "input is not [M, K]");
        let (k, kp, n) = (self.k, self.k_padded, self.n);
        // Quantize rows: [M, Kp] u8 (zeros past K meet the packed zeros), with zero rows up to
        // a whole AMX call.
        let mut quantized = vec![0u8; m.div_ceil(ROWS_PER_TASK) * ROWS_PER_TASK * kp];
        let mut row_scales = vec![
            RowScale {
                scale: 1.0,
                zero_point: 0
            };
            m
        ];
        quantized
            .par_chunks_mut(kp)
            .zip(row_scales.par_iter_mut())
            .zip(x.par_chunks(k))
            .with_min_len(16)
            .for_each(|((q, scale), row)| *scale = quantize_row(row, &mut q[..k]));

        // Every value is written once by the stores below (tasks cover all rows, each all
        // panels), so the output is not zeroed first: that pass would cost as much as the store.
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        out.spare_capacity_mut()[..m * n]
            .par_chunks_mut(ROWS_PER_TASK * n.max(1))
            .enumerate()
            .for_each(|(task, out_rows)| {
                let row0 = task * ROWS_PER_TASK;
                let rows = out_rows.len() / n;
                let a = &quantized[row0 * kp..(row0 + ROWS_PER_TASK) * kp];
                let scales = &row_scales[row0..row0 + rows];
                #[cfg(target_arch = "x86_64")]
                if kernel == Int8Kernel::Amx && cpu_features().amx_int8 {
                    // The tile product overwrites the accumulators: zeroed once per task.
                    let mut acc = [[0i32; PANEL]; ROWS_PER_TASK];
                    for p in 0..n.div_ceil(PANEL) {
                        // SAFETY: the CPU has AMX-INT8 and the tile permission (checked above);
                        // `kp` is a whole number of tiles, `a` holds 32 rows (padded), the
                        // panel `kp * PANEL` values.
                        unsafe { amx::int8_tile_32x32(a, kp, kp, self.panel(p), &mut acc) };
                        let tile = Tile {
                            a,
                            rows,
                            row_scales: scales,
                            col0: p * PANEL,
                        };
                        self.store(&tile, &acc, out_rows);
                    }
                    // SAFETY: as above.
                    unsafe { amx::release_tiles() };
                    return;
                }
                // The microkernels overwrite the accumulators of the rows they compute (and
                // the store reads only those): zeroed once per task.
                let mut acc = [[0i32; PANEL]; MR];
                for p in 0..n.div_ceil(PANEL) {
                    for r in (0..rows).step_by(MR) {
                        let mr = MR.min(rows - r);
                        let tile = Tile {
                            a: &a[r * kp..(r + mr) * kp],
                            rows: mr,
                            row_scales: &scales[r..r + mr],
                            col0: p * PANEL,
                        };
                        let out_tile = &mut out_rows[r * n..(r + mr) * n];
                        self.run_tile(kernel, &tile, p, &mut acc, out_tile);
                    }
                }
            });
        // SAFETY: the tasks above wrote all `m * n` values.
        unsafe { out.set_len(m * n) };
        out
    }

    fn run_tile(
        &self,
        kernel: Int8Kernel,
        tile: &Tile,
        panel: usize,
        acc: &mut [[i32; PANEL]; MR],
        out: &mut [MaybeUninit<f32>],
    ) {
        let b = self.panel(panel);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx512Vnni if cpu_features().avx512_vnni => {
                // SAFETY: the CPU has AVX-512 F/BW/VL and VNNI (checked above); slices are in
                // bounds by construction (a: rows * k_padded, b: k_padded * PANEL).
                unsafe { x86::tile_avx512_vnni(tile.a, tile.rows, self.k_padded, b, acc) }
            }
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::AvxVnni if cpu_features().avx_vnni => {
                // SAFETY: the CPU has AVX2 and AVX-VNNI (checked above); bounds as above.
                unsafe { x86::tile_avx_vnni(tile.a, tile.rows, self.k_padded, b, acc) }
            }
            _ => tile_portable_dispatch(tile.a, tile.rows, self.k_padded, b, acc),
        }
        self.store(tile, acc, out);
    }

    /// `out[r, col0 + c] = rescale(acc[r][c])` for the tile's real rows and channels.
    fn store(&self, tile: &Tile, acc: &[[i32; PANEL]], out: &mut [MaybeUninit<f32>]) {
        #[cfg(target_arch = "x86_64")]
        if cpu_features().avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe Rust.
            return unsafe { self.store_avx512(tile, acc, out) };
        }
        self.store_portable(tile, acc, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store_avx512(&self, tile: &Tile, acc: &[[i32; PANEL]], out: &mut [MaybeUninit<f32>]) {
        self.store_portable(tile, acc, out)
    }

    #[inline(always)]
    fn store_portable(&self, tile: &Tile, acc: &[[i32; PANEL]], out: &mut [MaybeUninit<f32>]) {
        let n = self.n;
        let c0 = tile.col0;
        let cols = PANEL.min(n - c0);
        // Slices of one length, zipped: no bounds checks, so the loop vectorizes.
        let scales = &self.scales[c0..c0 + cols];
        let sums = &self.column_sums[c0..c0 + cols];
        let bias = &self.bias[c0..c0 + cols];
        for r in 0..tile.rows {
            let row = tile.row_scales[r];
            let dst = &mut out[r * n + c0..r * n + c0 + cols];
            let acc = &acc[r][..cols];
            for ((((d, &a), &s), &sum), &b) in
                dst.iter_mut().zip(acc).zip(scales).zip(sums).zip(bias)
            {
                d.write(rescale(a, row, s, sum, b));
            }
        }
    }
}

/// One kernel call: up to [`MR`] quantized rows against one panel.
struct Tile<'a> {
    /// `[rows, k_padded]` u8.
    a: &'a [u8],
    rows: usize,
    row_scales: &'a [RowScale],
    /// The first output channel of the panel.
    col0: usize,
}

fn tile_portable_dispatch(
    a: &[u8],
    rows: usize,
    kp: usize,
    b: &[i8],
    acc: &mut [[i32; PANEL]; MR],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu_features().avx2_fma {
        // SAFETY: the CPU has AVX2 (checked above); the body is safe Rust.
        unsafe { x86::tile_portable_avx2(a, rows, kp, b, acc) };
        return;
    }
    tile_portable(a, rows, kp, b, acc)
}

/// The portable kernel: per row, per group of four inputs, 32 channels' widening products.
#[inline(always)]
fn tile_portable(a: &[u8], rows: usize, kp: usize, b: &[i8], acc: &mut [[i32; PANEL]; MR]) {
    for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
        let a_row = &a[r * kp..(r + 1) * kp];
        acc_row.fill(0);
        for (k4, b_group) in b.chunks_exact(PANEL * 4).enumerate() {
            let av = &a_row[k4 * 4..k4 * 4 + 4];
            for (c, acc_c) in acc_row.iter_mut().enumerate() {
                let bc = &b_group[c * 4..c * 4 + 4];
                *acc_c += av[0] as i32 * bc[0] as i32
                    + av[1] as i32 * bc[1] as i32
                    + av[2] as i32 * bc[2] as i32
                    + av[3] as i32 * bc[3] as i32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, PANEL};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile_portable_avx2(
        a: &[u8],
        rows: usize,
        kp: usize,
        b: &[i8],
        acc: &mut [[i32; PANEL]; MR],
    ) {
        super::tile_portable(a, rows, kp, b, acc)
    }

    /// Up to 8 rows x 32 channels: 16 accumulators, two panel loads and one broadcast per row
    /// for every four inputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn tile_avx512_vnni(
        a: &[u8],
        rows: usize,
        kp: usize,
        b: &[i8],
        acc: &mut [[i32; PANEL]; MR],
    ) {
        super::super::with_rows!(rows, avx512_rows(a, kp, b, acc))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn avx512_rows<const R: usize>(
        a: &[u8],
        kp: usize,
        b: &[i8],
        acc: &mut [[i32; PANEL]; MR],
    ) {
        debug_assert!(a.len() >= R * kp && b.len() >= kp * PANEL);
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for k4 in 0..kp / 4 {
            let bp = b.add(k4 * PANEL * 4);
            let b0 = _mm512_loadu_si512(bp as *const _);
            let b1 = _mm512_loadu_si512(bp.add(64) as *const _);
            for r in 0..R {
                let av = _mm512_set1_epi32((a.add(r * kp + k4 * 4) as *const i32).read_unaligned());
                lo[r] = _mm512_dpbusd_epi32(lo[r], av, b0);
                hi[r] = _mm512_dpbusd_epi32(hi[r], av, b1);
            }
        }
        for r in 0..R {
            _mm512_storeu_si512(acc[r].as_mut_ptr() as *mut _, lo[r]);
            _mm512_storeu_si512(acc[r].as_mut_ptr().add(16) as *mut _, hi[r]);
        }
    }

    /// Up to 8 rows x 32 channels in two halves of 16 (AVX2 has 16 registers): 8 accumulators
    /// per half.
    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn tile_avx_vnni(
        a: &[u8],
        rows: usize,
        kp: usize,
        b: &[i8],
        acc: &mut [[i32; PANEL]; MR],
    ) {
        let mut r = 0;
        while r < rows {
            let take = 4.min(rows - r);
            let a = &a[r * kp..];
            let out = &mut acc[r..];
            match take {
                4 => avx_rows::<4>(a, kp, b, out),
                3 => avx_rows::<3>(a, kp, b, out),
                2 => avx_rows::<2>(a, kp, b, out),
                _ => avx_rows::<1>(a, kp, b, out),
            }
            r += take;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn avx_rows<const R: usize>(a: &[u8], kp: usize, b: &[i8], acc: &mut [[i32; PANEL]]) {
        debug_assert!(a.len() >= R * kp && b.len() >= kp * PANEL && acc.len() >= R);
        let (ap, bp0) = (a.as_ptr(), b.as_ptr());
        for half in 0..2 {
            let mut c0 = [_mm256_setzero_si256(); R];
            let mut c1 = [_mm256_setzero_si256(); R];
            for k4 in 0..kp / 4 {
                let bp = bp0.add(k4 * PANEL * 4 + half * 64);
                let b0 = _mm256_loadu_si256(bp as *const _);
                let b1 = _mm256_loadu_si256(bp.add(32) as *const _);
                for r in 0..R {
                    let av =
                        _mm256_set1_epi32((ap.add(r * kp + k4 * 4) as *const i32).read_unaligned());
                    c0[r] = _mm256_dpbusd_avx_epi32(c0[r], av, b0);
                    c1[r] = _mm256_dpbusd_avx_epi32(c1[r], av, b1);
                }
            }
            for r in 0..R {
                let dst = acc[r].as_mut_ptr().add(half * 16);
                _mm256_storeu_si256(dst as *mut _, c0[r]);
                _mm256_storeu_si256(dst.add(8) as *mut _, c1[r]);
            }
        }
    }
}

/// Quantizes `weight` (burn's `[K, N]`) and packs it with `bias`: what an int8 Linear keeps.
pub fn pack_linear(
    weight: &[f32],
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
) -> (Int8Weight, PackedInt8) {
    let quantized = Int8Weight::quantize(weight, k, n);
    let packed = PackedInt8::new(&quantized, bias);
    (quantized, packed)
}

#[cfg(test)]
mod tests {
    use super::super::quantize::int8_linear_reference;
    use super::*;

    use super::super::test_values as values;
    use super::super::ODD_SHAPES;

    #[test]
    fn every_kernel_equals_the_reference_on_odd_shapes() {
        for (m, k, n) in ODD_SHAPES {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let bias = values(n, 3);
            for bias in [None, Some(bias.as_slice())] {
                let (quantized, packed) = pack_linear(&w, k, n, bias);
                let reference = int8_linear_reference(&x, m, &quantized, bias);
                for kernel in Int8Kernel::available() {
                    let y = packed.forward(&x, m, kernel);
                    assert_eq!(
                        y,
                        reference,
                        "{kernel:?} on {m}x{k}x{n}, bias {}",
                        bias.is_some()
                    );
                }
            }
        }
    }

    #[test]
    fn the_reference_is_close_to_f32() {
        let (m, k, n) = (5, 384, 48);
        let x = values(m * k, 4);
        let w = values(k * n, 5);
        let (quantized, _) = pack_linear(&w, k, n, None);
        let y = int8_linear_reference(&x, m, &quantized, None);
        for row in 0..m {
            for col in 0..n {
                let exact: f32 = (0..k).map(|i| x[row * k + i] * w[i * n + col]).sum();
                let scale: f32 = (0..k)
                    .map(|i| (x[row * k + i] * w[i * n + col]).abs())
                    .sum();
                let err = (y[row * n + col] - exact).abs();
                assert!(
                    err <= 0.02 * scale,
                    "[{row}, {col}]: {} vs {exact}",
                    y[row * n + col]
                );
            }
        }
    }

    #[test]
    fn zero_is_exact_and_a_zero_row_gives_the_bias() {
        let mut q = [0u8; 3];
        let scale = quantize_row(&[0.0, -1.0, 3.0], &mut q);
        assert_eq!(q[0] as i32, scale.zero_point);
        let (quantized, packed) = pack_linear(&values(6, 7), 3, 2, Some(&[0.5, -2.0]));
        let y = packed.forward(&[0.0; 3], 1, Int8Kernel::best());
        assert_eq!(y, vec![0.5, -2.0]);
        assert_eq!(quantized.values.len(), 6);
    }
}
