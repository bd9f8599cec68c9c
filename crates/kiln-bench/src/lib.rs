//! Side-by-side measurements of kiln and burn's built-in `burn::nn::transformer` encoder:
//! same weights, same inputs, same process, alternating runs. Used by `kiln bench` and by the
//! criterion benches in `benches/`.

pub mod memory;
pub mod reference;

use std::time::Instant;

use burn::prelude::Backend;
use burn::tensor::{Distribution, Tensor};
use kiln::{
    Activation, AttentionKernel, BatchSplit, EncoderInput, Execution, HostTensor, KeyPaddingMask,
    Precision, TransformerEncoder, TransformerEncoderConfig,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

/// A benchmark shape.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub name: String,
    pub d_model: usize,
    pub nhead: usize,
    pub dim_feedforward: usize,
    pub num_layers: usize,
    pub batch: usize,
    pub seq: usize,
}

impl Shape {
    /// "base": BERT-base width, 4 layers, batch 8 x 128 tokens.
    pub fn base() -> Self {
        Self {
            name: "base".into(),
            d_model: 768,
            nhead: 12,
            dim_feedforward: 3072,
            num_layers: 4,
            batch: 8,
            seq: 128,
        }
    }

    /// "small": d_model 256, 4 heads, 2 layers, batch 8 x 64 tokens.
    pub fn small() -> Self {
        Self {
            name: "small".into(),
            d_model: 256,
            nhead: 4,
            dim_feedforward: 1024,
            num_layers: 2,
            batch: 8,
            seq: 64,
        }
    }

    /// By name.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "base" => Some(Self::base()),
            "small" => Some(Self::small()),
            _ => None,
        }
    }

    /// The kiln config of this shape: post-norm GELU, batch-first, eval.
    pub fn config(&self) -> TransformerEncoderConfig {
        TransformerEncoderConfig::new(self.d_model, self.nhead, self.num_layers)
            .with_dim_feedforward(self.dim_feedforward)
            .with_activation(Activation::Gelu)
            .with_batch_first(true)
            .with_dropout(0.0)
    }

    /// FLOPs of one forward pass at full length.
    pub fn flops(&self) -> f64 {
        self.config().flops_per_token(self.seq) * (self.batch * self.seq) as f64
    }
}

/// Median of `repeat` timings of `f` after `warmup` untimed calls, synchronising the device
/// before each clock read.
pub fn median_seconds<B: Backend>(
    device: &B::Device,
    warmup: usize,
    repeat: usize,
    mut f: impl FnMut(),
) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let times: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            B::sync(device).expect("device sync");
            let start = Instant::now();
            f();
            B::sync(device).expect("device sync");
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(times)
}

/// Median seconds of `a` and of `b` over `repeat` runs each, alternating them so that drift and
/// noise hit both alike (each run synchronised as in [`median_seconds`]).
pub fn alternate<B: Backend>(
    device: &B::Device,
    repeat: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    let times = alternate_all::<B>(device, repeat, &mut [&mut a, &mut b]);
    (times[0], times[1])
}

/// Median seconds of each of `runs` over `repeat` rounds, each round running every one once
/// in turn (see [`alternate`]).
pub fn alternate_all<B: Backend>(
    device: &B::Device,
    repeat: usize,
    runs: &mut [&mut dyn FnMut()],
) -> Vec<f64> {
    let mut times = vec![Vec::new(); runs.len()];
    for _ in 0..repeat.max(1) {
        for (run, times) in runs.iter_mut().zip(&mut times) {
            times.push(median_seconds::<B>(device, 0, 1, &mut *run));
        }
    }
    times.into_iter().map(median).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// GFLOP/s of an `n x n x n` f32 matmul: the roofline of a matmul-bound encoder.
pub fn matmul_gflops<B: Backend>(n: usize, device: &B::Device, repeat: usize) -> f64 {
    let a = Tensor::<B, 2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<B, 2>::random([n, n], Distribution::Default, device);
    let t = median_seconds::<B>(device, 2, repeat, || {
        let c = a.clone().matmul(b.clone());
        // Force the computation on lazy/fused backends.
        let _ = c.slice([0..1, 0..1]).into_data();
    });
    2.0 * (n as f64).powi(3) / t / 1e9
}

/// What one `kiln bench` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backend: String,
    pub shape: Shape,
    pub repeat: usize,
    pub matmul_n: usize,
    pub matmul_gflops: f64,
    pub kiln: Measure,
    pub burn: Measure,
    /// kiln forced onto burn's fused attention op, where the default (`AttentionKernel::Auto`)
    /// does not use it (the CPU backends): what the matmul attention path gains.
    pub kiln_fused_op: Option<Measure>,
    /// max |kiln - kiln with the fused op| over the output.
    pub max_abs_diff_fused_op: Option<f32>,
    /// kiln with its batch in one piece (`BatchSplit::Off`), where the default
    /// (`BatchSplit::Auto`) splits it across threads (burn-flex): what the split gains.
    pub kiln_unsplit: Option<Measure>,
    /// max |kiln - kiln unsplit| over the output.
    pub max_abs_diff_unsplit: Option<f32>,
    /// kiln tokens/s divided by burn's.
    pub speedup_vs_burn: f64,
    /// max |kiln - burn| over the output (the two must agree).
    pub max_abs_diff_vs_burn: f32,
    pub padded: PaddedMeasure,
}

/// One model's timing.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub median_seconds: f64,
    pub tokens_per_second: f64,
    pub gflops_per_second: f64,
    /// GFLOP/s as a share of the raw matmul's.
    pub roofline_fraction: f64,
    /// Peak resident memory of the process during one forward pass (bytes), when measurable.
    pub peak_rss_bytes: Option<u64>,
    /// Growth of resident memory during that pass over the resident memory before it.
    pub peak_rss_delta_bytes: Option<u64>,
}

/// kiln on a batch whose lengths are spread uniformly between S/4 and S.
#[derive(Debug, Clone, Serialize)]
pub struct PaddedMeasure {
    pub lengths: Vec<usize>,
    pub real_tokens: usize,
    /// Running the padded batch as is (real tokens per second).
    pub padded_real_tokens_per_second: f64,
    /// With `pack_padding` (real tokens per second).
    pub packed_real_tokens_per_second: f64,
    /// packed / padded.
    pub speedup: f64,
    /// max |packed - padded| over real tokens.
    pub max_abs_diff: f32,
}

fn measure(shape: &Shape, seconds: f64, roofline: f64) -> Measure {
    let tokens = (shape.batch * shape.seq) as f64;
    let gflops = shape.flops() / seconds / 1e9;
    Measure {
        median_seconds: seconds,
        tokens_per_second: tokens / seconds,
        gflops_per_second: gflops,
        roofline_fraction: gflops / roofline,
        peak_rss_bytes: None,
        peak_rss_delta_bytes: None,
    }
}

/// Runs kiln and burn's encoder side by side on `shape`.
pub fn run<B: Backend>(
    backend: &str,
    shape: &Shape,
    device: &B::Device,
    repeat: usize,
    seed: u64,
) -> Result<BenchReport, kiln::KilnError> {
    B::seed(device, seed);
    // f32 with its weights packed for kiln's CPU kernel where the backend runs it: what the
    // CLI's `forward` and `embed` run (burn-nn's copy below reads the same weights).
    let kiln_model: TransformerEncoder<B> = shape
        .config()
        .try_init(device)?
        .with_precision(Precision::F32);
    let burn_model = reference::burn_encoder_from(&kiln_model, device);
    let src = Tensor::<B, 3>::random(
        [shape.batch, shape.seq, shape.d_model],
        Distribution::Normal(0.0, 1.0),
        device,
    );

    let matmul_n = 1024;
    let roofline = matmul_gflops::<B>(matmul_n, device, repeat.max(5));

    let kiln_forward = || kiln_model.forward(src.clone(), None, None, false).unwrap();
    let compare_fused = !AttentionKernel::Auto.is_fused::<B>(device);
    let kiln_fused_forward = || {
        let fused = Execution::default().with_attention_kernel(AttentionKernel::Fused);
        let input = EncoderInput::new(src.clone());
        kiln_model.run_with(&fused, input).unwrap().output
    };
    let compare_unsplit = BatchSplit::Auto.slices::<B>(shape.batch, device) > 1;
    let kiln_unsplit_forward = || {
        let unsplit = Execution::default().with_batch_split(BatchSplit::Off);
        let input = EncoderInput::new(src.clone());
        kiln_model.run_with(&unsplit, input).unwrap().output
    };
    let burn_forward = || {
        burn_model.forward(burn::nn::transformer::TransformerEncoderInput::new(
            src.clone(),
        ))
    };

    // Agreement first (also the warm-up).
    let a = HostTensor::from_tensor(kiln_forward());
    let b = HostTensor::from_tensor(burn_forward());
    let max_abs_diff_vs_burn = max_abs_diff(&a.data, &b.data);
    let max_abs_diff_fused_op = compare_fused
        .then(|| max_abs_diff(&a.data, &HostTensor::from_tensor(kiln_fused_forward()).data));
    let max_abs_diff_unsplit = compare_unsplit.then(|| {
        max_abs_diff(
            &a.data,
            &HostTensor::from_tensor(kiln_unsplit_forward()).data,
        )
    });

    let mut run_kiln = || {
        let _ = kiln_forward();
    };
    let mut run_burn = || {
        let _ = burn_forward();
    };
    let mut run_kiln_fused = || {
        let _ = kiln_fused_forward();
    };
    let mut run_kiln_unsplit = || {
        let _ = kiln_unsplit_forward();
    };
    // kiln and burn-nn first; then the variants this backend has, alternating with them.
    let mut runs: Vec<&mut dyn FnMut()> = vec![&mut run_kiln, &mut run_burn];
    if compare_fused {
        runs.push(&mut run_kiln_fused);
    }
    if compare_unsplit {
        runs.push(&mut run_kiln_unsplit);
    }
    let times = alternate_all::<B>(device, repeat, &mut runs);
    let mut kiln = measure(shape, times[0], roofline);
    let mut burn = measure(shape, times[1], roofline);
    let kiln_fused_op = compare_fused.then(|| measure(shape, times[2], roofline));
    let kiln_unsplit =
        compare_unsplit.then(|| measure(shape, times[2 + usize::from(compare_fused)], roofline));
    if let Some((peak, delta)) = memory::peak_during(|| {
        let _ = HostTensor::from_tensor(kiln_forward());
    }) {
        kiln.peak_rss_bytes = Some(peak);
        kiln.peak_rss_delta_bytes = Some(delta);
    }
    if let Some((peak, delta)) = memory::peak_during(|| {
        let _ = HostTensor::from_tensor(burn_forward());
    }) {
        burn.peak_rss_bytes = Some(peak);
        burn.peak_rss_delta_bytes = Some(delta);
    }

    let padded = padded_measure(&kiln_model, shape, &src, device, repeat, seed);
    Ok(BenchReport {
        backend: backend.to_string(),
        shape: shape.clone(),
        repeat,
        matmul_n,
        matmul_gflops: roofline,
        speedup_vs_burn: kiln.tokens_per_second / burn.tokens_per_second,
        kiln,
        burn,
        kiln_fused_op,
        max_abs_diff_fused_op,
        kiln_unsplit,
        max_abs_diff_unsplit,
        max_abs_diff_vs_burn,
        padded,
    })
}

/// Lengths uniform in `[seq/4, seq]`, seeded.
pub fn spread_lengths(batch: usize, seq: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..batch)
        .map(|_| rng.random_range((seq / 4).max(1)..=seq))
        .collect()
}

fn padded_measure<B: Backend>(
    model: &TransformerEncoder<B>,
    shape: &Shape,
    src: &Tensor<B, 3>,
    device: &B::Device,
    repeat: usize,
    seed: u64,
) -> PaddedMeasure {
    let lengths = spread_lengths(shape.batch, shape.seq, seed);
    let real_tokens: usize = lengths.iter().sum();
    let padding = KeyPaddingMask::from_lengths(&lengths, shape.seq);
    let input = EncoderInput::new(src.clone()).key_padding_mask(padding);
    let padded_run = || model.run(input.clone()).unwrap().output;
    let packed = model.execution.with_pack_padding(true);
    let packed_run = || model.run_with(&packed, input.clone()).unwrap().output;

    let a = HostTensor::from_tensor(padded_run());
    let b = HostTensor::from_tensor(packed_run());
    // Real tokens only: the first `len` rows of each sequence.
    let diff_on_real_tokens = lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let start = i * shape.seq * shape.d_model;
            let real = start..start + len * shape.d_model;
            max_abs_diff(&a.data[real.clone()], &b.data[real])
        })
        .fold(0.0, f32::max);
    let (padded, packed) = alternate::<B>(
        device,
        repeat,
        || {
            let _ = padded_run();
        },
        || {
            let _ = packed_run();
        },
    );
    PaddedMeasure {
        lengths,
        real_tokens,
        padded_real_tokens_per_second: real_tokens as f64 / padded,
        packed_real_tokens_per_second: real_tokens as f64 / packed,
        speedup: padded / packed,
        max_abs_diff: diff_on_real_tokens,
    }
}

/// Largest `|a - b|` over two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
