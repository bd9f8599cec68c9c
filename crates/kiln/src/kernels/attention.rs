//! Self-attention over sequences packed end to end (no padding), straight from the packed
//! `q | k | v` projection: one task per (sequence, head), the heads' contexts written side by
//! side. On the CPU this replaces, per sequence, a dozen small tensor ops (views, two batched
//! matmuls, a softmax, the merge of the heads and a concatenation) whose fixed costs outweigh
//! their arithmetic at the lengths of sentences.

use rayon::prelude::*;

use super::SharedOut;

mod bf16;
pub use bf16::packed_attention_bf16;

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
    // SAFETY: `head_attention` writes its task's `len` rows of `Dh` values at a stride of
    // `H * Dh` from the pointer it is given, and nothing else.
    unsafe {
        for_each_head(
            qkv,
            lengths,
            heads,
            head_dim,
            causal,
            |task, scratch: &mut Scratch, out| head_attention(task, scratch, out),
        )
    }
}

/// The context `[N, H * Dh]` of the packed `qkv` (shapes as [`packed_attention`]), written by
/// `head` once per (sequence, head) in parallel: `head` gets the task, the scratch buffers of
/// the worker running it (reused across its tasks: sentences are short, and allocating them
/// per task cost as much as their arithmetic) and where the task's context starts.
///
/// # Safety
/// `head` writes the task's `len` rows of `Dh` values at a stride of `H * Dh` from the pointer
/// it is given, and nothing else.
unsafe fn for_each_head<S>(
    qkv: &[f32],
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
    causal: bool,
    head: impl Fn(&HeadTask, &mut S, *mut f32) + Sync + Send,
) -> Vec<f32>
where
    S: Default,
{
    let inner = heads * head_dim;
    let tokens: usize = lengths.iter().sum();
    assert_eq!(qkv.len(), tokens * 3 * inner, "qkv is not [N, 3 * H * Dh]");
    let mut offsets = Vec::with_capacity(lengths.len());
    let mut offset = 0;
    for &len in lengths {
        offsets.push(offset);
        offset += len;
    }
    // One task per (sequence, head); each writes its own columns of its own rows of `out`,
    // and every row belongs to one sequence: together the tasks write all of it.
    let tasks: Vec<(usize, usize)> = (0..lengths.len())
        .filter(|&s| lengths[s] > 0)
        .flat_map(|s| (0..heads).map(move |h| (s, h)))
        .collect();
    let mut out: Vec<f32> = Vec::with_capacity(tokens * inner);
    let out_ptr = SharedOut(out.as_mut_ptr());
    tasks
        .par_iter()
        .for_each_init(S::default, |scratch, &(s, head_index)| {
            let task = HeadTask {
                qkv,
                offset: offsets[s],
                len: lengths[s],
                head: head_index,
                heads,
                head_dim,
                causal,
            };
            // SAFETY: rows `offsets[s]..offsets[s] + lengths[s]` x columns
            // `head * Dh..(head + 1) * Dh` of `[N, H * Dh]` are within the capacity reserved,
            // and `head` writes them alone (the caller's promise).
            head(&task, scratch, unsafe {
                out_ptr.at(offsets[s] * inner + head_index * head_dim)
            });
        });
    // SAFETY: the tasks above wrote all `tokens * inner` values (see above).
    unsafe { out.set_len(tokens * inner) };
    out
}

/// The buffers of one head's attention, kept by a worker across its tasks.
#[derive(Default)]
struct Scratch {
    /// kᵀ `[Dh, padded]`, zeros past the sequence's length.
    keys_t: Vec<f32>,
    /// `[QUERIES, padded]` scores of one block of queries (then their weights, in place).
    scores: Vec<f32>,
    /// The weights transposed, `[padded, QUERIES]` (the portable loops only).
    weights_t: Vec<f32>,
    /// `[Dh, QUERIES]` scaled queries.
    queries_t: Vec<f32>,
}

/// `buffer` as `len` zeros, reusing its allocation.
fn zeroed<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    buffer.clear();
    buffer.resize(len, T::default());
    buffer
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

impl HeadTask<'_> {
    /// Row `i` of the sequence's queries (`part` 0), keys (1) or values (2) of this head.
    #[inline(always)]
    fn row(&self, i: usize, part: usize) -> &[f32] {
        let inner = self.heads * self.head_dim;
        let start = (self.offset + i) * 3 * inner + part * inner + self.head * self.head_dim;
        &self.qkv[start..start + self.head_dim]
    }

    /// Asks the CPU to bring `rows` (those within the sequence) of `part` into the cache
    /// ahead of their use: a head's rows lie `3 * H * Dh` values apart, a stride the
    /// hardware's prefetchers do not follow across pages.
    #[inline(always)]
    fn prefetch(&self, rows: std::ops::Range<usize>, part: usize) {
        #[cfg(target_arch = "x86_64")]
        for i in rows.start..rows.end.min(self.len) {
            let row = self.row(i, part);
            // Every cache line the row touches: one per 16 values, and the one of its end.
            let lines = (0..row.len()).step_by(16).chain(row.len().checked_sub(1));
            for at in lines {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                // SAFETY: a prefetch reads nothing and cannot fault; the address is in `row`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(at).cast()) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (rows, part);
    }
}

/// One head of one sequence, with the kernel this CPU runs best: its context `[len, Dh]`
/// written to `out`, rows at a stride of `H * Dh`.
///
/// # Safety
/// `out` has `task.len` rows of `Dh` writable values at a stride of `H * Dh`.
unsafe fn head_attention(task: &HeadTask, scratch: &mut Scratch, out: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu_features().avx512 {
        // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); `out` as the caller says.
        return head_attention_avx512(task, scratch, out);
    }
    #[cfg(target_arch = "x86_64")]
    if super::cpu_features().avx2_fma {
        // SAFETY: the CPU has AVX2 and FMA (checked above); `out` as the caller says.
        return head_attention_avx2(task, scratch, out);
    }
    head_attention_with::<false>(task, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn head_attention_avx512(task: &HeadTask, scratch: &mut Scratch, out: *mut f32) {
    head_attention_with::<true>(task, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_attention_avx2(task: &HeadTask, scratch: &mut Scratch, out: *mut f32) {
    head_attention_with::<false>(task, scratch, out)
}

/// `f::<NB>(args)` for a count `blocks` of 16-lane blocks known only at run time (1 to 4): the
/// products keep `NB` blocks of accumulators per query in registers, so `NB` must be a constant.
#[cfg(target_arch = "x86_64")]
macro_rules! with_blocks {
    ($blocks:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $blocks {
            4 => $f::<4>($($arg),*),
            3 => $f::<3>($($arg),*),
            2 => $f::<2>($($arg),*),
            _ => $f::<1>($($arg),*),
        }
    };
}
#[cfg(target_arch = "x86_64")]
use with_blocks;

/// The passes of the products' loops over `n` lanes (keys or values): up to 4 blocks of 16 at
/// a time, as `(first lane, blocks)`.
#[cfg(target_arch = "x86_64")]
fn passes(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n)
        .step_by(4 * LANES)
        .map(move |at| (at, (n - at).div_ceil(LANES).min(4)))
}

/// Lanes of the blocks below: 16 f32, one AVX-512 register (two AVX2 ones).
const LANES: usize = 16;
/// Queries computed together: independent accumulators, so the multiply-adds overlap instead
/// of waiting on one another.
const QUERIES: usize = 4;

/// One head of one sequence; `AVX512`: the two products (scores, context) through the
/// explicit AVX-512 loops of [`x86`] (same multiply-adds in the same order, so the same bits),
/// which keep up to 16 accumulators in registers where the compiler's vectorization of the
/// plain loops does not.
///
/// # Safety
/// As [`head_attention`].
#[inline(always)]
unsafe fn head_attention_with<const AVX512: bool>(
    task: &HeadTask,
    scratch: &mut Scratch,
    out: *mut f32,
) {
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
    let row = |i: usize, part: usize| task.row(i, part);
    // kᵀ `[Dh, padded]`, zeros past `len`: the scores of a block of queries against 16 keys
    // are sums over `Dh` of scaled 16-wide rows.
    let padded = len.div_ceil(LANES) * LANES;
    let Scratch {
        keys_t,
        scores,
        weights_t,
        queries_t,
    } = scratch;
    let keys_t = zeroed(keys_t, head_dim * padded);
    let keys_from = (offset * 3 + 1) * inner + head * head_dim;
    transpose_rows(
        &qkv[keys_from..],
        3 * inner,
        len,
        head_dim,
        1.0,
        keys_t,
        padded,
    );
    let scale = (head_dim as f32).powf(-0.5);
    // `[QUERIES, padded]` scores of one block of queries, then their weights `[padded, QUERIES]`.
    let scores = zeroed(scores, QUERIES * padded);
    // (The AVX-512 loops read the weights in place and need no transposed copy.)
    let weights_t = zeroed(weights_t, if AVX512 { 0 } else { padded * QUERIES });
    // `[Dh, QUERIES]` scaled queries (columns past the sequence stay zero and are not stored).
    let queries_t = zeroed(queries_t, head_dim * QUERIES);
    for first in (0..len).step_by(QUERIES) {
        let rows = QUERIES.min(len - first);
        // The keys any query of the block sees.
        let keys = if causal { first + rows } else { len };
        queries_t.fill(0.0);
        let queries_from = (offset + first) * 3 * inner + head * head_dim;
        transpose_rows(
            &qkv[queries_from..],
            3 * inner,
            rows,
            head_dim,
            scale,
            queries_t,
            QUERIES,
        );
        task.prefetch(first + QUERIES..first + 2 * QUERIES, 0);
        #[cfg(target_arch = "x86_64")]
        let scored = AVX512 && {
            // SAFETY: only instantiated with `AVX512` from `head_attention_avx512` (the CPU
            // has AVX-512 F); `queries_t` is `[Dh, QUERIES]`, `keys_t` `[Dh, padded]` and
            // `scores` `[QUERIES, padded]` with `keys <= padded`, `padded` whole blocks.
            unsafe { x86::scores(queries_t, keys_t, padded, head_dim, keys, scores) };
            true
        };
        #[cfg(not(target_arch = "x86_64"))]
        let scored = false;
        for block in (0..keys).step_by(LANES).filter(|_| !scored) {
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
        #[cfg(target_arch = "x86_64")]
        let normalized = AVX512 && {
            let own = |r: usize| if causal { first + r + 1 } else { len };
            // SAFETY: as above (`AVX512`: the CPU has AVX-512 F); `scores` is
            // `[QUERIES, padded]`, every query's keys `own(r) <= keys <= padded`.
            unsafe { x86::softmax(scores, padded, rows, own, keys, &mut inv) };
            true
        };
        #[cfg(not(target_arch = "x86_64"))]
        let normalized = false;
        if !AVX512 {
            weights_t[..keys * QUERIES].fill(0.0);
        }
        // The same softmax one query at a time where the AVX-512 one did not run, its weights
        // transposed for the portable context loop (keys past a query's own stay 0).
        let scalar_rows = if normalized { 0 } else { rows };
        for (r, inv) in inv.iter_mut().enumerate().take(scalar_rows) {
            let own = if causal { first + r + 1 } else { len };
            let weights = &mut scores[r * padded..r * padded + own];
            let max = lane_max(weights);
            for w in weights.iter_mut() {
                *w = exp(*w - max);
            }
            *inv = 1.0 / lane_sum(weights);
            for (j, &w) in weights.iter().enumerate() {
                weights_t[j * QUERIES + r] = w;
            }
        }
        // The context, 16 of its `Dh` values at a time, accumulated in registers over keys
        // (fixed-size arrays: a variable width would keep the accumulators in memory).
        let full = head_dim / LANES * LANES;
        #[cfg(target_arch = "x86_64")]
        let done = AVX512 && {
            let values = qkv[(offset * 3 + 2) * inner + head * head_dim..].as_ptr();
            // SAFETY: as above; row `j`'s values start `j * 3 * inner` after `values` and hold
            // `full <= head_dim` of this head's values; `scores` is `[QUERIES, padded]`
            // (weights of keys `0..keys`); `out` has `rows` rows of `head_dim` at a stride of
            // `inner` from row `first` on (the caller's promise).
            unsafe {
                x86::context(
                    scores,
                    padded,
                    values,
                    3 * inner,
                    keys,
                    full,
                    &inv,
                    rows,
                    out.add(first * inner),
                    inner,
                )
            };
            true
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        for chunk in (0..full).step_by(LANES).filter(|_| !done) {
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
                let out = out.add((first + r) * inner + chunk);
                for (t, value) in acc.iter().enumerate() {
                    out.add(t).write(value * inv[r]);
                }
            }
        }
        for d in full..head_dim {
            for r in 0..rows {
                let weight = |j: usize| {
                    if AVX512 {
                        scores[r * padded + j]
                    } else {
                        weights_t[j * QUERIES + r]
                    }
                };
                let sum = (0..keys).fold(0f32, |acc, j| weight(j).mul_add(row(j, 2)[d], acc));
                out.add((first + r) * inner + d).write(sum * inv[r]);
            }
        }
    }
}

/// `dst[d * dst_stride + j] = src[j * src_stride + d] * scale` for `rows` rows `j` of `cols`
/// values `d`: rows of the packed `qkv` transposed (and scaled), 4 x 4 at a time in SSE
/// registers on x86-64. One value at a time, a transpose is a scalar store per value, which at
/// sentence lengths costs more than the products it prepares.
#[inline(always)]
fn transpose_rows(
    src: &[f32],
    src_stride: usize,
    rows: usize,
    cols: usize,
    scale: f32,
    dst: &mut [f32],
    dst_stride: usize,
) {
    // Whole 4 x 4 blocks in registers, the rest one value at a time.
    let (rows_done, cols_done) = if cfg!(target_arch = "x86_64") {
        (rows / 4 * 4, cols / 4 * 4)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        for j in (0..rows_done).step_by(4) {
            for d in (0..cols_done).step_by(4) {
                let load = |r: usize| -> __m128 {
                    let values: &[f32; 4] =
                        src[(j + r) * src_stride + d..][..4].try_into().unwrap();
                    // SAFETY: SSE is part of x86-64; `values` holds 4 f32.
                    unsafe { _mm_mul_ps(_mm_loadu_ps(values.as_ptr()), _mm_set1_ps(scale)) }
                };
                let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
                // SAFETY: SSE is part of x86-64 (register shuffles only).
                let columns = unsafe {
                    let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpackhi_ps(r0, r1));
                    let (t2, t3) = (_mm_unpacklo_ps(r2, r3), _mm_unpackhi_ps(r2, r3));
                    [
                        _mm_movelh_ps(t0, t2),
                        _mm_movehl_ps(t2, t0),
                        _mm_movelh_ps(t1, t3),
                        _mm_movehl_ps(t3, t1),
                    ]
                };
                for (c, column) in columns.into_iter().enumerate() {
                    let out: &mut [f32; 4] = (&mut dst[(d + c) * dst_stride + j..][..4])
                        .try_into()
                        .unwrap();
                    // SAFETY: SSE is part of x86-64; `out` holds 4 f32.
                    unsafe { _mm_storeu_ps(out.as_mut_ptr(), column) };
                }
            }
        }
    }
    for j in 0..rows {
        let from = if j < rows_done { cols_done } else { 0 };
        for d in from..cols {
            dst[d * dst_stride + j] = src[j * src_stride + d] * scale;
        }
    }
}

/// The largest of `values` (`-inf` for none), over 16 lanes at once: a running maximum in
/// one variable is a chain of dependent compares the compiler cannot vectorize.
#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    // The tail is merged one value at a time: a masked update of the lanes in memory, read
    // back as scalars, stalls on store forwarding.
    let lanes_max = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    chunks
        .remainder()
        .iter()
        .fold(lanes_max, |m, &v| if v > m { v } else { m })
}

/// The sum of `values`, in 16 lanes then across them (vectorized, unlike one running sum).
#[inline(always)]
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    // The tail joins its lane as the lanes are summed (the same additions as adding it into
    // the lanes first, without a masked update of them in memory; see `lane_max`).
    let tail = chunks.remainder();
    let mut sum = 0f32;
    for (i, &lane) in lanes.iter().enumerate() {
        sum += match tail.get(i) {
            Some(&v) => lane + v,
            None => lane,
        };
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, QUERIES};
    use std::arch::x86_64::*;

    /// `scores[r, j] = sum_d queries_t[d, r] * keys_t[d, j]` for the `QUERIES` queries and
    /// keys `0..keys` (rounded up to whole blocks of 16): up to 4 blocks of keys per pass, 16
    /// accumulators, each a sum over `d` in order.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `queries_t` is `[head_dim, QUERIES]`, `keys_t`
    /// `[head_dim, padded]`, `scores` `[QUERIES, padded]`, `keys <= padded`, `padded % 16 == 0`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scores(
        queries_t: &[f32],
        keys_t: &[f32],
        padded: usize,
        head_dim: usize,
        keys: usize,
        scores: &mut [f32],
    ) {
        debug_assert!(queries_t.len() >= head_dim * QUERIES && keys_t.len() >= head_dim * padded);
        debug_assert!(
            scores.len() >= QUERIES * padded && keys <= padded && padded.is_multiple_of(LANES)
        );
        let (q, k, out) = (queries_t.as_ptr(), keys_t.as_ptr(), scores.as_mut_ptr());
        for (block, blocks) in super::passes(keys) {
            let (k, out) = (k.add(block), out.add(block));
            with_blocks!(blocks, score_blocks(q, k, padded, head_dim, out));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn score_blocks<const NB: usize>(
        q: *const f32,
        k: *const f32,
        padded: usize,
        head_dim: usize,
        out: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; QUERIES];
        for d in 0..head_dim {
            let row = k.add(d * padded);
            let mut kv = [_mm512_setzero_ps(); NB];
            for (b, kv) in kv.iter_mut().enumerate() {
                *kv = _mm512_loadu_ps(row.add(b * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(d * QUERIES + r));
                for b in 0..NB {
                    acc[b] = _mm512_fmadd_ps(qv, kv[b], acc[b]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (b, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * padded + b * LANES), acc);
            }
        }
    }

    /// Softmax of the first `rows` rows of `scores` (`[QUERIES, padded]`), row `r` over its
    /// keys `0..own(r)`: the row becomes `e^(s - max)` there and 0 from there up to `keys`, and
    /// `inv[r]` 1 / its sum. The same values in the same order as [`super::lane_max`],
    /// [`super::exp`] and [`super::lane_sum`] (the tails in masked lanes instead of one at a
    /// time), so the same bits.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `scores` is `[QUERIES, padded]`, `padded % 16 == 0`,
    /// `0 < own(r) <= keys <= padded` for `r < rows <= QUERIES`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn softmax(
        scores: &mut [f32],
        padded: usize,
        rows: usize,
        own: impl Fn(usize) -> usize,
        keys: usize,
        inv: &mut [f32; QUERIES],
    ) {
        debug_assert!(
            scores.len() >= QUERIES * padded && keys <= padded && padded.is_multiple_of(LANES)
        );
        for (r, inv) in inv.iter_mut().enumerate().take(rows) {
            let own = own(r);
            debug_assert!(own > 0 && own <= keys);
            let row = scores.as_mut_ptr().add(r * padded);
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for c in (0..own).step_by(LANES) {
                let v = _mm512_mask_loadu_ps(max, lanes(own - c), row.add(c));
                max = _mm512_max_ps(max, v);
            }
            let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
            let mut sums = _mm512_setzero_ps();
            for c in (0..keys).step_by(LANES) {
                let mask = lanes(own.saturating_sub(c));
                let weights = if mask == 0 {
                    _mm512_setzero_ps()
                } else {
                    let v = _mm512_loadu_ps(row.add(c));
                    _mm512_maskz_mov_ps(mask, exp16(_mm512_sub_ps(v, max)))
                };
                _mm512_storeu_ps(row.add(c), weights);
                sums = _mm512_add_ps(sums, weights);
            }
            // Across the lanes in order, as `lane_sum` does.
            let mut lanes_sum = [0f32; LANES];
            _mm512_storeu_ps(lanes_sum.as_mut_ptr(), sums);
            *inv = 1.0 / lanes_sum.iter().fold(0f32, |sum, &lane| sum + lane);
        }
    }

    /// The mask of the first `n` of 16 lanes.
    #[inline(always)]
    pub(super) fn lanes(n: usize) -> __mmask16 {
        if n >= LANES {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// [`super::exp`] on 16 lanes: the same operations, so the same bits.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp16(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693_145_75), x);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0_f32);
        for c in [1.0 / 120.0_f32, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let bits = _mm512_castps_si512(_mm512_add_ps(n, _mm512_set1_ps(8_388_735.0)));
        _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(bits)))
    }

    /// `out[r, c] = inv[r] * sum_j weights[r, j] * values[j * stride + c]` for the first
    /// `rows` queries and `c < full` (whole blocks of 16): up to 4 blocks of the head's
    /// values per pass, each a sum over `j` in order.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `weights` is `[QUERIES, w_ld]` with `keys <= w_ld`; `values`
    /// holds `keys` rows of `full` values at `stride`; `out` holds `rows` rows of `full`
    /// values at `ld`; `full % 16 == 0`, `rows <= QUERIES`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn context(
        weights: &[f32],
        w_ld: usize,
        values: *const f32,
        stride: usize,
        keys: usize,
        full: usize,
        inv: &[f32; QUERIES],
        rows: usize,
        out: *mut f32,
        ld: usize,
    ) {
        debug_assert!(weights.len() >= QUERIES * w_ld && keys <= w_ld);
        debug_assert!(full.is_multiple_of(LANES) && rows <= QUERIES);
        let w = weights.as_ptr();
        for (chunk, blocks) in super::passes(full) {
            let (v, o) = (values.add(chunk), out.add(chunk));
            with_blocks!(
                blocks,
                context_blocks(w, w_ld, v, stride, keys, inv, rows, o, ld)
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn context_blocks<const NB: usize>(
        w: *const f32,
        w_ld: usize,
        v: *const f32,
        stride: usize,
        keys: usize,
        inv: &[f32; QUERIES],
        rows: usize,
        out: *mut f32,
        ld: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; QUERIES];
        for j in 0..keys {
            let row = v.add(j * stride);
            let mut vv = [_mm512_setzero_ps(); NB];
            for (b, vv) in vv.iter_mut().enumerate() {
                *vv = _mm512_loadu_ps(row.add(b * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*w.add(r * w_ld + j));
                for b in 0..NB {
                    acc[b] = _mm512_fmadd_ps(wv, vv[b], acc[b]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let scale = _mm512_set1_ps(inv[r]);
            for (b, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * ld + b * LANES), _mm512_mul_ps(acc, scale));
            }
        }
    }
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
    // 2^n from the bits of `n + 127 + 2^23`, whose low mantissa bits are `n + 127` (exact for
    // the integers `n` here): no float-to-int cast, whose saturating semantics keep a loop
    // of `exp` from vectorizing.
    let pow2 = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    p * pow2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition, in f64.
    pub(super) fn reference(
        qkv: &[f32],
        lengths: &[usize],
        h: usize,
        dh: usize,
        causal: bool,
    ) -> Vec<f32> {
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
    #[cfg(target_arch = "x86_64")]
    fn exp16_is_exp_lane_by_lane() {
        if !crate::kernels::cpu_features().avx512 {
            return;
        }
        let inputs: Vec<f32> = (0..=1_000_000)
            .map(|i| -(i as f32) * 1e-4)
            .chain([
                f32::NEG_INFINITY,
                -1e30,
                -87.5,
                -0.0,
                0.0,
                f32::MIN_POSITIVE,
            ])
            .collect();
        for chunk in inputs.chunks(16) {
            let mut lanes = [0f32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut got = [0f32; 16];
            // SAFETY: the CPU has AVX-512 F (checked above).
            unsafe {
                use std::arch::x86_64::*;
                let v = x86::exp16(_mm512_loadu_ps(lanes.as_ptr()));
                _mm512_storeu_ps(got.as_mut_ptr(), v);
            }
            for (&x, &e) in lanes.iter().zip(&got) {
                assert_eq!(e.to_bits(), exp(x).to_bits(), "exp({x})");
            }
        }
    }

    /// The shapes every attention kernel is tested on: `(lengths, heads, head_dim)`.
    pub(super) fn shapes() -> Vec<(Vec<usize>, usize, usize)> {
        vec![
            (vec![1], 1, 1),
            (vec![3, 0, 7], 2, 5),
            (vec![33, 1, 17], 3, 16),
            (vec![9, 12], 12, 32),
            // More than 64 keys (two passes of score blocks), three and one-and-a-bit blocks
            // of values per head.
            (vec![70, 5], 2, 48),
            (vec![20], 1, 20),
        ]
    }

    /// A packed `qkv` for `lengths` with values within [-2, 2].
    pub(super) fn test_qkv(lengths: &[usize], h: usize, dh: usize) -> Vec<f32> {
        let n: usize = lengths.iter().sum();
        (0..n * 3 * h * dh)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0)
            .collect()
    }

    #[test]
    fn packed_attention_equals_the_definition() {
        for (lengths, h, dh) in shapes() {
            let qkv = test_qkv(&lengths, h, dh);
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
