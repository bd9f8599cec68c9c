//! GELU (`x * (1 + erf(x / sqrt 2)) / 2`, PyTorch's exact form) vectorized and spread over
//! threads. A scalar `erf` from libm costs tens of cycles per value, which on a text model's
//! feed-forward activations weighs as much as the matrix products around it.

use rayon::prelude::*;

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `erf` by a rational approximation (odd polynomial over even polynomial in `x`, clamped to
/// `[-4, 4]`, beyond which `erf` is `+-1` in f32): within 4e-7 (a few f32 ulps of 1) of the
/// exact value everywhere.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_600_5e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329_4e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// GELU of one value.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// ReLU of every value, in place, in parallel; NaN stays NaN (PyTorch's semantics).
pub fn relu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        for v in chunk {
            if *v <= 0.0 {
                *v = 0.0;
            }
        }
    });
}

/// GELU of every value, in place, in parallel.
///
/// A separate pass over the feed-forward's hidden values rather than an epilogue of the GEMM
/// before it: the rational `erf` is about twenty vector operations per 16 values, so the pass
/// is bound by arithmetic, not by reading the values back; applying it to each block of the
/// GEMM's output while in L1, or replacing the division by a reciprocal, saves nothing. (The
/// bf16 feed-forward block does apply [`gelu`] in its first product's store, where it also
/// saves writing the hidden values in f32 and reading them back to round them.)
pub fn gelu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

fn gelu_chunk(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = super::cpu_features();
        if cpu.avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe Rust.
            return unsafe { gelu_avx512(values) };
        }
        if cpu.avx2_fma {
            // SAFETY: the CPU has AVX2 and FMA (checked above); the body is safe Rust.
            return unsafe { gelu_avx2(values) };
        }
    }
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (|x| <= 4: about 1e-9 after cancellation), 1 beyond.
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.5 {
            return x.signum();
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_4e_7_of_the_series() {
        let (mut worst, mut at) = (0f64, 0f32);
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let err = (erf(x) as f64 - erf_reference(x as f64)).abs();
            if err > worst {
                (worst, at) = (err, x);
            }
        }
        assert!(worst <= 4e-7, "{worst} at {at}");
        assert_eq!(erf(100.0), 1.0);
        assert_eq!(erf(-100.0), -1.0);
    }

    #[test]
    fn gelu_in_place_equals_one_value_at_a_time_on_every_length() {
        for len in [0, 1, 15, 17, CHUNK + 3, 40_001] {
            let mut values: Vec<f32> = if len == 40_001 {
                // A sweep of [-20, 20] in steps of 1e-3, past erf's clamp at 4 * sqrt 2.
                (0..len).map(|i| (i as f32 - 20_000.0) * 1e-3).collect()
            } else {
                (0..len).map(|i| (i as f32 * 0.37).sin() * 6.0).collect()
            };
            let want: Vec<f32> = values.iter().map(|&v| gelu(v)).collect();
            gelu_in_place(&mut values);
            for (a, b) in values.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        // GELU's shape: ~0 far left, ~x far right, 0 at 0.
        assert!(gelu(-10.0).abs() < 1e-6 && (gelu(10.0) - 10.0).abs() < 1e-5);
        assert_eq!(gelu(0.0), 0.0);
    }
}
