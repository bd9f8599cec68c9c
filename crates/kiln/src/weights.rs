//! Weights I/O: `model.safetensors` with PyTorch's `state_dict` names.
//!
//! The mapping between kiln's parameters and PyTorch's keys is one declarative list of
//! [`WeightSlot`]s, built by [`TransformerEncoder::weight_slots`]: the PyTorch key (or keys, concatenated
//! along dim 0, for checkpoints that store q/k/v apart), the PyTorch shape, and whether the
//! tensor is transposed on the way in (burn's Linear weights are `[in, out]`, PyTorch's `[out, in]`).
//! Loading fills every slot and reports what was applied, missing, unused or mis-shaped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::config::TransformerEncoderConfig;
use crate::encoder::TransformerEncoder;
use crate::error::{KilnError, Result};

/// A tensor on the host, in row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A host tensor; `data.len()` must equal the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// Copies a device tensor to the host.
    pub fn from_tensor<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Self {
        let shape = tensor.dims().to_vec();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 data");
        Self { shape, data }
    }

    /// Uploads to `device`; `D` must equal the number of dimensions.
    pub fn to_tensor<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        assert_eq!(self.shape.len(), D, "rank mismatch");
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// The transpose of a 2-D tensor.
    pub fn transposed(&self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                data[c * rows + r] = self.data[r * cols + c];
            }
        }
        Self::new(vec![cols, rows], data)
    }
}

/// The tensors of a safetensors file, converted to f32, by name.
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
}

impl TensorFile {
    /// Reads a safetensors file. f32, f16, bf16 and f64 tensors are converted to f32; bool and
    /// integer tensors too (so masks and token ids can travel in the same format).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| KilnError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses safetensors bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| KilnError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let data = to_f32(&name, &view)?;
            tensors.insert(name, HostTensor::new(view.shape().to_vec(), data));
        }
        dequantize_int8(&mut tensors, path)?;
        Ok(Self { tensors })
    }

    /// Writes the tensors as f32 safetensors, atomically (temp file + rename).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path.as_ref(), &bytes)
    }

    /// The f32 safetensors encoding of the tensors.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_with_int8(&BTreeMap::new())
    }

    /// The safetensors encoding of the tensors (f32) plus `int8` tensors (shape, values) stored
    /// as `I8`. A quantized weight `K` comes with a scale tensor `K` + [`INT8_SCALE_SUFFIX`] among
    /// the f32 tensors; [`Self::read`] turns the pair back into f32 `K`.
    pub fn to_bytes_with_int8(
        &self,
        int8: &BTreeMap<String, (Vec<usize>, Vec<i8>)>,
    ) -> Result<Vec<u8>> {
        let mut raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), Dtype::F32, t.shape.clone(), bytes)
            })
            .collect();
        for (k, (shape, values)) in int8 {
            let bytes = values.iter().map(|&v| v as u8).collect();
            raw.push((k.clone(), Dtype::I8, shape.clone(), bytes));
        }
        let views = raw
            .iter()
            .map(|(k, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| KilnError::Safetensors {
                path: PathBuf::from("<memory>"),
                reason: e.to_string(),
            })?;
        safetensors::serialize(views, None).map_err(|e| KilnError::Safetensors {
            path: PathBuf::from("<memory>"),
            reason: e.to_string(),
        })
    }
}

/// Suffix of the per-row scales of an int8 weight (`K` is stored as `I8`, `K` + suffix as f32
/// with one scale per row of `K`): written by `kiln quantize`, dequantized by [`TensorFile::read`].
pub const INT8_SCALE_SUFFIX: &str = ".kiln_int8_scale";

/// Replaces each int8 weight and its scales by the f32 weight `q * scale` (per row).
fn dequantize_int8(tensors: &mut BTreeMap<String, HostTensor>, path: &Path) -> Result<()> {
    let scale_keys: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(INT8_SCALE_SUFFIX))
        .cloned()
        .collect();
    for scale_key in scale_keys {
        let key = scale_key.trim_end_matches(INT8_SCALE_SUFFIX).to_string();
        let scales = tensors.remove(&scale_key).expect("listed");
        let bad = |reason: String| KilnError::Safetensors {
            path: path.to_path_buf(),
            reason,
        };
        let weight = tensors
            .get_mut(&key)
            .ok_or_else(|| bad(format!("`{scale_key}` has no int8 tensor `{key}`")))?;
        let rows = weight.shape.first().copied().unwrap_or(0);
        if scales.data.len() != rows || rows == 0 {
            return Err(bad(format!(
                "`{scale_key}` has {} scales for the {rows} rows of `{key}`",
                scales.data.len()
            )));
        }
        let cols = weight.data.len() / rows;
        for (row, scale) in weight.data.chunks_mut(cols).zip(&scales.data) {
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(())
}

fn to_f32(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let bytes = view.data();
    macro_rules! chunks {
        ($n:expr, $f:expr) => {
            bytes.chunks_exact($n).map($f).collect()
        };
    }
    Ok(match view.dtype() {
        Dtype::F32 => chunks!(4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Dtype::F64 => chunks!(8, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::F16 => chunks!(2, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        Dtype::BF16 => chunks!(2, |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        Dtype::BOOL | Dtype::U8 => bytes.iter().map(|&b| b as f32).collect(),
        Dtype::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
        Dtype::I32 => chunks!(4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32),
        Dtype::I64 => chunks!(8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f32),
        other => {
            return Err(KilnError::WeightDtype {
                key: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees a partial file and a failed write leaves nothing behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(KilnError::io(path, e));
    }
    Ok(())
}

/// Gives `param` a new value, keeping its identity and whether it is trainable (so a model
/// loaded on an autodiff backend trains).
fn replace_value<B: Backend, const D: usize>(param: &mut Param<Tensor<B, D>>, value: Tensor<B, D>) {
    let trainable = param.val().is_require_grad();
    *param = Param::initialized(param.id, value.set_require_grad(trainable));
}

/// Where one parameter of the model lives in a checkpoint.
pub struct WeightSlot<'a, B: Backend> {
    /// Canonical (PyTorch `state_dict`) name.
    pub key: String,
    /// Checkpoint keys that make up the tensor, concatenated along dim 0 (PyTorch layout).
    /// Usually just `[key]`; e.g. BERT's separate `query/key/value` for a packed `in_proj`.
    pub sources: Vec<String>,
    /// The parameter.
    pub target: SlotTarget<'a, B>,
}

/// The parameter a [`WeightSlot`] fills.
pub enum SlotTarget<'a, B: Backend> {
    /// A Linear weight: burn `[in, out]`, checkpoint `[out, in]` (transposed on the way).
    LinearWeight(&'a mut Param<Tensor<B, 2>>),
    /// A vector (bias, LayerNorm scale or shift), stored as is.
    Vector(&'a mut Param<Tensor<B, 1>>),
    /// A matrix stored as is (e.g. embedding tables `[vocab, E]`).
    Matrix(&'a mut Param<Tensor<B, 2>>),
}

impl<B: Backend> SlotTarget<'_, B> {
    /// The shape the checkpoint must hold.
    pub fn checkpoint_shape(&self) -> Vec<usize> {
        match self {
            Self::LinearWeight(p) => {
                let [d_in, d_out] = p.dims();
                vec![d_out, d_in]
            }
            Self::Vector(p) => p.dims().to_vec(),
            Self::Matrix(p) => p.dims().to_vec(),
        }
    }

    fn assign(&mut self, value: &HostTensor, device: &B::Device) {
        match self {
            Self::LinearWeight(p) => replace_value(p, value.transposed().to_tensor(device)),
            Self::Vector(p) => replace_value(p, value.to_tensor(device)),
            Self::Matrix(p) => replace_value(p, value.to_tensor(device)),
        }
    }

    fn read(&self) -> HostTensor {
        match self {
            Self::LinearWeight(p) => HostTensor::from_tensor(p.val()).transposed(),
            Self::Vector(p) => HostTensor::from_tensor(p.val()),
            Self::Matrix(p) => HostTensor::from_tensor(p.val()),
        }
    }
}

impl<'a, B: Backend> WeightSlot<'a, B> {
    /// A slot whose checkpoint key is its canonical name.
    pub fn new(key: impl Into<String>, target: SlotTarget<'a, B>) -> Self {
        let key = key.into();
        Self {
            sources: vec![key.clone()],
            key,
            target,
        }
    }
}

/// The slots of a Linear layer: `{prefix}.weight`, `{prefix}.bias`.
pub fn linear_slots<'a, B: Backend>(
    prefix: &str,
    linear: &'a mut Linear<B>,
) -> Vec<WeightSlot<'a, B>> {
    let mut slots = vec![WeightSlot::new(
        format!("{prefix}.weight"),
        SlotTarget::LinearWeight(&mut linear.weight),
    )];
    if let Some(bias) = linear.bias.as_mut() {
        slots.push(WeightSlot::new(
            format!("{prefix}.bias"),
            SlotTarget::Vector(bias),
        ));
    }
    slots
}

/// The slots of a LayerNorm: `{prefix}.weight`, `{prefix}.bias`.
pub fn layer_norm_slots<'a, B: Backend>(
    prefix: &str,
    norm: &'a mut LayerNorm<B>,
) -> Vec<WeightSlot<'a, B>> {
    let mut slots = vec![WeightSlot::new(
        format!("{prefix}.weight"),
        SlotTarget::Vector(&mut norm.gamma),
    )];
    if let Some(beta) = norm.beta.as_mut() {
        slots.push(WeightSlot::new(
            format!("{prefix}.bias"),
            SlotTarget::Vector(beta),
        ));
    }
    slots
}

impl<B: Backend> TransformerEncoder<B> {
    /// The declarative map from PyTorch `state_dict` keys to this model's parameters, under
    /// `prefix` (`""` for a bare `nn.TransformerEncoder`).
    pub fn weight_slots(&mut self, prefix: &str) -> Vec<WeightSlot<'_, B>> {
        let mut slots = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let p = format!("{prefix}layers.{i}");
            let attn = &mut layer.self_attn;
            slots.push(WeightSlot::new(
                format!("{p}.self_attn.in_proj_weight"),
                SlotTarget::LinearWeight(&mut attn.in_proj.weight),
            ));
            if let Some(bias) = attn.in_proj.bias.as_mut() {
                slots.push(WeightSlot::new(
                    format!("{p}.self_attn.in_proj_bias"),
                    SlotTarget::Vector(bias),
                ));
            }
            slots.extend(linear_slots(
                &format!("{p}.self_attn.out_proj"),
                &mut attn.out_proj,
            ));
            slots.extend(linear_slots(&format!("{p}.linear1"), &mut layer.linear1));
            slots.extend(linear_slots(&format!("{p}.linear2"), &mut layer.linear2));
            slots.extend(layer_norm_slots(&format!("{p}.norm1"), &mut layer.norm1));
            slots.extend(layer_norm_slots(&format!("{p}.norm2"), &mut layer.norm2));
        }
        if let Some(norm) = self.norm.as_mut() {
            slots.extend(layer_norm_slots(&format!("{prefix}norm"), norm));
        }
        slots
    }

    /// Loads PyTorch-named weights from a safetensors file. Any missing, unexpected or
    /// mis-shaped key is an error that names it.
    pub fn load_safetensors(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let file = TensorFile::read(path)?;
        let device = self
            .devices()
            .into_iter()
            .next()
            .expect("model has a device");
        load_slots(self.weight_slots(""), &file, &device).into_result()?;
        Ok(self)
    }

    /// Builds the model of `config.json` and loads `model.safetensors`.
    pub fn from_files(
        config: impl AsRef<Path>,
        weights: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let config = TransformerEncoderConfig::from_json_file(config)?;
        config
            .try_init_zeroed::<B>(device)?
            .load_safetensors(weights)
    }

    /// Loads a directory holding `config.json` and `model.safetensors`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        Self::from_files(
            dir.join("config.json"),
            dir.join("model.safetensors"),
            device,
        )
    }

    /// The PyTorch `state_dict` of the model, on the host.
    pub fn state_dict(&mut self) -> TensorFile {
        read_slots(self.weight_slots(""))
    }

    /// Writes `model.safetensors` (f32, PyTorch names), atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        self.clone().state_dict().write(path)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| KilnError::io(dir, e))?;
        write_atomic(
            &dir.join("config.json"),
            self.config.to_json_string().as_bytes(),
        )?;
        self.save_safetensors(dir.join("model.safetensors"))
    }
}

/// What loading a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Canonical keys that were filled.
    pub applied: Vec<String>,
    /// Keys the model needs that the file lacks, with the expected shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys in the file no slot used.
    pub unused: Vec<String>,
    /// Keys whose shape differs: (key, shape in the file, shape expected).
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    /// `Ok` if every slot was filled and every key used; else the first problem, named.
    pub fn into_result(self) -> Result<Self> {
        if let Some((key, got, expected)) = self.mismatched.first() {
            return Err(KilnError::WeightShape {
                key: key.clone(),
                got: got.clone(),
                expected: expected.clone(),
            });
        }
        if let Some((key, expected)) = self.missing.first() {
            return Err(KilnError::MissingWeight {
                key: key.clone(),
                expected: expected.clone(),
            });
        }
        if !self.unused.is_empty() {
            return Err(KilnError::UnexpectedWeights {
                keys: self.unused.clone(),
            });
        }
        Ok(self)
    }
}

/// Fills `slots` from `file`. Nothing is assigned to a slot whose source is missing or
/// mis-shaped; the report lists those.
pub fn load_slots<B: Backend>(
    slots: Vec<WeightSlot<'_, B>>,
    file: &TensorFile,
    device: &B::Device,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut used = BTreeSet::new();
    for mut slot in slots {
        let expected = slot.target.checkpoint_shape();
        let parts: Option<Vec<&HostTensor>> =
            slot.sources.iter().map(|k| file.tensors.get(k)).collect();
        let Some(parts) = parts else {
            let absent = slot
                .sources
                .iter()
                .find(|k| !file.tensors.contains_key(*k))
                .cloned()
                .unwrap_or_else(|| slot.key.clone());
            report.missing.push((absent, expected));
            continue;
        };
        used.extend(slot.sources.iter().cloned());
        let value = concat_dim0(&parts);
        if value.shape != expected {
            let key = slot.sources.join(" + ");
            report.mismatched.push((key, value.shape, expected));
            continue;
        }
        slot.target.assign(&value, device);
        report.applied.push(slot.key);
    }
    report.unused = file
        .tensors
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    report
}

/// The tensors behind `slots`, under their checkpoint keys: the inverse of [`load_slots`]. A slot
/// filled from several sources (e.g. `query`/`key`/`value`) is split back along dim 0 into equal
/// parts.
pub fn read_slots<B: Backend>(slots: Vec<WeightSlot<'_, B>>) -> TensorFile {
    let mut tensors = BTreeMap::new();
    for slot in slots {
        let value = slot.target.read();
        let parts = slot.sources.len();
        if parts == 1 {
            tensors.insert(slot.key, value);
            continue;
        }
        let rows = value.shape[0] / parts;
        let row_len: usize = value.shape[1..].iter().product();
        for (i, source) in slot.sources.into_iter().enumerate() {
            let mut shape = value.shape.clone();
            shape[0] = rows;
            let data = value.data[i * rows * row_len..(i + 1) * rows * row_len].to_vec();
            tensors.insert(source, HostTensor::new(shape, data));
        }
    }
    TensorFile { tensors }
}

fn concat_dim0(parts: &[&HostTensor]) -> HostTensor {
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let mut shape = parts[0].shape.clone();
    if parts
        .iter()
        .any(|p| p.shape.len() != shape.len() || p.shape[1..] != shape[1..])
    {
        // Shapes that cannot be stacked: report them as they are.
        shape = parts.iter().flat_map(|p| p.shape.clone()).collect();
        return HostTensor {
            shape,
            data: Vec::new(),
        };
    }
    shape[0] = parts.iter().map(|p| p.shape[0]).sum();
    let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    HostTensor::new(shape, data)
}
