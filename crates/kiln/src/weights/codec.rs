//! The safetensors codec: [`TensorFile`] to and from `model.safetensors` bytes and files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::host::{dequantize_int8, to_f32, HostTensor, TensorFile};
use crate::atomic::write_atomic;
use crate::error::{KilnError, Result};

/// Whether the safetensors file at `path` stores int8 weights (`kiln quantize`'s output: `I8`
/// tensors with [`INT8_SCALE_SUFFIX`](super::INT8_SCALE_SUFFIX) scales). Reads only the header.
pub fn stores_int8(path: impl AsRef<Path>) -> Result<bool> {
    use std::io::Read;
    let path = path.as_ref();
    let io = |e| KilnError::io(path, e);
    // Opening a FIFO would block: only a regular file is opened.
    let size = crate::input_file::check_regular(path)?;
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(KilnError::Safetensors {
            path: path.to_path_buf(),
            reason: format!("header of {len} bytes in a file of {size}"),
        });
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    // The header is a JSON object keyed by tensor name (plus `__metadata__`).
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| KilnError::Safetensors {
            path: path.to_path_buf(),
            reason: format!("invalid header: {e}"),
        })?;
    Ok(header
        .keys()
        .any(|name| name.ends_with(super::INT8_SCALE_SUFFIX)))
}

impl TensorFile {
    /// Reads a safetensors file. f32, f16, bf16 and f64 tensors are converted to f32; bool and
    /// integer tensors too (so masks and token ids can travel in the same format).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::input_file::read_regular(path, u64::MAX)?;
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
            let data = to_f32(&name, view.dtype(), view.data())?;
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
    /// as `I8`. A quantized weight `K` comes with a scale tensor `K` +
    /// [`INT8_SCALE_SUFFIX`](super::INT8_SCALE_SUFFIX) among the f32 tensors; [`Self::read`]
    /// turns the pair back into f32 `K`.
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
