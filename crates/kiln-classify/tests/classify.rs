//! kiln-classify: metrics against hand-computed values, the head's weights I/O, and training
//! on synthetic features: the loss falls, each unsupervised loss behaves as specified, runs are
//! deterministic under a seed, and bad settings are named errors.

use std::path::Path;

use burn::module::AutodiffModule;
use kiln::backend::{cpu_device, Cpu, CpuAutodiff};
use kiln_classify::data::{parse_labeled, LabelSet, LabeledText};
use kiln_classify::features::Features;
use kiln_classify::train::{argmax, predict_proba, LabeledRow, UnlabeledRow};
use kiln_classify::{
    train_head, ClassifierHead, ClassifierHeadConfig, ConsistencyConfig, Evaluation,
    PseudoLabelConfig, StepLog, TrainConfig, TrainingSet,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const DIM: usize = 8;
const CLASSES: usize = 3;

/// Gaussian clusters around `CLASSES` well-separated centres: `per_class` rows each, labels in
/// row order `0, 1, 2, 0, 1, 2, ...`.
fn clusters(per_class: usize, seed: u64) -> (Features, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.35).unwrap();
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for i in 0..per_class * CLASSES {
        let class = i % CLASSES;
        for d in 0..DIM {
            let centre = if d % CLASSES == class { 1.0 } else { 0.0 };
            values.push(centre + noise.sample(&mut rng));
        }
        labels.push(class);
    }
    (Features::new(DIM, values), labels)
}

/// Labelled rows 0..labeled, unlabelled the rest; each row's "view" is the row after it
/// among those of its class (a different sample of the same cluster).
fn training_set(per_class: usize, labeled_per_class: usize) -> TrainingSet {
    let (features, labels) = clusters(per_class, 7);
    let n = labels.len();
    let view = |i: usize| (i + CLASSES) % n;
    let split = labeled_per_class * CLASSES;
    TrainingSet {
        features,
        labeled: (0..split)
            .map(|i| LabeledRow {
                row: i,
                label: labels[i],
                views: vec![view(i)],
            })
            .collect(),
        unlabeled: (split..n)
            .map(|i| UnlabeledRow {
                row: i,
                views: vec![view(i)],
            })
            .collect(),
        num_classes: CLASSES,
    }
}

fn head() -> ClassifierHead<CpuAutodiff> {
    ClassifierHeadConfig::new(DIM, CLASSES)
        .init(3, &cpu_device())
        .unwrap()
}

fn train(set: &TrainingSet, config: &TrainConfig) -> (ClassifierHead<Cpu>, Vec<StepLog>) {
    let (head, log) = train_head(head(), set, config, &cpu_device(), |_| {}).unwrap();
    (head.valid(), log)
}

fn mean(log: &[StepLog], f: impl Fn(&StepLog) -> f64) -> f64 {
    log.iter().map(f).sum::<f64>() / log.len() as f64
}

#[test]
fn metrics_match_hand_computed_values() {
    let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let gold = [0, 0, 1, 1, 2, 2];
    let predicted = [0, 1, 1, 1, 2, 0];
    let e = Evaluation::new(&gold, &predicted, &labels);
    assert!((e.accuracy - 4.0 / 6.0).abs() < 1e-12);
    // a: p 1/2 r 1/2 f 1/2; b: p 2/3 r 1 f 0.8; c: p 1 r 1/2 f 2/3 (scikit-learn agrees).
    let f1: Vec<f64> = e.classes.iter().map(|c| c.f1).collect();
    for (got, want) in f1.iter().zip([0.5, 0.8, 2.0 / 3.0]) {
        assert!((got - want).abs() < 1e-12, "{f1:?}");
    }
    assert!((e.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    assert_eq!(
        e.confusion,
        vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]
    );
    assert_eq!(e.classes[1].support, 2);
    // A class never present nor predicted scores 0 and still counts in the mean.
    let e = Evaluation::new(&[0, 1], &[0, 1], &labels);
    assert_eq!(e.classes[2].f1, 0.0);
    assert!((e.macro_f1 - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn labeled_files_parse_and_errors_name_the_line() {
    let path = Path::new("train.tsv");
    let examples = parse_labeled("sports\tA goal!\n\nfood\tPie\twith tabs\r\n", path).unwrap();
    assert_eq!(
        examples,
        vec![
            LabeledText {
                label: "sports".into(),
                text: "A goal!".into()
            },
            LabeledText {
                label: "food".into(),
                text: "Pie\twith tabs".into()
            },
        ]
    );
    let labels = LabelSet::from_examples(&examples).unwrap();
    assert_eq!(labels.names(), ["food", "sports"]);
    assert_eq!(labels.indices(&examples).unwrap(), vec![1, 0]);
    let err = parse_labeled("sports\tok\nno tab here\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("tab"), "{err}");
    let err = parse_labeled("\tno label\n", path).unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("empty label"),
        "{err}"
    );
    let one = parse_labeled("a\tx\na\ty\n", path).unwrap();
    assert!(
        LabelSet::from_examples(&one).is_err(),
        "one class cannot be classified"
    );
    let unknown = [LabeledText {
        label: "law".into(),
        text: "x".into(),
    }];
    let err = labels.indices(&unknown).unwrap_err().to_string();
    assert!(err.contains("`law`"), "{err}");
}

#[test]
fn a_tiny_training_run_lowers_the_loss_and_learns_the_clusters() {
    let set = training_set(40, 10);
    let config = TrainConfig {
        steps: 150,
        batch_size: 15,
        learning_rate: 5e-2,
        ..TrainConfig::default()
    };
    let (head, log) = train(&set, &config);
    assert_eq!(log.len(), 150);
    let first = mean(&log[..10], |s| s.supervised);
    let last = mean(&log[140..], |s| s.supervised);
    assert!(last < 0.3 * first, "loss {first} -> {last}");
    assert!(log
        .iter()
        .all(|s| s.consistency.is_none() && s.pseudo_label.is_none()));
    // The unlabelled rows are unseen samples of the same clusters.
    let (features, labels) = clusters(40, 7);
    let predicted = argmax(&predict_proba(&head, &features).unwrap());
    let unseen = 30..labels.len();
    let correct = unseen
        .clone()
        .filter(|&i| predicted[i] == labels[i])
        .count();
    assert!(
        correct as f64 >= 0.95 * unseen.len() as f64,
        "{correct}/{}",
        unseen.len()
    );
    let probabilities = predict_proba(&head, &features).unwrap();
    for p in &probabilities {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn training_is_deterministic_under_a_seed() {
    let set = training_set(20, 5);
    let config = TrainConfig {
        steps: 30,
        consistency: Some(ConsistencyConfig::default()),
        pseudo_labels: Some(PseudoLabelConfig::default()),
        ramp_up_steps: 0,
        ..TrainConfig::default()
    };
    // Same batches, views and masks (the discrete choices are equal); the losses equal up to
    // float summation order, which burn's parallel CPU kernels may vary when other tests run
    // at the same time (the CLI test compares a whole run's head byte for byte).
    let close = |a: &[StepLog], b: &[StepLog]| {
        a.iter().zip(b).all(|(x, y)| {
            x.consistency_kept == y.consistency_kept
                && x.pseudo_labeled == y.pseudo_labeled
                && (x.loss - y.loss).abs() < 1e-5
                && (x.supervised - y.supervised).abs() < 1e-5
        })
    };
    let (_, a) = train(&set, &config);
    let (_, b) = train(&set, &config);
    assert!(close(&a, &b), "{a:?}\n{b:?}");
    let (_, c) = train(&set, &TrainConfig { seed: 1, ..config });
    assert!(!close(&a, &c));
    // Initialisation is seeded too.
    let device = cpu_device();
    let init = |seed| {
        ClassifierHeadConfig::new(DIM, CLASSES)
            .init::<Cpu>(seed, &device)
            .unwrap()
            .state_dict()
    };
    assert_eq!(init(4).tensors, init(4).tensors);
    assert_ne!(init(4).tensors, init(5).tensors);
}

#[test]
fn consistency_is_a_masked_kl_divergence() {
    let set = training_set(20, 5);
    // Nothing reaches a threshold of 1: every row is masked out, the loss is exactly 0.
    let masked = TrainConfig {
        steps: 20,
        consistency: Some(ConsistencyConfig {
            threshold: 1.0,
            ..ConsistencyConfig::default()
        }),
        ..TrainConfig::default()
    };
    let (_, log) = train(&set, &masked);
    for s in &log {
        assert_eq!(s.consistency_kept, Some(0.0));
        assert!(s.consistency.unwrap().abs() < 1e-6, "{s:?}");
    }
    // Threshold 0 keeps every row; KL is never negative.
    let open = TrainConfig {
        steps: 40,
        consistency: Some(ConsistencyConfig {
            threshold: 0.0,
            ..ConsistencyConfig::default()
        }),
        ..TrainConfig::default()
    };
    let (_, log) = train(&set, &open);
    for s in &log {
        assert_eq!(s.consistency_kept, Some(1.0));
        assert!(s.consistency.unwrap() >= -1e-6, "{s:?}");
    }
    // Views identical to their texts, no sharpening, no dropout: the target is the prediction
    // itself, so KL is 0 (up to rounding) at every step.
    let mut same = training_set(20, 5);
    for u in &mut same.unlabeled {
        u.views = vec![u.row];
    }
    let config = TrainConfig {
        steps: 10,
        consistency: Some(ConsistencyConfig {
            threshold: 0.0,
            temperature: 1.0,
            weight: 1.0,
        }),
        ..TrainConfig::default()
    };
    let no_dropout = ClassifierHeadConfig::new(DIM, CLASSES)
        .with_dropout(0.0)
        .init::<CpuAutodiff>(3, &cpu_device())
        .unwrap();
    let (_, log) = train_head(no_dropout, &same, &config, &cpu_device(), |_| {}).unwrap();
    for s in &log {
        assert!(s.consistency.unwrap().abs() < 1e-5, "{s:?}");
    }
}

#[test]
fn pseudo_labels_follow_the_threshold_and_ramp() {
    let set = training_set(20, 5);
    let all = TrainConfig {
        steps: 20,
        pseudo_labels: Some(PseudoLabelConfig {
            threshold: 0.0,
            weight: 1.0,
        }),
        ramp_up_steps: 0,
        ..TrainConfig::default()
    };
    let (_, log) = train(&set, &all);
    for s in &log {
        assert_eq!(s.pseudo_labeled, Some(1.0));
        let total = s.supervised + s.pseudo_label.unwrap();
        assert!((s.loss - total).abs() < 1e-4, "{s:?}");
    }
    // Ramp-up: step 1 of 10 weighs the unsupervised loss by 1/10.
    let ramped = TrainConfig {
        ramp_up_steps: 10,
        steps: 1,
        ..all
    };
    let (_, log) = train(&set, &ramped);
    let s = &log[0];
    assert!(
        (s.loss - (s.supervised + 0.1 * s.pseudo_label.unwrap())).abs() < 1e-4,
        "{s:?}"
    );
}

#[test]
fn bad_settings_are_named_errors() {
    let set = training_set(10, 5);
    let mut no_unlabeled = set.clone();
    no_unlabeled.unlabeled.clear();
    let cases: Vec<(TrainingSet, TrainConfig, &str)> = vec![
        (
            no_unlabeled,
            TrainConfig {
                consistency: Some(ConsistencyConfig::default()),
                ..TrainConfig::default()
            },
            "unlabelled",
        ),
        (
            set.clone(),
            TrainConfig {
                learning_rate: 0.0,
                ..TrainConfig::default()
            },
            "learning rate",
        ),
        (
            set.clone(),
            TrainConfig {
                steps: 0,
                ..TrainConfig::default()
            },
            "steps",
        ),
        (
            set.clone(),
            TrainConfig {
                pseudo_labels: Some(PseudoLabelConfig {
                    threshold: 1.5,
                    weight: 1.0,
                }),
                ..TrainConfig::default()
            },
            "threshold",
        ),
    ];
    for (set, config, needle) in cases {
        let err = train_head(head(), &set, &config, &cpu_device(), |_| {})
            .expect_err("an error")
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let mut nan = set.clone();
    nan.features = Features::new(DIM, {
        let mut v = set.features.values().to_vec();
        v[3] = f32::NAN;
        v
    });
    let err = train_head(head(), &nan, &TrainConfig::default(), &cpu_device(), |_| {})
        .expect_err("an error")
        .to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn head_weights_round_trip_under_pytorch_names() {
    let device = cpu_device();
    for hidden in [0, 16] {
        let config = ClassifierHeadConfig::new(DIM, CLASSES).with_hidden(hidden);
        let head: ClassifierHead<Cpu> = config.init(5, &device).unwrap();
        let (features, _) = clusters(4, 1);
        let before = predict_proba(&head, &features).unwrap();
        let file = head.state_dict();
        let last_in = if hidden > 0 { hidden } else { DIM };
        assert_eq!(
            file.tensors["classifier.weight"].shape,
            vec![CLASSES, last_in]
        );
        assert_eq!(file.tensors.contains_key("dense.weight"), hidden > 0);
        let loaded = ClassifierHead::<Cpu>::from_state_dict(&config, &file, &device).unwrap();
        assert_eq!(predict_proba(&loaded, &features).unwrap(), before);
        let mut missing = file.clone();
        missing.tensors.remove("classifier.bias");
        let err = ClassifierHead::<Cpu>::from_state_dict(&config, &missing, &device)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("classifier.bias"), "{err}");
        let wrong = ClassifierHeadConfig::new(DIM + 1, CLASSES).with_hidden(hidden);
        let err = ClassifierHead::<Cpu>::from_state_dict(&wrong, &file, &device)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("weight"), "{err}");
    }
}
