//! int8 quantization: weights symmetric per output channel (once, at load), activations
//! asymmetric u8 per row (dynamic, every pass).
//!
//! A product of a quantized row `x ~ sx * (qx - zx)` and a quantized column `w ~ sw * qw` is
//! `sx * sw * (sum(qx * qw) - zx * sum(qw))`: one integer dot product, the column sum taken
//! once with the weights, and a rescale.

/// One Linear layer's weight in int8: `w[k, n] ~ scales[n] * values[n * k_len + k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weight {
    /// Input features `K`.
    pub k: usize,
    /// Output features `N`.
    pub n: usize,
    /// `[N, K]` row-major: one output channel per row.
    pub values: Vec<i8>,
    /// `[N]`: the scale of each output channel (`max |w| / 127`, 1 for an all-zero channel).
    pub scales: Vec<f32>,
    /// `[N]`: `sum_k values[n, k]`, to take the activations' zero points out of the products.
    pub column_sums: Vec<i32>,
}

impl Int8Weight {
    /// Quantizes burn's `[K, N]` (`[in, out]`) row-major weight, one scale per output channel.
    pub fn quantize(weight: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [K, N]");
        let mut values = vec![0i8; n * k];
        let mut scales = vec![1f32; n];
        let mut column_sums = vec![0i32; n];
        for col in 0..n {
            let max = (0..k)
                .map(|row| weight[row * n + col].abs())
                .fold(0f32, f32::max);
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            let mut sum = 0i32;
            for row in 0..k {
                let q = (weight[row * n + col] / scale).round().clamp(-127.0, 127.0) as i8;
                values[col * k + row] = q;
                sum += q as i32;
            }
            scales[col] = scale;
            column_sums[col] = sum;
        }
        Self {
            k,
            n,
            values,
            scales,
            column_sums,
        }
    }

    /// The weight these values stand for, as burn's `[K, N]` row-major f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.k * self.n];
        for col in 0..self.n {
            for row in 0..self.k {
                out[row * self.n + col] = self.values[col * self.k + row] as f32 * self.scales[col];
            }
        }
        out
    }
}

/// One row of activations quantized to u8: `x ~ scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScale {
    /// Step between two u8 levels.
    pub scale: f32,
    /// The u8 level that stands for 0.0 (so zero is exact, as padding and ReLU need).
    pub zero_point: i32,
}

/// Quantizes one row to u8 over `[min(row, 0), max(row, 0)]`, writing `out` (same length).
/// Non-finite values are not expected here (inputs are checked finite at the model's edge).
pub fn quantize_row(row: &[f32], out: &mut [u8]) -> RowScale {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = super::cpu_features();
        if cpu.avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe Rust.
            return unsafe { quantize_row_avx512(row, out) };
        }
        if cpu.avx2_fma {
            // SAFETY: the CPU has AVX2 and FMA (checked above); the body is safe Rust.
            return unsafe { quantize_row_avx2(row, out) };
        }
    }
    quantize_row_portable(row, out)
}

/// [`quantize_row`] with AVX-512: the range with 16 lanes, then truncation and a saturating
/// pack to u8, 16 values per step (the same arithmetic as the portable body).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512(row: &[f32], out: &mut [u8]) -> RowScale {
    use std::arch::x86_64::*;
    assert_eq!(row.len(), out.len());
    let chunks = row.len() / 16;
    let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for i in 0..chunks {
        let v = _mm512_loadu_ps(row.as_ptr().add(i * 16));
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
    }
    let (mut lo, mut hi) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
    for &v in &row[chunks * 16..] {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    let (scale, inv, zero_point) = row_range(lo, hi);
    let (inv_v, zp_v) = (_mm512_set1_ps(inv), _mm512_set1_ps(zero_point));
    let (min_v, max_v, half) = (
        _mm512_setzero_ps(),
        _mm512_set1_ps(255.0),
        _mm512_set1_ps(0.5),
    );
    for i in 0..chunks {
        let v = _mm512_loadu_ps(row.as_ptr().add(i * 16));
        let q = _mm512_fmadd_ps(v, inv_v, zp_v);
        let q = _mm512_add_ps(_mm512_min_ps(_mm512_max_ps(q, min_v), max_v), half);
        let bytes = _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(q));
        _mm_storeu_si128(out.as_mut_ptr().add(i * 16) as *mut __m128i, bytes);
    }
    for (o, &v) in out[chunks * 16..].iter_mut().zip(&row[chunks * 16..]) {
        *o = quantize_value(v, inv, zero_point);
    }
    RowScale {
        scale,
        zero_point: zero_point as i32,
    }
}

/// Scale, its inverse and the zero point of a row whose values span `[lo, hi]` (`lo <= 0 <= hi`).
#[inline(always)]
fn row_range(lo: f32, hi: f32) -> (f32, f32, f32) {
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let inv = 1.0 / scale;
    (scale, inv, (-lo * inv).round().clamp(0.0, 255.0))
}

/// One value's u8 level: `v / scale + zero_point` (one fused multiply-add), clamped, rounded
/// half up by truncation (the value is then non-negative).
#[inline(always)]
fn quantize_value(v: f32, inv: f32, zero_point: f32) -> u8 {
    (v.mul_add(inv, zero_point).clamp(0.0, 255.0) + 0.5) as u8
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(row: &[f32], out: &mut [u8]) -> RowScale {
    quantize_row_portable(row, out)
}

/// The body of [`quantize_row`] for CPUs without AVX-512 (compiled with AVX2 where present).
#[inline(always)]
fn quantize_row_portable(row: &[f32], out: &mut [u8]) -> RowScale {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in row {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    let (scale, inv, zero_point) = row_range(lo, hi);
    for (o, &v) in out.iter_mut().zip(row) {
        *o = quantize_value(v, inv, zero_point);
    }
    RowScale {
        scale,
        zero_point: zero_point as i32,
    }
}

/// The f32 result of one output element from its integer dot product.
#[inline(always)]
pub fn rescale(acc: i32, row: RowScale, weight_scale: f32, column_sum: i32, bias: f32) -> f32 {
    (acc - row.zero_point * column_sum) as f32 * (row.scale * weight_scale) + bias
}

/// The plain reference of an int8 Linear: `y[m, n] = x[m, :] . w[:, n] + bias[n]` with `x`
/// quantized per row and `w` per column, every product in `i32`. Kernels are tested against it.
///
/// # Shapes
/// - `x`: `[M, K]` row-major; returns `[M, N]` row-major
pub fn int8_linear_reference(
    x: &[f32],
    m: usize,
    w: &Int8Weight,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    let mut out = vec![0f32; m * n];
    let mut q = vec![0u8; k];
    for row in 0..m {
        let scale = quantize_row(&x[row * k..(row + 1) * k], &mut q);
        for col in 0..n {
            let wc = &w.values[col * k..(col + 1) * k];
            let acc: i32 = q.iter().zip(wc).map(|(&a, &b)| a as i32 * b as i32).sum();
            let b = bias.map_or(0.0, |b| b[col]);
            out[row * n + col] = rescale(acc, scale, w.scales[col], w.column_sums[col], b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_quantizer_gives_the_same_levels() {
        for len in [1, 15, 16, 17, 384, 1000] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 40.0) * 0.173)
                .collect();
            let (mut fast, mut plain) = (vec![0u8; len], vec![0u8; len]);
            let a = quantize_row(&row, &mut fast);
            let b = quantize_row_portable(&row, &mut plain);
            assert_eq!((a, &fast), (b, &plain), "length {len}");
            // The levels stand for the values within half a step.
            for (&q, &v) in fast.iter().zip(&row) {
                let back = (q as i32 - a.zero_point) as f32 * a.scale;
                assert!((back - v).abs() <= a.scale * 0.5 + 1e-6, "{v} -> {back}");
            }
        }
    }
}
