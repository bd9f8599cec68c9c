//! Before/after speed of one kiln change: the same program built against two trees (set the
//! two `path`s in Cargo.toml), run alternating from the repository root:
//! `ab_speed base-flex|base-ndarray|embed-flex|embed-ndarray` (docs/benchmarks.md, #21 table).

use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, flex_device, Cpu, Flex};
use kiln::{Activation, TransformerEncoderConfig};
use kiln_text::TextEncoder;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn base<B: burn::tensor::backend::Backend>(device: &B::Device) -> f64 {
    let model = TransformerEncoderConfig::new(768, 12, 4)
        .with_dim_feedforward(3072)
        .with_activation(Activation::Gelu)
        .with_batch_first(true)
        .init::<B>(device);
    let src = Tensor::<B, 3>::random([8, 128, 768], Distribution::Normal(0.0, 1.0), device);
    let run = || {
        let y = model.forward(src.clone(), None, None, false).unwrap();
        let _ = y.into_data();
    };
    run();
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .collect();
    (8.0 * 128.0) / median(times)
}

fn embed<B: burn::tensor::backend::Backend>(device: &B::Device, lines: &[String]) -> f64 {
    let enc = TextEncoder::<B>::from_dir(
        &std::env::var("MODEL").unwrap_or_else(|_| ".cache/models/all-MiniLM-L6-v2".into()),
        device,
    )
    .unwrap();
    enc.embed(&lines[..64]).unwrap();
    let t = Instant::now();
    let rows = enc.embed(lines).unwrap();
    assert_eq!(rows.len(), lines.len());
    lines.len() as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let what = std::env::args().nth(1).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(
        std::env::var("CORPUS")
            .unwrap_or_else(|_| "crates/kiln-bench/data/sentences_1000.txt".into()),
    )
    .unwrap()
    .lines()
    .map(String::from)
    .collect();
    let v = match what.as_str() {
        "base-flex" => base::<Flex>(&flex_device()),
        "base-ndarray" => base::<Cpu>(&cpu_device()),
        "embed-flex" => embed::<Flex>(&flex_device(), &lines),
        "embed-ndarray" => embed::<Cpu>(&cpu_device(), &lines),
        _ => panic!("?"),
    };
    println!("{what} {v:.1}");
}
