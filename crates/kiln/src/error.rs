//! The one error type of the kiln library.

use std::path::PathBuf;

/// Everything that can go wrong in kiln, each variant naming what the user must fix.
#[derive(Debug, thiserror::Error)]
pub enum KilnError {
    /// A tensor handed to a forward pass (input or mask) has the wrong shape.
    #[error("{what} has shape {got:?}, expected {expected}")]
    Shape {
        what: String,
        got: Vec<usize>,
        expected: String,
    },
    /// The configuration is not valid (e.g. `d_model % nhead != 0`).
    #[error("invalid config: {0}")]
    Config(String),
    /// A weight the model needs is absent from the weights file.
    #[error("missing weight `{key}` (expected shape {expected:?})")]
    MissingWeight { key: String, expected: Vec<usize> },
    /// The weights file holds keys the model does not have.
    #[error("unexpected weight(s) in file: {}", keys.join(", "))]
    UnexpectedWeights { keys: Vec<String> },
    /// A weight has a different shape in the file than in the model.
    #[error("weight `{key}` has shape {got:?} in the file, but the model expects {expected:?}")]
    WeightShape {
        key: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    /// A weight is stored in a dtype kiln cannot read.
    #[error("weight `{key}` has unsupported dtype {dtype} (f32, f16, bf16 and f64 are read)")]
    WeightDtype { key: String, dtype: String },
    /// The weights file is not valid safetensors.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    /// The input holds NaN or infinite values.
    #[error("{what} contains {count} non-finite value(s) (NaN or inf)")]
    NonFinite { what: String, count: usize },
    /// A model or batch would need more memory than the budget ([`crate::memory`]).
    #[error("{what} needs {} but the memory limit is {} (`--memory-limit` changes it)", crate::memory::human_bytes(*bytes), crate::memory::human_bytes(*limit as u128))]
    TooLarge {
        what: String,
        bytes: u128,
        limit: u64,
    },
    /// The CPU lacks an instruction set extension a requested kernel needs.
    #[error("{what} needs a CPU with {feature}; this one has {found}")]
    UnsupportedCpu {
        what: String,
        feature: &'static str,
        found: String,
    },
    /// No device of the requested backend (e.g. `wgpu` on a machine without a wgpu adapter).
    #[error("{0}")]
    NoDevice(String),
    /// A JSON file could not be parsed.
    #[error("{path}: {reason}")]
    Json { path: PathBuf, reason: String },
    /// I/O failed on a path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl KilnError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn shape(
        what: impl Into<String>,
        got: &[usize],
        expected: impl Into<String>,
    ) -> Self {
        Self::Shape {
            what: what.into(),
            got: got.to_vec(),
            expected: expected.into(),
        }
    }
}

/// `Result` with [`KilnError`].
pub type Result<T, E = KilnError> = std::result::Result<T, E>;
