//! Packed attention with its two products in bf16, for `Precision::Bf16`: `q kᵀ` and the
//! weights times `v` as AVX-512 BF16 dot products (`vdpbf16ps`: pairs of bf16 products summed
//! into f32 lanes, twice the multiply-adds of an f32 FMA per instruction), the softmax between
//! them in f32, as in [`packed_attention`](super::packed_attention). The scaled queries, the
//! keys, the values and the softmax's unnormalized weights are rounded to bf16 (to nearest
//! even by `vcvtneps2bf16`, as the bf16 Linear layers round their inputs; it reads subnormal
//! inputs as zeros), as PyTorch's bf16 autocast rounds the inputs of attention's matrix
//! products; the weights' sum and the division by it stay f32.
//!
//! Layouts (the pairs `vdpbf16ps` multiplies are two bf16 in one 32-bit lane, low half first):
//! - keys `[ceil(Dh / 2), padded]`: lane `(p, j)` holds key `j`'s dimensions `2p, 2p + 1`, so
//!   16 keys' scores accumulate in one register while a query's pair is broadcast;
//! - values `[padded / 2, width]`: lane `(p, c)` holds keys `2p, 2p + 1`'s value `c`, so 16 of
//!   the context's values accumulate in one register while a query's pair of weights is
//!   broadcast.

use super::{for_each_head, zeroed, HeadTask, LANES, QUERIES};

/// [`packed_attention`](super::packed_attention) with `q kᵀ` and the weights times `v` in bf16
/// (see the module's doc) where the CPU has AVX-512 BF16; the f32 kernel elsewhere.
///
/// # Shapes
/// As [`packed_attention`](super::packed_attention): `qkv` `[N, 3 * H * Dh]` in, the context
/// `[N, H * Dh]` out.
pub fn packed_attention_bf16(
    qkv: &[f32],
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
    causal: bool,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::cpu_features().avx512_bf16 {
        // SAFETY: `x86::head_attention` writes its task's `len` rows of `Dh` values at a
        // stride of `H * Dh` and nothing else; the CPU has AVX-512 F/BW/VL and BF16 (checked
        // above: `avx512_bf16` implies the rest).
        return unsafe {
            for_each_head(
                qkv,
                lengths,
                heads,
                head_dim,
                causal,
                |task, scratch: &mut Scratch, out| x86::head_attention(task, scratch, out),
            )
        };
    }
    super::packed_attention(qkv, lengths, heads, head_dim, causal)
}

/// The buffers of one head's attention, kept by a worker across its tasks.
#[derive(Default)]
struct Scratch {
    /// The keys in bf16 pairs, row by row `[len, ceil(Dh / 2)]` (before their transpose).
    key_rows: Vec<u32>,
    /// The keys in bf16 pairs, `[ceil(Dh / 2), padded]`, zeros past the sequence.
    keys: Vec<u32>,
    /// The values in bf16 pairs of keys, `[padded / 2, width]`, zeros past the sequence and
    /// past `Dh`.
    values: Vec<u32>,
    /// One block of scaled queries in bf16 pairs, `[QUERIES, ceil(Dh / 2)]`.
    queries: Vec<u32>,
    /// `[QUERIES, padded]` f32 scores of one block of queries, then their weights in place.
    scores: Vec<f32>,
    /// The weights in bf16 pairs, `[QUERIES, padded / 2]`.
    weights: Vec<u32>,
}

/// `dst[c * dst_stride + r] = src[r * cols + c]` for `rows` rows of `cols` values: 4 x 4 at a
/// time in SSE registers on x86-64 (shuffles only, so any bits go through unchanged).
#[inline(always)]
fn transpose_u32(src: &[u32], rows: usize, cols: usize, dst: &mut [u32], dst_stride: usize) {
    assert!(src.len() >= rows * cols && (cols == 0 || dst.len() >= (cols - 1) * dst_stride + rows));
    let (rows_done, cols_done) = if cfg!(target_arch = "x86_64") {
        (rows / 4 * 4, cols / 4 * 4)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    for r in (0..rows_done).step_by(4) {
        for c in (0..cols_done).step_by(4) {
            use std::arch::x86_64::*;
            // SAFETY: SSE2 is part of x86-64; rows `r..r + 4` x columns `c..c + 4` of `src`
            // and their transposed places in `dst` are in bounds (asserted above).
            unsafe {
                let load = |i: usize| _mm_loadu_si128(src.as_ptr().add((r + i) * cols + c).cast());
                let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
                let (t0, t1) = (_mm_unpacklo_epi32(r0, r1), _mm_unpackhi_epi32(r0, r1));
                let (t2, t3) = (_mm_unpacklo_epi32(r2, r3), _mm_unpackhi_epi32(r2, r3));
                let columns = [
                    _mm_unpacklo_epi64(t0, t2),
                    _mm_unpackhi_epi64(t0, t2),
                    _mm_unpacklo_epi64(t1, t3),
                    _mm_unpackhi_epi64(t1, t3),
                ];
                for (i, column) in columns.into_iter().enumerate() {
                    let at = dst.as_mut_ptr().add((c + i) * dst_stride + r);
                    _mm_storeu_si128(at.cast(), column);
                }
            }
        }
    }
    for r in 0..rows {
        let from = if r < rows_done { cols_done } else { 0 };
        for c in from..cols {
            dst[c * dst_stride + r] = src[r * cols + c];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::x86::{lanes, softmax};
    use super::super::{passes, with_blocks};
    use super::{transpose_u32, zeroed, HeadTask, Scratch, LANES, QUERIES};
    use std::arch::x86_64::*;

    /// How many rows ahead of the one being packed the keys and values are prefetched.
    const AHEAD: usize = 8;

    /// `dst[p]` = the bf16 pair `(src[2p] * scale, src[2p + 1] * scale)` (rounded to nearest
    /// even by `vcvtneps2bf16`), a zero past the end of an odd `src`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and BF16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn pack_pairs(src: &[f32], scale: f32, dst: &mut [u32]) {
        assert_eq!(dst.len(), src.len().div_ceil(2));
        let (scale, halves) = (_mm512_set1_ps(scale), dst.as_mut_ptr().cast::<i16>());
        for c in (0..src.len()).step_by(LANES) {
            let n = (src.len() - c).min(LANES);
            let v = _mm512_maskz_loadu_ps(lanes(n), src.as_ptr().add(c));
            let rounded: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_mul_ps(v, scale)));
            // Whole pairs: an odd tail's pair ends in the zero of its empty lane.
            _mm256_mask_storeu_epi16(halves.add(c), lanes(n.div_ceil(2) * 2), rounded);
        }
    }

    /// `dst[c]` = the bf16 pair `(first[c], second[c])`; `second` empty: a zero in its place.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and BF16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn interleave_pairs(first: &[f32], second: &[f32], dst: &mut [u32]) {
        assert!(dst.len() == first.len() && (second.is_empty() || second.len() == first.len()));
        // Word `2i` from `first[i]` (word `i` of the conversion), `2i + 1` from `second[i]`
        // (word `16 + i`).
        let order: [u16; 32] = std::array::from_fn(|w| (w / 2 + (w % 2) * 16) as u16);
        let order = _mm512_loadu_si512(order.as_ptr().cast());
        for c in (0..first.len()).step_by(LANES) {
            let mask = lanes((first.len() - c).min(LANES));
            let a = _mm512_maskz_loadu_ps(mask, first.as_ptr().add(c));
            let b = if second.is_empty() {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(mask, second.as_ptr().add(c))
            };
            // Words 0..16 from `a`, 16..32 from `b`.
            let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let pairs = _mm512_permutexvar_epi16(order, both);
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(c).cast(), mask, pairs);
        }
    }

    /// One head of one sequence: its context `[len, Dh]` written to `out`, rows at a stride of
    /// `H * Dh`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and BF16; `out` has `task.len` rows of `Dh` writable values
    /// at a stride of `H * Dh`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn head_attention(task: &HeadTask, scratch: &mut Scratch, out: *mut f32) {
        let &HeadTask {
            len,
            heads,
            head_dim,
            causal,
            ..
        } = task;
        let inner = heads * head_dim;
        let row = |i: usize, part: usize| task.row(i, part);
        let half = head_dim.div_ceil(2);
        let width = head_dim.div_ceil(LANES) * LANES;
        let padded = len.div_ceil(LANES) * LANES;
        let pairs = padded / 2;
        let Scratch {
            key_rows,
            keys,
            values,
            queries,
            scores,
            weights,
        } = scratch;
        // [len, Dh] -> [len, Dh / 2] pairs -> [Dh / 2, padded]
        let key_rows = zeroed(key_rows, len * half);
        for (j, dst) in key_rows.chunks_exact_mut(half).enumerate() {
            task.prefetch(j + AHEAD..j + AHEAD + 1, 1);
            pack_pairs(row(j, 1), 1.0, dst);
        }
        let keys = zeroed(keys, half * padded);
        transpose_u32(key_rows, len, half, keys, padded);
        // [len, Dh] -> [padded / 2, width]: rows 2p and 2p + 1 interleaved.
        let values = zeroed(values, pairs * width);
        for (p, dst) in values
            .chunks_exact_mut(width)
            .take(len.div_ceil(2))
            .enumerate()
        {
            task.prefetch(2 * p + AHEAD..2 * p + AHEAD + 2, 2);
            let second = if 2 * p + 1 < len {
                row(2 * p + 1, 2)
            } else {
                &[]
            };
            interleave_pairs(row(2 * p, 2), second, &mut dst[..head_dim]);
        }
        task.prefetch(0..QUERIES, 0);
        let scale = (head_dim as f32).powf(-0.5);
        let scores = zeroed(scores, QUERIES * padded);
        // Rows past a block's own queries keep an earlier block's (finite) values: their
        // products are computed and never stored.
        let queries = zeroed(queries, QUERIES * half);
        let weights = zeroed(weights, QUERIES * pairs);
        let mut inv = [0f32; QUERIES];
        for first in (0..len).step_by(QUERIES) {
            let rows = QUERIES.min(len - first);
            // The keys any query of the block sees.
            let seen = if causal { first + rows } else { len };
            for (r, dst) in queries.chunks_exact_mut(half).take(rows).enumerate() {
                pack_pairs(row(first + r, 0), scale, dst);
            }
            task.prefetch(first + QUERIES..first + 2 * QUERIES, 0);
            self::scores(queries, half, keys, padded, seen, scores);
            let own = |r: usize| if causal { first + r + 1 } else { len };
            // SAFETY: `scores` is `[QUERIES, padded]`, `padded % 16 == 0`, and every query's
            // keys `0 < own(r) <= seen <= padded`.
            softmax(scores, padded, rows, own, seen, &mut inv);
            // The softmax wrote zeros from a query's own keys up to `seen` rounded up to 16:
            // an odd `seen`'s last pair ends in a zero weight.
            let seen_pairs = seen.div_ceil(2);
            for r in 0..rows {
                pack_pairs(
                    &scores[r * padded..][..2 * seen_pairs],
                    1.0,
                    &mut weights[r * pairs..][..seen_pairs],
                );
            }
            context(
                weights,
                pairs,
                values,
                width,
                seen_pairs,
                &inv,
                rows,
                head_dim,
                out.add(first * inner),
                inner,
            );
        }
    }

    /// `scores[r, j] = sum_p queries[r, p] . keys[p, j]` (pairs of bf16) for the `QUERIES`
    /// queries and keys `0..seen` rounded up to whole blocks of 16: up to 4 blocks per pass,
    /// 16 accumulators.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn scores(
        queries: &[u32],
        half: usize,
        keys: &[u32],
        padded: usize,
        seen: usize,
        scores: &mut [f32],
    ) {
        assert!(queries.len() >= QUERIES * half && keys.len() >= half * padded);
        assert!(scores.len() >= QUERIES * padded && seen <= padded && padded.is_multiple_of(LANES));
        let (q, k, out) = (queries.as_ptr(), keys.as_ptr(), scores.as_mut_ptr());
        for (block, blocks) in passes(seen) {
            let (k, out) = (k.add(block), out.add(block));
            with_blocks!(blocks, score_blocks(q, half, k, padded, out));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn score_blocks<const NB: usize>(
        q: *const u32,
        half: usize,
        k: *const u32,
        padded: usize,
        out: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; QUERIES];
        for p in 0..half {
            let row = k.add(p * padded);
            let kv: [__m512bh; NB] = std::array::from_fn(|b| {
                std::mem::transmute(_mm512_loadu_si512(row.add(b * LANES).cast()))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*q.add(r * half + p) as i32));
                for b in 0..NB {
                    acc[b] = _mm512_dpbf16_ps(acc[b], qv, kv[b]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (b, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * padded + b * LANES), acc);
            }
        }
    }

    /// `out[r, c] = inv[r] * sum_p weights[r, p] . values[p, c]` (pairs of bf16) for the first
    /// `rows` queries, pairs `0..seen_pairs` and `c < head_dim`: up to 4 blocks of 16 values per
    /// pass, the last block stored through a mask.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn context(
        weights: &[u32],
        w_ld: usize,
        values: &[u32],
        width: usize,
        seen_pairs: usize,
        inv: &[f32; QUERIES],
        rows: usize,
        head_dim: usize,
        out: *mut f32,
        ld: usize,
    ) {
        assert!(weights.len() >= QUERIES * w_ld && seen_pairs <= w_ld && rows <= QUERIES);
        assert!(
            values.len() >= seen_pairs * width && width.is_multiple_of(LANES) && head_dim <= width
        );
        let (w, v) = (weights.as_ptr(), values.as_ptr());
        for (chunk, blocks) in passes(width) {
            let (v, o, cols) = (v.add(chunk), out.add(chunk), head_dim - chunk);
            let args = (w, w_ld, v, width, seen_pairs, inv, rows, cols, o, ld);
            with_blocks!(blocks, context_blocks(args));
        }
    }

    /// [`context`]'s arguments for one pass: weights and their stride, values and their
    /// stride, pairs, `inv`, rows, columns left in the row, out and its stride.
    type ContextArgs<'a> = (
        *const u32,
        usize,
        *const u32,
        usize,
        usize,
        &'a [f32; QUERIES],
        usize,
        usize,
        *mut f32,
        usize,
    );

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn context_blocks<const NB: usize>(
        (w, w_ld, v, v_ld, seen_pairs, inv, rows, cols, out, ld): ContextArgs,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; QUERIES];
        for p in 0..seen_pairs {
            let row = v.add(p * v_ld);
            let vv: [__m512bh; NB] = std::array::from_fn(|b| {
                std::mem::transmute(_mm512_loadu_si512(row.add(b * LANES).cast()))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*w.add(r * w_ld + p) as i32));
                for b in 0..NB {
                    acc[b] = _mm512_dpbf16_ps(acc[b], wv, vv[b]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let scale = _mm512_set1_ps(inv[r]);
            for (b, &acc) in acc.iter().enumerate() {
                let mask = lanes(cols.saturating_sub(b * LANES));
                if mask != 0 {
                    _mm512_mask_storeu_ps(
                        out.add(r * ld + b * LANES),
                        mask,
                        _mm512_mul_ps(acc, scale),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed_attention;
    use super::super::tests::{reference, shapes, test_qkv};
    use super::*;
    use crate::kernels::bf16_gemm::to_bf16;

    #[test]
    fn bf16_attention_is_the_definition_within_bf16_rounding() {
        // Inputs within [-2, 2]: the context is a weighted mean of values within [-2, 2], and
        // rounding the queries, keys, values and weights to bf16 (8 significant bits) moves it
        // by a few 1e-3; a wrong pair, lane or mask moves it by O(0.1).
        let mut any_differs = false;
        for (lengths, h, dh) in shapes() {
            let qkv = test_qkv(&lengths, h, dh);
            for causal in [false, true] {
                let got = packed_attention_bf16(&qkv, &lengths, h, dh, causal);
                let want = reference(&qkv, &lengths, h, dh, causal);
                let errors: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
                let worst = errors.iter().fold(0f32, |m, &e| m.max(e));
                let mean = errors.iter().sum::<f32>() / errors.len().max(1) as f32;
                assert!(
                    worst <= 2e-2 && mean <= 3e-3,
                    "{lengths:?} h{h} dh{dh} causal {causal}: max {worst:.2e} mean {mean:.2e}"
                );
                let f32_kernel = packed_attention(&qkv, &lengths, h, dh, causal);
                if crate::kernels::cpu_features().avx512_bf16 {
                    any_differs |= got != f32_kernel;
                } else {
                    assert_eq!(got, f32_kernel, "without AVX-512 BF16: the f32 kernel");
                }
            }
        }
        // Where the CPU has AVX-512 BF16 the products did run in bf16.
        assert_eq!(any_differs, crate::kernels::cpu_features().avx512_bf16);
    }

    #[test]
    fn pairs_and_transpose_keep_every_value_in_its_place() {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::cpu_features().avx512_bf16 {
            for len in [1usize, 2, 7, 16, 17, 33, 64] {
                let first: Vec<f32> = (0..len).map(|i| i as f32 * 0.37 - 3.1).collect();
                let second: Vec<f32> = first.iter().map(|x| x * -1.7 + 0.01).collect();
                let mut pairs = vec![u32::MAX; len.div_ceil(2)];
                // SAFETY: the CPU has AVX-512 BF16 (checked above).
                unsafe { x86::pack_pairs(&first, 2.0, &mut pairs) };
                for (p, &pair) in pairs.iter().enumerate() {
                    let want_hi = first.get(2 * p + 1).map_or(0, |&x| to_bf16(x * 2.0));
                    assert_eq!(pair as u16, to_bf16(first[2 * p] * 2.0), "{len}: {p}");
                    assert_eq!((pair >> 16) as u16, want_hi, "{len}: {p}");
                }
                for other in [&second[..], &[]] {
                    let mut pairs = vec![u32::MAX; len];
                    // SAFETY: as above.
                    unsafe { x86::interleave_pairs(&first, other, &mut pairs) };
                    for (c, &pair) in pairs.iter().enumerate() {
                        let want_hi = other.get(c).map_or(0, |&x| to_bf16(x));
                        assert_eq!(pair as u16, to_bf16(first[c]), "{len}: {c}");
                        assert_eq!((pair >> 16) as u16, want_hi, "{len}: {c}");
                    }
                }
            }
        }
        for (rows, cols) in [(1, 1), (3, 5), (4, 4), (9, 7), (16, 33)] {
            let src: Vec<u32> = (0..rows * cols)
                .map(|i| (i as u32).wrapping_mul(2_654_435_761))
                .collect();
            let stride = rows + 3;
            let mut dst = vec![u32::MAX; cols * stride];
            transpose_u32(&src, rows, cols, &mut dst, stride);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * stride + r],
                        src[r * cols + c],
                        "{rows}x{cols} ({r}, {c})"
                    );
                }
            }
            // Past each column's `rows` values nothing is written.
            assert!((0..cols).all(|c| dst[c * stride + rows..][..3] == [u32::MAX; 3]));
        }
    }
}
