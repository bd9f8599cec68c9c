//! Post-training int8 quantization of the Linear weights.
//!
//! - In memory, through burn's quantization ([`quantize_int8`]): each Linear weight becomes a
//!   burn quantized tensor (symmetric int8, per tensor or per block, min-max calibration);
//!   activations stay f32 (dynamic-style weight-only quantization). On the CPU backends burn
//!   dequantizes the weight inside each matmul, so this saves weight memory, not time.
//! - On disk ([`int8_file`]): symmetric int8 per output row with an f32 scale per row, stored in
//!   `model.safetensors` as `I8` tensors next to `<key>.kiln_int8_scale` tensors, which
//!   [`kiln::TensorFile::read`] dequantizes on load: those weights take 4x less room and load
//!   everywhere an f32 file does.

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::ops::QuantizedTensor;
use burn::tensor::quantization::{
    compute_q_params, compute_range, Calibration, QTensorPrimitive, QuantLevel, QuantParam,
    QuantValue,
};
use burn::tensor::Tensor;
use kiln::{HostTensor, TensorFile, TransformerEncoder};

use crate::unstructured::LinearKind;

/// How finely int8 scales are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale per tensor.
    Tensor,
    /// One scale per block of this many consecutive values.
    Block(u8),
}

fn quantize_param<B: Backend>(param: &mut Param<Tensor<B, 2>>, granularity: Granularity) {
    let level = match granularity {
        Granularity::Tensor => QuantLevel::Tensor,
        Granularity::Block(n) => QuantLevel::block([n]),
    };
    let scheme = <QuantizedTensor<B> as QTensorPrimitive>::default_scheme()
        .with_value(QuantValue::Q8S)
        .with_level(level)
        .with_param(QuantParam::F32);
    *param = param.clone().map(|t| {
        let range = compute_range(&scheme, &t, &Calibration::MinMax);
        let qparams = compute_q_params(&scheme, range);
        t.quantize(&scheme, qparams)
    });
}

/// Quantizes the four Linear weights of every layer to int8 in memory (burn quantized tensors).
/// Biases, LayerNorms (and a text model's embeddings) stay f32.
pub fn quantize_int8<B: Backend>(
    mut encoder: TransformerEncoder<B>,
    granularity: Granularity,
) -> TransformerEncoder<B> {
    for layer in &mut encoder.layers {
        quantize_param(&mut layer.self_attn.in_proj.weight, granularity);
        quantize_param(&mut layer.self_attn.out_proj.weight, granularity);
        quantize_param(&mut layer.linear1.weight, granularity);
        quantize_param(&mut layer.linear2.weight, granularity);
    }
    encoder
}

/// The dequantized (f32) copy of an in-memory quantized encoder, e.g. to save it.
pub fn dequantize<B: Backend>(mut encoder: TransformerEncoder<B>) -> TransformerEncoder<B> {
    for layer in &mut encoder.layers {
        for param in [
            &mut layer.self_attn.in_proj.weight,
            &mut layer.self_attn.out_proj.weight,
            &mut layer.linear1.weight,
            &mut layer.linear2.weight,
        ] {
            *param = param.clone().map(|t| t.dequantize());
        }
    }
    encoder
}

/// Which keys of a state_dict are the Linear weights that [`int8_file`] quantizes: names ending
/// in one of `suffixes` (for `nn.TransformerEncoder`: [`LinearKind::torch_name`]s; for BERT:
/// `query/key/value/dense.weight`), 2-D.
pub fn linear_weight_keys(file: &TensorFile, suffixes: &[&str]) -> Vec<String> {
    file.tensors
        .iter()
        .filter(|(k, t)| t.shape.len() == 2 && suffixes.iter().any(|s| k.ends_with(s)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// State_dict suffixes of an `nn.TransformerEncoder`'s Linear weights.
pub fn encoder_linear_suffixes() -> Vec<&'static str> {
    LinearKind::ALL.iter().map(|k| k.torch_name()).collect()
}

/// State_dict suffixes of a Hugging Face BERT encoder's Linear weights.
pub const BERT_LINEAR_SUFFIXES: &[&str] = &[
    "attention.self.query.weight",
    "attention.self.key.weight",
    "attention.self.value.weight",
    "attention.output.dense.weight",
    "intermediate.dense.weight",
    "output.dense.weight",
];

/// Symmetric int8 per row of a PyTorch-layout `[out, in]` weight: `q = round(w / s)`,
/// `s = max|row| / 127`. Returns the int8 values (as f32 integers) and the scales.
pub fn int8_rows(weight: &HostTensor) -> (Vec<i8>, Vec<f32>) {
    let cols = weight.shape[1];
    let mut values = Vec::with_capacity(weight.data.len());
    let mut scales = Vec::with_capacity(weight.shape[0]);
    for row in weight.data.chunks(cols) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        values.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (values, scales)
}

/// The int8 file of `file`: `keys` stored as `I8` with `<key>.kiln_int8_scale` (one f32 per
/// row); everything else unchanged. Returns the safetensors bytes.
pub fn int8_file(file: &TensorFile, keys: &[String]) -> kiln::Result<Vec<u8>> {
    let mut int8 = std::collections::BTreeMap::new();
    let mut rest = TensorFile::default();
    for (key, tensor) in &file.tensors {
        // A NaN or inf has no int8 value (and would poison its row's scale).
        let nonfinite = tensor.data.iter().filter(|v| !v.is_finite()).count();
        if nonfinite > 0 && keys.contains(key) {
            return Err(kiln::KilnError::NonFinite {
                what: format!("weight `{key}` (int8 quantization needs finite weights)"),
                count: nonfinite,
            });
        }
        if keys.contains(key) {
            let (values, scales) = int8_rows(tensor);
            int8.insert(key.clone(), (tensor.shape.clone(), values));
            rest.tensors.insert(
                format!("{key}{}", kiln::weights::INT8_SCALE_SUFFIX),
                HostTensor::new(vec![scales.len()], scales),
            );
        } else {
            rest.tensors.insert(key.clone(), tensor.clone());
        }
    }
    rest.to_bytes_with_int8(&int8)
}
