//! `kiln bench`: kiln vs burn's built-in encoder in one process. Speed is not asserted (that is
//! what the command measures); the report's fields, the agreement of the models it times, and
//! its errors are.

use serde_json::Value;

use crate::common::{fails_one_line, kiln, succeeds};

/// A tiny custom shape, so the test is quick in a debug build.
const TINY: [&str; 14] = [
    "--shape",
    "custom",
    "--d-model",
    "32",
    "--nhead",
    "4",
    "--dim-feedforward",
    "64",
    "--layers",
    "2",
    "--batch",
    "3",
    "--seq",
    "8",
];

fn bench(backend: &str) -> Value {
    let out = succeeds(
        kiln()
            .args(["bench", "--backend", backend, "--repeat", "2", "--json"])
            .args(TINY),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite())
}

fn check_report(report: &Value, backend: &str) {
    assert_eq!(report["backend"], backend);
    assert_eq!(report["shape"]["d_model"], 32);
    assert_eq!(report["shape"]["batch"], 3);
    for model in ["kiln", "burn"] {
        for field in ["median_seconds", "tokens_per_second", "gflops_per_second"] {
            assert!(positive(&report[model][field]), "{model}.{field}: {report}");
        }
    }
    assert!(positive(&report["matmul_gflops"]), "{report}");
    assert!(positive(&report["speedup_vs_burn"]), "{report}");
    // Same weights and inputs: kiln and burn-nn compute the same encoder.
    let diff = report["max_abs_diff_vs_burn"].as_f64().unwrap();
    assert!(diff < 1e-5, "kiln vs burn-nn: {diff}");
    // Padded batch: packing the padding away changes nothing on the real tokens.
    let padded = &report["padded"];
    let lengths: Vec<u64> = padded["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(lengths.len(), 3);
    assert!(lengths.iter().all(|&l| (2..=8).contains(&l)), "{lengths:?}");
    assert_eq!(padded["real_tokens"], lengths.iter().sum::<u64>());
    assert!(padded["max_abs_diff"].as_f64().unwrap() < 1e-5, "{padded}");
    assert!(positive(&padded["speedup"]), "{padded}");
}

#[test]
fn bench_on_ndarray_reports_kiln_and_burn_nn_on_the_same_encoder() {
    let report = bench("ndarray");
    check_report(&report, "ndarray");
    // ndarray's default kernel is burn's fused op: no third row.
    assert!(report["kiln_fused_op"].is_null(), "{report}");
    assert!(report["max_abs_diff_fused_op"].is_null(), "{report}");
}

#[test]
fn bench_on_flex_also_times_the_fused_op_it_does_not_use() {
    let report = bench("flex");
    check_report(&report, "flex");
    assert!(
        positive(&report["kiln_fused_op"]["tokens_per_second"]),
        "{report}"
    );
    let diff = report["max_abs_diff_fused_op"].as_f64().unwrap();
    assert!(diff < 1e-5, "matmul vs fused attention: {diff}");
}

#[test]
fn bench_rejects_bad_shapes_in_one_line() {
    let line = fails_one_line(kiln().args(["bench", "--shape", "huge"]), 2);
    assert!(line.contains("unknown --shape huge"), "{line}");
    let line = fails_one_line(
        kiln().args(["bench", "--shape", "custom", "--layers", "0"]),
        2,
    );
    assert!(line.contains("at least 1"), "{line}");
    // d_model not divisible by nhead: the config's own check, still one line.
    let line = fails_one_line(
        kiln().args([
            "bench",
            "--shape",
            "custom",
            "--d-model",
            "30",
            "--nhead",
            "4",
        ]),
        1,
    );
    assert!(line.contains("30") && line.contains('4'), "{line}");
}
