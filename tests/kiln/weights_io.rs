//! Weights I/O: round trips, dtypes, and errors that name the key.

use std::collections::BTreeMap;

use kiln::backend::{cpu_device, Cpu};
use kiln::{HostTensor, KilnError, TensorFile, TransformerEncoder, TransformerEncoderConfig};
use kiln_tests::{encoder_cases, max_abs_diff};
use safetensors::tensor::{Dtype, TensorView};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn save_and_load_round_trip() {
    let device = cpu_device();
    let config = TransformerEncoderConfig::new(16, 4, 2)
        .with_dim_feedforward(24)
        .with_bias(false)
        .with_final_norm(true);
    let model = config.init::<Cpu>(&device);
    let dir = tmpdir("roundtrip");
    model.save_dir(&dir).unwrap();
    let back = TransformerEncoder::<Cpu>::from_dir(&dir, &device).unwrap();
    let x = burn::tensor::Tensor::<Cpu, 3>::ones([3, 2, 16], &device);
    let a = HostTensor::from_tensor(model.forward(x.clone(), None, None, false).unwrap());
    let b = HostTensor::from_tensor(back.forward(x, None, None, false).unwrap());
    assert_eq!(a, b);
    assert!(back.layers[0].linear1.bias.is_none());
    assert!(
        back.norm.as_ref().unwrap().beta.is_some(),
        "final norm keeps its bias"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn state_dict_has_exactly_pytorchs_keys() {
    let case = &encoder_cases()[0];
    let file = TensorFile::read(case.dir.join("model.safetensors")).unwrap();
    let mut model = case.model::<Cpu>(&cpu_device());
    let ours = model.state_dict();
    let theirs: Vec<_> = file.tensors.keys().collect();
    assert_eq!(ours.tensors.keys().collect::<Vec<_>>(), theirs);
    for (k, v) in &file.tensors {
        assert_eq!(max_abs_diff(v, &ours.tensors[k]), 0.0, "{k}");
    }
}

fn write_with_dtype(src: &TensorFile, dtype: Dtype, path: &std::path::Path) {
    let raw: BTreeMap<String, (Vec<usize>, Vec<u8>)> = src
        .tensors
        .iter()
        .map(|(k, t)| {
            let bytes = match dtype {
                Dtype::F16 => t
                    .data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                Dtype::BF16 => t
                    .data
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                _ => unreachable!(),
            };
            (k.clone(), (t.shape.clone(), bytes))
        })
        .collect();
    let views: Vec<_> = raw
        .iter()
        .map(|(k, (s, b))| (k.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn half_precision_checkpoints_load() {
    let case = &encoder_cases()[0];
    let file = TensorFile::read(case.dir.join("model.safetensors")).unwrap();
    let dir = tmpdir("half");
    std::fs::copy(case.dir.join("config.json"), dir.join("config.json")).unwrap();
    for (dtype, tol) in [(Dtype::F16, 2e-3), (Dtype::BF16, 1.6e-2)] {
        write_with_dtype(&file, dtype, &dir.join("model.safetensors"));
        let mut model = TransformerEncoder::<Cpu>::from_dir(&dir, &cpu_device()).unwrap();
        for (k, v) in model.state_dict().tensors {
            let err = max_abs_diff(&v, &file.tensors[&k]);
            assert!(err <= tol, "{dtype:?} {k}: {err}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn load_err(mutate: impl FnOnce(&mut TensorFile)) -> KilnError {
    let case = &encoder_cases()[0];
    let mut file = TensorFile::read(case.dir.join("model.safetensors")).unwrap();
    mutate(&mut file);
    let dir = tmpdir(&format!("err{}", rand_suffix()));
    file.write(dir.join("model.safetensors")).unwrap();
    let err = TransformerEncoder::<Cpu>::from_files(
        case.dir.join("config.json"),
        dir.join("model.safetensors"),
        &cpu_device(),
    )
    .unwrap_err();
    std::fs::remove_dir_all(dir).unwrap();
    err
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn missing_unexpected_and_misshaped_keys_are_named() {
    let err = load_err(|f| {
        f.tensors.remove("layers.1.linear2.weight");
    });
    assert!(matches!(err, KilnError::MissingWeight { .. }));
    assert!(err.to_string().contains("layers.1.linear2.weight"), "{err}");
    assert!(err.to_string().contains("[16, 32]"), "{err}");

    let err = load_err(|f| {
        f.tensors.insert(
            "layers.2.norm1.weight".into(),
            HostTensor::new(vec![16], vec![1.0; 16]),
        );
    });
    assert!(
        err.to_string()
            .contains("unexpected weight(s) in file: layers.2.norm1.weight"),
        "{err}"
    );

    let err = load_err(|f| {
        f.tensors.insert(
            "layers.0.self_attn.in_proj_weight".into(),
            HostTensor::new(vec![48, 8], vec![0.0; 384]),
        );
    });
    assert!(
        err.to_string().contains("`layers.0.self_attn.in_proj_weight` has shape [48, 8] in the file, but the model expects [48, 16]"),
        "{err}"
    );
}

#[test]
fn corrupt_and_absent_files_are_clear_errors() {
    let case = &encoder_cases()[0];
    let dir = tmpdir("corrupt");
    let path = dir.join("model.safetensors");
    let good = std::fs::read(case.dir.join("model.safetensors")).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let err =
        TransformerEncoder::<Cpu>::from_files(case.dir.join("config.json"), &path, &cpu_device())
            .unwrap_err();
    assert!(matches!(err, KilnError::Safetensors { .. }), "{err}");
    std::fs::write(&path, b"not a safetensors file at all").unwrap();
    let err =
        TransformerEncoder::<Cpu>::from_files(case.dir.join("config.json"), &path, &cpu_device())
            .unwrap_err();
    assert!(
        err.to_string().contains("not a valid safetensors file"),
        "{err}"
    );
    let err = TransformerEncoder::<Cpu>::from_files(
        case.dir.join("config.json"),
        dir.join("nope"),
        &cpu_device(),
    )
    .unwrap_err();
    assert!(matches!(err, KilnError::Io { .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cloned_init_starts_layers_identical_with_separate_parameters() {
    let device = cpu_device();
    let config = TransformerEncoderConfig::new(16, 4, 3).with_layer_init(kiln::LayerInit::Cloned);
    let mut model = config.init::<Cpu>(&device);
    assert_ne!(
        model.layers[0].linear1.weight.id,
        model.layers[1].linear1.weight.id
    );
    let sd = model.state_dict();
    for key in ["self_attn.in_proj_weight", "linear1.weight", "linear2.bias"] {
        let a = &sd.tensors[&format!("layers.0.{key}")];
        let b = &sd.tensors[&format!("layers.2.{key}")];
        assert_eq!(a, b, "{key}");
    }
    let independent = TransformerEncoderConfig::new(16, 4, 3)
        .init::<Cpu>(&device)
        .state_dict();
    assert_ne!(
        independent.tensors["layers.0.linear1.weight"],
        independent.tensors["layers.1.linear1.weight"]
    );
}
