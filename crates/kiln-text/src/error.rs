//! The error type of kiln-text.

use std::path::PathBuf;

use kiln::KilnError;

/// Everything that can go wrong loading a text model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file the model directory must hold is absent.
    #[error("{dir}: missing `{file}` ({why})")]
    MissingFile {
        dir: PathBuf,
        file: String,
        why: &'static str,
    },
    /// The checkpoint is of an architecture kiln-text does not implement.
    #[error("{path}: unsupported {what} `{value}` ({supported})")]
    Unsupported {
        path: PathBuf,
        what: &'static str,
        value: String,
        supported: &'static str,
    },
    /// A JSON file that does not parse or holds invalid values.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// `tokenizer.json` failed to load, or tokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Bad input text or options.
    #[error("{0}")]
    Input(String),
    /// From the encoder core: shapes, weights (missing, mis-shaped, unexpected keys), I/O.
    #[error(transparent)]
    Kiln(#[from] KilnError),
}

/// `Result` with [`TextError`].
pub type Result<T, E = TextError> = std::result::Result<T, E>;
