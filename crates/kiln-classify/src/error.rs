//! The error type of kiln-classify.

use std::path::PathBuf;

/// What can go wrong while reading data, training or classifying.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a labelled file that does not parse.
    #[error("{path} line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A setting or input outside its range.
    #[error("{0}")]
    Invalid(String),
    /// From the text encoder or the weights I/O.
    #[error(transparent)]
    Text(#[from] kiln_text::TextError),
    /// From the weights I/O.
    #[error(transparent)]
    Kiln(#[from] kiln::KilnError),
    /// From augmentation.
    #[error(transparent)]
    Augment(#[from] kiln_augment::AugmentError),
}

impl ClassifyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`ClassifyError`].
pub type Result<T, E = ClassifyError> = std::result::Result<T, E>;
