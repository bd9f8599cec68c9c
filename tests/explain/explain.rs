//! Interpretability (kiln-explain): attention maps against PyTorch's `need_weights=True,
//! average_attn_weights=False`, rollout's rows and padding, Integrated Gradients' completeness,
//! gradients against finite differences, head importance, PNG heatmaps and the HTML report.

use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, Cpu, CpuAutodiff};
use kiln::{EncoderInput, KeyPaddingMask, TransformerEncoderConfig};
use kiln_explain::attention::{encoder_attention, text_attention};
use kiln_explain::gradients::{gradient_x_input, integrated_gradients, pooled_from_word_vectors};
use kiln_explain::heads::head_importance;
use kiln_explain::heatmap::{matrix_png, scores_png, MATRIX_SIZE, SCORES_SIZE};
use kiln_explain::html::{escape, html_report};
use kiln_explain::{
    explain_attention, rollout, Baseline, IntegratedGradientsConfig, Method, SquareMatrix, Target,
};
use kiln_tests::encoder_cases;
use kiln_tests::minilm::minilm_dir;
use kiln_text::TextEncoder;

#[test]
fn attention_maps_match_pytorch_need_weights_per_head() {
    let device = cpu_device();
    let mut checked = 0;
    for case in encoder_cases() {
        let model = case.model::<Cpu>(&device);
        let maps = encoder_attention(&model, case.input::<Cpu>(&device), None).unwrap();
        for layer in 0..model.layers.len() {
            // PyTorch's [B, H, S, S] from need_weights=True, average_attn_weights=False.
            let expected = case.get(&format!("attn.{layer}")).unwrap();
            let [batch, heads, seq, _] = expected.shape[..] else {
                panic!("attn shape")
            };
            assert_eq!(maps.len(), batch);
            let mut worst = 0.0f32;
            for (b, item) in maps.iter().enumerate() {
                for h in 0..heads {
                    let got = item.head(layer, h).unwrap();
                    let start = (b * heads + h) * seq * seq;
                    for (g, e) in got
                        .data
                        .iter()
                        .zip(&expected.data[start..start + seq * seq])
                    {
                        worst = worst.max((g - e).abs());
                    }
                }
            }
            assert!(worst <= 1e-5, "{} layer {layer}: {worst:e}", case.name);
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} layers checked");
}

fn small_model(layers: usize) -> kiln::TransformerEncoder<Cpu> {
    TransformerEncoderConfig::new(16, 4, layers)
        .with_dim_feedforward(32)
        .with_batch_first(true)
        .init::<Cpu>(&cpu_device())
}

#[test]
fn rollout_rows_sum_to_one_and_padding_receives_nothing() {
    let device = cpu_device();
    let model = small_model(3);
    let src = Tensor::<Cpu, 3>::random([2, 6, 16], Distribution::Normal(0.0, 1.0), &device);
    let lengths = [6, 4];
    let input =
        EncoderInput::new(src.clone()).key_padding_mask(KeyPaddingMask::from_lengths(&lengths, 6));
    let maps = encoder_attention(&model, input, Some(&lengths)).unwrap();
    for (item, &len) in maps.iter().zip(&lengths) {
        let r = rollout(item);
        assert_eq!(r.n, 6);
        for i in 0..6 {
            let row = r.row(i);
            assert!(row.iter().all(|&v| v >= 0.0), "non-negative");
            let sum: f32 = row.iter().sum();
            if i < len {
                assert!((sum - 1.0).abs() < 1e-5, "row {i} sums to {sum}");
            } else {
                assert_eq!(sum, 0.0, "a padded position has no row");
            }
            for (j, &v) in row.iter().enumerate().skip(len) {
                assert_eq!(v, 0.0, "padded token {j} receives mass {v} from {i}");
            }
        }
    }
    // The padded item's rollout equals the same sequence's alone.
    let alone = src.narrow(0, 1, 1).narrow(1, 0, 4);
    let alone = rollout(&encoder_attention(&model, EncoderInput::new(alone), None).unwrap()[0]);
    let padded = rollout(&maps[1]).crop(4);
    for (a, b) in alone.data.iter().zip(&padded.data) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn one_layer_rollout_is_half_attention_plus_half_identity() {
    let device = cpu_device();
    let model = small_model(1);
    let src = Tensor::<Cpu, 3>::random([1, 5, 16], Distribution::Normal(0.0, 1.0), &device);
    let maps = encoder_attention(&model, EncoderInput::new(src), None).unwrap();
    let mean = maps[0].mean(0).unwrap();
    let r = rollout(&maps[0]);
    for i in 0..5 {
        for j in 0..5 {
            let expected = 0.5 * mean.get(i, j) + if i == j { 0.5 } else { 0.0 };
            assert!((r.get(i, j) - expected).abs() < 1e-6);
        }
    }
}

#[test]
fn layer_and_head_out_of_range_are_named() {
    let device = cpu_device();
    let model = small_model(2);
    let src = Tensor::<Cpu, 3>::random([1, 3, 16], Distribution::Normal(0.0, 1.0), &device);
    let maps = encoder_attention(&model, EncoderInput::new(src), None).unwrap();
    let err = maps[0].select(Some(2), None).unwrap_err().to_string();
    assert!(
        err.contains("layer 2 is out of range") && err.contains("2 layers"),
        "{err}"
    );
    let err = maps[0].select(Some(1), Some(4)).unwrap_err().to_string();
    assert!(
        err.contains("head 4 is out of range") && err.contains("4 heads"),
        "{err}"
    );
}

const TEXT: &str = "The cat sat on the mat.";

#[test]
fn minilm_rollout_honours_padding_and_scores_sum_to_one() {
    let encoder = TextEncoder::<Cpu>::from_dir(minilm_dir(), &cpu_device()).unwrap();
    let texts = [
        TEXT,
        "A much longer sentence, so that the first one is padded in the batch.",
    ];
    let batch = text_attention(&encoder, &texts).unwrap();
    let (tokens, maps) = &batch[0];
    assert!(maps.len < maps.seq, "the short text is padded");
    assert_eq!(tokens.len(), maps.len);
    let padded = rollout(maps);
    for j in maps.len..maps.seq {
        assert!((0..maps.seq).all(|i| padded.get(i, j) == 0.0));
    }
    let alone = explain_attention(&encoder, TEXT, Method::Rollout, None, None).unwrap();
    let alone_rows = alone.rollout.as_ref().unwrap();
    assert_eq!(alone_rows.len(), maps.len);
    for (i, row) in alone_rows.iter().enumerate() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "row {i}: {sum}");
        for (j, v) in row.iter().enumerate() {
            assert!(
                (v - padded.get(i, j)).abs() < 1e-4,
                "({i},{j}) {v} vs {}",
                padded.get(i, j)
            );
        }
    }
    // Mean pooling: token scores are the rows' average, a distribution over the tokens.
    let total: f32 = alone.token_scores.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    assert_eq!(alone.tokens.first().map(String::as_str), Some("[CLS]"));

    let attention = explain_attention(&encoder, TEXT, Method::Attention, Some(2), Some(5)).unwrap();
    let heads = attention.attention_heads.as_ref().unwrap();
    assert_eq!((heads.len(), heads[2].len()), (6, 12));
    assert_eq!(attention.attention.as_ref().unwrap(), &heads[2][5]);
}

fn autodiff_minilm() -> TextEncoder<CpuAutodiff> {
    TextEncoder::<CpuAutodiff>::from_dir(minilm_dir(), &cpu_device()).unwrap()
}

#[test]
fn integrated_gradients_are_complete_within_one_percent_at_64_steps() {
    let encoder = autodiff_minilm();
    let other = "A kitten is sitting on a rug.";
    let similarity = Target::similarity_to(&encoder, other).unwrap();
    let targets = [
        (Target::Norm, Baseline::Pad),
        (similarity.clone(), Baseline::Pad),
        (Target::Dimension { index: 7 }, Baseline::Zero),
    ];
    for (target, baseline) in targets {
        let config = IntegratedGradientsConfig {
            steps: 64,
            baseline,
            batch_size: 32,
        };
        let ig = integrated_gradients(&encoder, TEXT, &target, &config, |_| {}).unwrap();
        if target == similarity {
            // f(x) is the model's own similarity of the two texts (dropout off on autodiff).
            let inner = TextEncoder::<Cpu>::from_dir(minilm_dir(), &cpu_device()).unwrap();
            let expected = inner.similarity(TEXT, other).unwrap();
            assert!(
                (ig.target_value - expected).abs() < 1e-5,
                "{} vs {expected}",
                ig.target_value
            );
        }
        let change = ig.target_value - ig.baseline_value.unwrap();
        let total: f32 = ig.token_scores.iter().sum();
        let delta = ig.delta.unwrap();
        assert!((total - change - delta).abs() < 1e-5);
        assert!(
            delta.abs() <= 0.01 * change.abs(),
            "{}: sum {total} vs f(x) - f(baseline) {change}",
            target.describe()
        );
        assert!(change.abs() > 1e-3, "a non-trivial target");
        if baseline == Baseline::Pad {
            // [CLS] and [SEP] are the same in input and baseline: no attribution.
            assert_eq!(ig.token_scores[0], 0.0);
            assert_eq!(*ig.token_scores.last().unwrap(), 0.0);
        }
    }
}

#[test]
fn gradient_x_input_matches_a_finite_difference() {
    // Σ_t (x ⊙ ∂f/∂x)_t = d/dε f((1 + ε) x) at ε = 0.
    let encoder = autodiff_minilm();
    let target = Target::Dimension { index: 3 };
    let attribution = gradient_x_input(&encoder, TEXT, &target).unwrap();
    let total: f32 = attribution.token_scores.iter().sum();

    let inner = TextEncoder::<Cpu>::from_dir(minilm_dir(), &cpu_device()).unwrap();
    let tokens = inner.tokenize(&[TEXT]).unwrap();
    let batch = inner.batch_tensors(&tokens);
    let x = inner.model.embeddings.word_vectors(batch.input_ids.clone());
    let f = |scale: f32| {
        let pooled =
            pooled_from_word_vectors(&inner, &inner.model, x.clone() * scale, &batch).unwrap();
        let v = target.value(pooled, inner.pipeline.normalize).unwrap();
        kiln::HostTensor::from_tensor(v).data[0] as f64
    };
    let eps = 1e-2;
    let numeric = ((f(1.0 + eps) - f(1.0 - eps)) / (2.0 * eps as f64)) as f32;
    assert!(
        (numeric - total).abs() <= 0.02 * numeric.abs().max(1e-3),
        "autodiff {total} vs finite difference {numeric}"
    );
    assert!((attribution.target_value - f(1.0) as f32).abs() < 1e-5);
}

#[test]
fn head_importance_for_a_target_covers_every_head() {
    let encoder = autodiff_minilm();
    let importance = head_importance(&encoder, &[TEXT], &Target::Norm).unwrap();
    assert_eq!(importance.heads.len(), 6);
    for layer in &importance.heads {
        assert_eq!(layer.len(), 12);
        assert!(layer.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    assert!(importance.heads.iter().flatten().any(|&v| v > 0.0));
}

#[test]
fn heatmaps_are_pngs_of_the_documented_size() {
    let labels: Vec<String> = ["[CLS]", "the", "cat", "##s", "[SEP]"]
        .map(String::from)
        .to_vec();
    let matrix = SquareMatrix {
        n: 5,
        data: (0..25).map(|i| (i % 7) as f32 / 7.0).collect(),
    };
    let png = matrix_png(&matrix, &labels, "attention", MATRIX_SIZE).unwrap();
    let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
    assert_eq!((image.width(), image.height()), (800, 800));
    let colours: std::collections::HashSet<_> = image.to_rgb8().pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 20,
        "cells and text drawn: {} colours",
        colours.len()
    );

    let png = scores_png(&labels, &[0.0, 0.5, -0.25, 1.0, 0.0], "ig", SCORES_SIZE).unwrap();
    let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
    assert_eq!((image.width(), image.height()), (1000, 300));
    let png = matrix_png(&matrix, &labels, "custom", (320, 240)).unwrap();
    let image = image::load_from_memory(&png).unwrap();
    assert_eq!((image.width(), image.height()), (320, 240));

    let err = matrix_png(&matrix, &labels[..4], "x", MATRIX_SIZE).unwrap_err();
    assert!(
        err.to_string().contains("4 labels for a 5x5 matrix"),
        "{err}"
    );
}

#[test]
fn html_report_holds_every_token_escaped() {
    let encoder = TextEncoder::<Cpu>::from_dir(minilm_dir(), &cpu_device()).unwrap();
    let text = "Tom & Jerry <b>chase</b> \"mice\"";
    let report = explain_attention(&encoder, text, Method::Attention, None, None).unwrap();
    let html = html_report(&report, "all-MiniLM-L6-v2");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for token in &report.tokens {
        assert!(
            html.contains(&format!(">{}</span>", escape(token))),
            "{token}"
        );
    }
    assert!(!html.contains("<b>chase"), "the text is escaped");
    assert!(!html.contains("<script"), "self-contained, no scripts");
    assert!(html.contains("&amp;") && html.contains("&lt;"));
}

#[test]
fn gradient_methods_match_torch_autograd_on_minilm() {
    // scripts/explain_torch.py: the same methods with torch autograd on sentence-transformers.
    let path = kiln_tests::fixtures_dir().join("explain/minilm_gradients.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = fixture["text"].as_str().unwrap();
    let floats = |key: &str| -> Vec<f32> { serde_json::from_value(fixture[key].clone()).unwrap() };
    let encoder = autodiff_minilm();
    let target = Target::similarity_to(&encoder, fixture["target"].as_str().unwrap()).unwrap();
    let close = |got: &[f32], expected: &[f32], what: &str| {
        assert_eq!(got.len(), expected.len(), "{what}");
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() <= 3e-4,
                "{what}: kiln {got:?} vs torch {expected:?}"
            );
        }
    };
    let gi = gradient_x_input(&encoder, text, &target).unwrap();
    let tokens: Vec<String> = serde_json::from_value(fixture["tokens"].clone()).unwrap();
    assert_eq!(gi.tokens, tokens);
    assert!((gi.target_value - fixture["target_value"].as_f64().unwrap() as f32).abs() < 1e-5);
    close(&gi.token_scores, &floats("grad_input"), "gradient x input");
    let config = IntegratedGradientsConfig {
        steps: fixture["steps"].as_u64().unwrap() as usize,
        baseline: Baseline::Pad,
        batch_size: 32,
    };
    let ig = integrated_gradients(&encoder, text, &target, &config, |_| {}).unwrap();
    let base = fixture["baseline_value"].as_f64().unwrap() as f32;
    assert!((ig.baseline_value.unwrap() - base).abs() < 1e-5);
    close(
        &ig.token_scores,
        &floats("integrated_gradients"),
        "integrated gradients",
    );
}
