//! The slot map: where each parameter of a model lives in a checkpoint.
//!
//! A model lists its parameters as [`WeightSlot`]s (checkpoint key or keys, target parameter,
//! whether the tensor is transposed on the way); [`load_slots`] fills them from a
//! [`TensorFile`] and says in a [`LoadReport`] what was applied, missing, unused or mis-shaped;
//! [`read_slots`] is the inverse.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::host::{HostTensor, TensorFile};
use crate::error::{KilnError, Result};

/// Gives `param` a new value, keeping its identity and whether it is trainable (so a model
/// loaded on an autodiff backend trains).
fn replace_value<B: Backend, const D: usize>(param: &mut Param<Tensor<B, D>>, value: Tensor<B, D>) {
    // burn's loading path reads those settings lazily: a skeleton's parameters
    // ([`crate::ZeroFill`]) are replaced without being allocated (cloning a lazy `Param`
    // clones its initialiser, not a value).
    *param = param.clone().transform_for_load(value, param.id);
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
                let dims = p.lazy_shape().to_vec();
                vec![dims[1], dims[0]]
            }
            Self::Vector(p) => p.lazy_shape().to_vec(),
            Self::Matrix(p) => p.lazy_shape().to_vec(),
        }
    }

    /// Gives the parameter `value` (checkpoint layout), copied once: transposed for a Linear
    /// weight, as it is otherwise (not at all if it is already owned).
    fn assign(&mut self, value: Cow<'_, HostTensor>, device: &B::Device) {
        match self {
            Self::LinearWeight(p) => replace_value(p, value.transposed().into_tensor(device)),
            Self::Vector(p) => replace_value(p, value.into_owned().into_tensor(device)),
            Self::Matrix(p) => replace_value(p, value.into_owned().into_tensor(device)),
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
    /// Keys holding NaN or infinite values: (key, how many). Loaded as they are; an error in
    /// [`LoadReport::into_result`] unless [`allow_nonfinite_weights`] was set.
    pub nonfinite: Vec<(String, usize)>,
}

static ALLOW_NONFINITE: AtomicBool = AtomicBool::new(false);

/// Whether [`allow_nonfinite_weights`] is set.
pub fn nonfinite_weights_allowed() -> bool {
    ALLOW_NONFINITE.load(Ordering::Relaxed)
}

/// Whether loading accepts weights holding NaN or infinite values (off by default: one NaN
/// spreads to every output, or worse, is hidden by an activation, so a corrupt checkpoint is
/// refused with the tensor's name). Process-wide, for tools that inspect broken checkpoints
/// (`kiln --allow-nonfinite`).
pub fn allow_nonfinite_weights(allow: bool) {
    ALLOW_NONFINITE.store(allow, Ordering::Relaxed);
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
        if let Some((key, count)) = self.nonfinite.first() {
            if !ALLOW_NONFINITE.load(Ordering::Relaxed) {
                return Err(KilnError::NonFinite {
                    what: format!("weight `{key}`"),
                    count: *count,
                });
            }
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
            report.mismatched.push((key, value.shape.clone(), expected));
            continue;
        }
        let nonfinite = value.data.iter().filter(|v| !v.is_finite()).count();
        if nonfinite > 0 {
            report.nonfinite.push((slot.sources.join(" + "), nonfinite));
        }
        slot.target.assign(value, device);
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

/// Stacks `parts` along dim 0 (one part: itself, not copied). Parts whose trailing dimensions
/// differ cannot be stacked: the result then has no data and all their shapes concatenated, so
/// the mismatch is reported.
fn concat_dim0<'a>(parts: &[&'a HostTensor]) -> Cow<'a, HostTensor> {
    if parts.len() == 1 {
        return Cow::Borrowed(parts[0]);
    }
    let mut shape = parts[0].shape.clone();
    if parts
        .iter()
        .any(|p| p.shape.len() != shape.len() || p.shape[1..] != shape[1..])
    {
        // Shapes that cannot be stacked: report them as they are.
        shape = parts.iter().flat_map(|p| p.shape.clone()).collect();
        return Cow::Owned(HostTensor {
            shape,
            data: Vec::new(),
        });
    }
    shape[0] = parts.iter().map(|p| p.shape[0]).sum();
    let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    Cow::Owned(HostTensor::new(shape, data))
}
