//! The error type of kiln-explain.

use std::path::PathBuf;

use kiln::KilnError;
use kiln_text::TextError;

/// What can go wrong while explaining a model.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// An option that does not fit the model or input (a layer or head out of range, ...).
    #[error("{0}")]
    Invalid(String),
    /// Writing a report, heatmap or HTML file.
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    /// From the encoder core.
    #[error(transparent)]
    Kiln(#[from] KilnError),
    /// From the text models.
    #[error(transparent)]
    Text(#[from] TextError),
}

/// `Result` with [`ExplainError`].
pub type Result<T, E = ExplainError> = std::result::Result<T, E>;
