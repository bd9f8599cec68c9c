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
    crate::common::check_whole_input_file(path)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes, path)
}

/// Parses `.npy` bytes; `path` names them in errors. The header's shape is checked against the
/// bytes there are before anything is allocated for it.
fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let file = NpyFile::new(bytes)
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
    let element_bytes: usize = type_str
        .get(2..)
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(1);
    let size = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.saturating_mul(element_bytes) <= bytes.len())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the header's shape {shape:?} holds more values than the file ({} bytes)",
                path.display(),
                bytes.len()
            )
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed() -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 3])
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        writer.extend([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        writer.finish().unwrap();
        bytes
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_refused() {
        let bytes = seed();
        assert_eq!(parse(&bytes, Path::new("x.npy")).unwrap().shape(), &[2, 3]);
        // The same header length: the longer shape eats into the header's padding spaces.
        let (old, new) = (&b"(2, 3, )"[..], &b"(99999999999, 99999999, )"[..]);
        let at = bytes.windows(old.len()).position(|w| w == old).unwrap();
        let mut huge = bytes[..at].to_vec();
        huge.extend_from_slice(new);
        let rest = &bytes[at + old.len()..];
        let newline = rest.iter().position(|&b| b == b'\n').unwrap();
        let grown = new.len() - old.len();
        huge.extend_from_slice(&rest[..newline - grown]);
        huge.extend_from_slice(&rest[newline..]);
        assert_eq!(huge.len(), bytes.len());
        let err = parse(&huge, Path::new("x.npy")).err().unwrap().to_string();
        assert!(err.contains("holds more values than the file"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// A bounded fuzz run of the `.npy` reader: mutated files give an error, never a panic.
        #[test]
        fn mutated_npy_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
            let mut bytes = seed();
            for (at, value) in edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = parse(&bytes, Path::new("fuzz.npy"));
        }
    }
}
