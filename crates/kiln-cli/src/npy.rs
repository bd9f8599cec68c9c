//! `.npy` input and output (f32 out; f32, f16, f64 and bool in).

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln::HostTensor;
use npyz::{DType, NpyFile, Order, WriterBuilder};

/// The values of an `.npy` file, in the element kind it stored.
pub enum NpyArray {
    /// Floats (f32, or f16 / f64 converted to f32).
    Float(HostTensor),
    /// Booleans, row-major.
    Bool {
        /// The array's shape.
        shape: Vec<usize>,
        /// The values.
        values: Vec<bool>,
    },
}

impl NpyArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::Float(t) => &t.shape,
            Self::Bool { shape, .. } => shape,
        }
    }
}

/// Reads an `.npy` file of f32, f16, f64 or bool.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    if file.order() == Order::Fortran && file.shape().len() > 1 {
        bail!(
            "{}: Fortran-ordered arrays are not supported (save np.ascontiguousarray(x))",
            path.display()
        );
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let type_str = match file.dtype() {
        DType::Plain(t) => t.to_string(),
        other => bail!("{}: unsupported dtype {other:?}", path.display()),
    };
    let truncated = |e: std::io::Error| {
        anyhow::anyhow!("{}: truncated or corrupt .npy data ({e})", path.display())
    };
    let size = shape.iter().product::<usize>();
    let data: Vec<f32> = match &type_str[1..] {
        "f4" => file.into_vec::<f32>().map_err(truncated)?,
        "f8" => file
            .into_vec::<f64>()
            .map_err(truncated)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "f2" => file
            .into_vec::<half::f16>()
            .map_err(truncated)?
            .into_iter()
            .map(f32::from)
            .collect(),
        "b1" => {
            let values = file.into_vec::<bool>().map_err(truncated)?;
            if values.len() != size {
                bail!("{}: truncated .npy data", path.display());
            }
            return Ok(NpyArray::Bool { shape, values });
        }
        _ => bail!(
            "{}: unsupported dtype {type_str} (expected float32, float16, float64 or bool)",
            path.display()
        ),
    };
    if data.len() != size {
        bail!("{}: truncated .npy data", path.display());
    }
    Ok(NpyArray::Float(HostTensor::new(shape, data)))
}

/// Writes f32 values as `.npy`, atomically (temp file + rename).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut bytes)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()?;
    }
    kiln::weights::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
