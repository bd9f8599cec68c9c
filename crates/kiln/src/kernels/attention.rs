//! Self-attention over sequences packed end to end (no padding), straight from the packed
//! `q | k | v` projection: one task per (sequence, head), the heads' contexts written side by
//! side. On the CPU this replaces, per sequence, a dozen small tensor ops (views, two batched
//! matmuls, a softmax, the merge of the heads and a concatenation) whose fixed costs outweigh
//! their arithmetic at the lengths of sentences.

use rayon::prelude::*;

/// The attention of packed sequences, with PyTorch's arithmetic: `softmax(q kᵀ / sqrt(Dh)) v`
/// per head, `-inf` above the diagonal when `causal`.
///
/// # Shapes
/// - `qkv`: `[N, 3 * H * Dh]` row-major, `N = sum(lengths)`: columns `q | k | v`, head `h` at
///   `h * Dh` within each (PyTorch's `in_proj` layout); sequence `i` is rows
///   `offset_i..offset_i + lengths[i]`
/// - returns the context `[N, H * Dh]`, head `h` at columns `h * Dh`
pub fn packed_attention(
    qkv: &[f32],
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
    causal: bool,
) -> Vec<f32> {
    let inner = heads * head_dim;
    let tokens: usize = lengths.iter().sum();
    assert_eq!(qkv.len(), tokens * 3 * inner, "qkv is not [N, 3 * H * Dh]");
    let mut offsets = Vec::with_capacity(lengths.len());
    let mut offset = 0;
    for &len in lengths {
        offsets.push(offset);
        offset += len;
    }
    // One task per (sequence, head); each writes its own columns of its own rows, so the
    // results are gathered per task and copied into place after.
    let tasks: Vec<(usize, usize)> = (0..lengths.len())
        .filter(|&s| lengths[s] > 0)
        .flat_map(|s| (0..heads).map(move |h| (s, h)))
        .collect();
    let contexts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(s, head)| {
            head_attention(&HeadTask {
                qkv,
                offset: offsets[s],
                len: lengths[s],
                head,
                heads,
                head_dim,
                causal,
            })
        })
        .collect();
    let mut out = vec![0f32; tokens * inner];
    for (&(s, h), context) in tasks.iter().zip(&contexts) {
        for (i, row) in context.chunks_exact(head_dim).enumerate() {
            let start = (offsets[s] + i) * inner + h * head_dim;
            out[start..start + head_dim].copy_from_slice(row);
        }
    }
    out
}

/// One head of one sequence of the packed `qkv`.
struct HeadTask<'a> {
    qkv: &'a [f32],
    /// The sequence's first row.
    offset: usize,
    len: usize,
    head: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
}

/// One head of one sequence: `[len, Dh]`, with the kernel this CPU runs best.
fn head_attention(task: &HeadTask) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if super::cpu_features().avx512 {
        // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe Rust.
        return unsafe { head_attention_avx512(task) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::cpu_features().avx2_fma {
        // SAFETY: the CPU has AVX2 and FMA (checked above); the body is safe Rust.
        return unsafe { head_attention_avx2(task) };
    }
    head_attention_portable(task)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn head_attention_avx512(task: &HeadTask) -> Vec<f32> {
    head_attention_portable(task)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_attention_avx2(task: &HeadTask) -> Vec<f32> {
    head_attention_portable(task)
}

/// Lanes of the blocks below: 16 f32, one AVX-512 register (two AVX2 ones).
const LANES: usize = 16;
/// Queries computed together: independent accumulators, so the multiply-adds overlap instead
/// of waiting on one another.
const QUERIES: usize = 4;

#[inline(always)]
fn head_attention_portable(task: &HeadTask) -> Vec<f32> {
    let &HeadTask {
        qkv,
        offset,
        len,
        head,
        heads,
        head_dim,
        causal,
    } = task;
    let inner = heads * head_dim;
    let row = |i: usize, part: usize| {
        let start = (offset + i) * 3 * inner + part * inner + head * head_dim;
        &qkv[start..start + head_dim]
    };
    // kᵀ `[Dh, padded]`, zeros past `len`: the scores of a block of queries against 16 keys
    // are sums over `Dh` of scaled 16-wide rows.
    let padded = len.div_ceil(LANES) * LANES;
    let mut keys_t = vec![0f32; head_dim * padded];
    for j in 0..len {
        for (d, &k) in row(j, 1).iter().enumerate() {
            keys_t[d * padded + j] = k;
        }
    }
    let scale = (head_dim as f32).powf(-0.5);
    let mut context = vec![0f32; len * head_dim];
    // `[QUERIES, padded]` scores of one block of queries, then their weights `[padded, QUERIES]`.
    let mut scores = vec![0f32; QUERIES * padded];
    let mut weights_t = vec![0f32; padded * QUERIES];
    // `[Dh, QUERIES]` scaled queries (columns past the sequence stay zero and are not stored).
    let mut queries_t = vec![0f32; head_dim * QUERIES];
    for first in (0..len).step_by(QUERIES) {
        let rows = QUERIES.min(len - first);
        // The keys any query of the block sees.
        let keys = if causal { first + rows } else { len };
        queries_t.fill(0.0);
        for r in 0..rows {
            for (d, &v) in row(first + r, 0).iter().enumerate() {
                queries_t[d * QUERIES + r] = v * scale;
            }
        }
        for block in (0..keys).step_by(LANES) {
            let mut acc = [[0f32; LANES]; QUERIES];
            for d in 0..head_dim {
                let k: &[f32; LANES] = keys_t[d * padded + block..][..LANES].try_into().unwrap();
                let q: &[f32; QUERIES] = queries_t[d * QUERIES..][..QUERIES].try_into().unwrap();
                for r in 0..QUERIES {
                    for t in 0..LANES {
                        acc[r][t] = q[r].mul_add(k[t], acc[r][t]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                scores[r * padded + block..][..LANES].copy_from_slice(acc);
            }
        }
        // Softmax per query over its keys; the block's later keys get weight 0.
        let mut inv = [0f32; QUERIES];
        weights_t[..keys * QUERIES].fill(0.0);
        for (r, inv) in inv.iter_mut().enumerate().take(rows) {
            let own = if causal { first + r + 1 } else { len };
            let weights = &mut scores[r * padded..r * padded + own];
            let max = weights
                .iter()
                .fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
            for w in weights.iter_mut() {
                *w = exp(*w - max);
            }
            *inv = 1.0 / weights.iter().sum::<f32>();
            for (j, &w) in weights.iter().enumerate() {
                weights_t[j * QUERIES + r] = w;
            }
        }
        // The context, 16 of its `Dh` values at a time, accumulated in registers over keys
        // (fixed-size arrays: a variable width would keep the accumulators in memory).
        let full = head_dim / LANES * LANES;
        for chunk in (0..full).step_by(LANES) {
            let mut acc = [[0f32; LANES]; QUERIES];
            for j in 0..keys {
                let v: &[f32; LANES] = row(j, 2)[chunk..][..LANES].try_into().unwrap();
                let w: &[f32; QUERIES] = weights_t[j * QUERIES..][..QUERIES].try_into().unwrap();
                for r in 0..QUERIES {
                    for t in 0..LANES {
                        acc[r][t] = w[r].mul_add(v[t], acc[r][t]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let out = &mut context[(first + r) * head_dim + chunk..][..LANES];
                for t in 0..LANES {
                    out[t] = acc[t] * inv[r];
                }
            }
        }
        for d in full..head_dim {
            for r in 0..rows {
                let sum = (0..keys).fold(0f32, |acc, j| {
                    weights_t[j * QUERIES + r].mul_add(row(j, 2)[d], acc)
                });
                context[(first + r) * head_dim + d] = sum * inv[r];
            }
        }
    }
    context
}

/// `e^x` for `x <= 0` (softmax after its max is taken out): `2^n * p(r)` with `x = n ln 2 + r`,
/// `|r| <= ln 2 / 2`, and a degree-6 polynomial; within 2 ulp of the exact value. Inputs below
/// -87 give `e^-87` (~1.6e-38: nothing next to the max's weight of 1). Written so the compiler
/// vectorizes it.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    // ln 2 split in two so that n * ln 2 is exact enough.
    let r = n.mul_add(-0.693_145_75, x);
    let r = n.mul_add(-1.428_606_8e-6, r);
    let mut p = 1.0 / 720.0_f32;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let pow2 = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * pow2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition, in f64.
    fn reference(qkv: &[f32], lengths: &[usize], h: usize, dh: usize, causal: bool) -> Vec<f32> {
        let inner = h * dh;
        let mut out = vec![0f32; lengths.iter().sum::<usize>() * inner];
        let mut offset = 0;
        for &len in lengths {
            for head in 0..h {
                let at = |i: usize, part: usize, d: usize| {
                    qkv[(offset + i) * 3 * inner + part * inner + head * dh + d] as f64
                };
                for i in 0..len {
                    let keys = if causal { i + 1 } else { len };
                    let scores: Vec<f64> = (0..keys)
                        .map(|j| {
                            (0..dh).map(|d| at(i, 0, d) * at(j, 1, d)).sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for d in 0..dh {
                        let v: f64 = (0..keys)
                            .map(|j| (scores[j] - max).exp() / sum * at(j, 2, d))
                            .sum();
                        out[(offset + i) * inner + head * dh + d] = v as f32;
                    }
                }
            }
            offset += len;
        }
        out
    }

    #[test]
    fn exp_is_within_2_ulp_on_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst <= 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) <= 2e-38);
    }

    #[test]
    fn packed_attention_equals_the_definition() {
        for (lengths, h, dh) in [
            (vec![1], 1, 1),
            (vec![3, 0, 7], 2, 5),
            (vec![33, 1, 17], 3, 16),
            (vec![9, 12], 12, 32),
        ] {
            let n: usize = lengths.iter().sum();
            let qkv: Vec<f32> = (0..n * 3 * h * dh)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0)
                .collect();
            for causal in [false, true] {
                let got = packed_attention(&qkv, &lengths, h, dh, causal);
                let want = reference(&qkv, &lengths, h, dh, causal);
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5,
                    "{lengths:?} h{h} dh{dh} causal {causal}: {worst}"
                );
            }
        }
    }
}
