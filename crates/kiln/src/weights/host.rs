//! Host tensors: [`HostTensor`] (row-major f32 on the CPU), [`TensorFile`] (tensors by name,
//! the in-memory form of a weights file), and the conversion of stored dtypes to f32, int8
//! weights with per-row scales included.
//!
//! Nothing here reads or writes files: the safetensors codec (`codec.rs`) builds on these types.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::Dtype;

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
        self.clone().into_tensor(device)
    }

    /// Uploads to `device` without copying the values first (unlike [`Self::to_tensor`]); `D`
    /// must equal the number of dimensions.
    pub fn into_tensor<B: Backend, const D: usize>(self, device: &B::Device) -> Tensor<B, D> {
        assert_eq!(self.shape.len(), D, "rank mismatch");
        Tensor::from_data(TensorData::new(self.data, self.shape), device)
    }

    /// The transpose of a 2-D tensor, in square tiles: one row at a time, every write of a
    /// large matrix would land on another cache line (and page).
    pub fn transposed(&self) -> Self {
        const TILE: usize = 32;
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; self.data.len()];
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for c in c0..(c0 + TILE).min(cols) {
                        data[c * rows + r] = self.data[r * cols + c];
                    }
                }
            }
        }
        Self::new(vec![cols, rows], data)
    }
}

/// The tensors of a safetensors file, converted to f32, by name.
///
/// Reading and writing the file are [`TensorFile::read`] and [`TensorFile::write`].
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Suffix of the per-row scales of an int8 weight (`K` is stored as `I8`, `K` + suffix as f32
/// with one scale per row of `K`): written by `kiln quantize`, dequantized by [`TensorFile::read`].
pub const INT8_SCALE_SUFFIX: &str = ".kiln_int8_scale";

/// Replaces each int8 weight and its scales by the f32 weight `q * scale` (per row). `path` is
/// only used in error messages.
pub(super) fn dequantize_int8(
    tensors: &mut BTreeMap<String, HostTensor>,
    path: &Path,
) -> Result<()> {
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

/// The little-endian `bytes` of tensor `name`, stored as `dtype`, converted to f32: f32, f64,
/// f16 and bf16 values, and bool, u8, i8, i32 and i64 values as numbers. Any other dtype is a
/// [`KilnError::WeightDtype`] naming the tensor.
pub(super) fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    macro_rules! chunks {
        ($n:expr, $f:expr) => {
            bytes.chunks_exact($n).map($f).collect()
        };
    }
    Ok(match dtype {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_in_tiles_equals_the_transpose_on_odd_shapes() {
        for (rows, cols) in [(1, 1), (1, 70), (70, 1), (33, 70), (64, 32), (70, 33)] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = HostTensor::new(vec![rows, cols], data.clone()).transposed();
            assert_eq!(t.shape, vec![cols, rows]);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t.data[c * rows + r], data[r * cols + c], "{rows}x{cols}");
                }
            }
        }
    }
}
