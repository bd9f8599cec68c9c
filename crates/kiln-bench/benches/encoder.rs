//! `cargo bench -p kiln-bench`: kiln vs burn's built-in encoder, same weights and inputs, at the
//! "small" and "base" shapes, on ndarray (and flex, and wgpu when built with them and an
//! adapter exists); on the CPU backends also kiln with its batch unsplit.

use burn::prelude::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kiln::{EncoderInput, KeyPaddingMask, TransformerEncoder};
use kiln_bench::{reference::burn_encoder_from, spread_lengths, Shape};

fn bench_backend<B: Backend>(c: &mut Criterion, backend: &str, device: B::Device) {
    for shape in [Shape::small(), Shape::base()] {
        B::seed(&device, 0);
        let model: TransformerEncoder<B> = shape.config().init(&device);
        let burn = burn_encoder_from(&model, &device);
        let src = Tensor::<B, 3>::random(
            [shape.batch, shape.seq, shape.d_model],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut group = c.benchmark_group(format!("{backend}/{}", shape.name));
        group.sample_size(10);
        group.throughput(Throughput::Elements((shape.batch * shape.seq) as u64));
        group.bench_function("kiln", |bench| {
            bench.iter(|| {
                let y = model.forward(src.clone(), None, None, false).unwrap();
                B::sync(&device).unwrap();
                y
            })
        });
        if kiln::BatchSplit::Auto.slices::<B>(shape.batch, &device) > 1 {
            // What splitting the batch across threads (the default on CPUs) gains.
            group.bench_function("kiln-unsplit", |bench| {
                bench.iter(|| {
                    let unsplit = model.execution.with_batch_split(kiln::BatchSplit::Off);
                    let input = EncoderInput::new(src.clone());
                    let y = model.run_with(&unsplit, input).unwrap().output;
                    B::sync(&device).unwrap();
                    y
                })
            });
        }
        group.bench_function("burn-nn", |bench| {
            bench.iter(|| {
                let y = burn.forward(burn::nn::transformer::TransformerEncoderInput::new(
                    src.clone(),
                ));
                B::sync(&device).unwrap();
                y
            })
        });
        let lengths = spread_lengths(shape.batch, shape.seq, 0);
        let input = EncoderInput::new(src.clone())
            .key_padding_mask(KeyPaddingMask::from_lengths(&lengths, shape.seq));
        group.throughput(Throughput::Elements(lengths.iter().sum::<usize>() as u64));
        group.bench_function("kiln-padded", |bench| {
            bench.iter(|| model.run(input.clone()).unwrap().output.into_data())
        });
        group.bench_function("kiln-packed", |bench| {
            bench.iter(|| {
                model
                    .run_with(&model.execution.with_pack_padding(true), input.clone())
                    .unwrap()
                    .output
                    .into_data()
            })
        });
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_backend::<kiln::backend::Cpu>(c, "ndarray", kiln::backend::cpu_device());
    #[cfg(feature = "flex")]
    bench_backend::<kiln::backend::Flex>(c, "flex", kiln::backend::flex_device());
    #[cfg(feature = "wgpu")]
    if !kiln::backend::wgpu_adapters().is_empty() {
        bench_backend::<kiln::backend::Gpu>(c, "wgpu", kiln::backend::gpu_device());
    }
}

criterion_group!(encoder, benches);
criterion_main!(encoder);
