//! The error type of kiln-augment.

use std::path::PathBuf;

/// What can go wrong while augmenting.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A WordNet file that is missing or unreadable.
    #[error(
        "{path}: {message} (scripts/fetch_wordnet.sh installs WordNet 3.0 under .cache/wordnet)"
    )]
    WordNet { path: PathBuf, message: String },
    /// A WordNet line that does not parse.
    #[error("{path} line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A rate or count outside its range.
    #[error("{0}")]
    Invalid(String),
    /// From a pluggable translator.
    #[error("translation failed: {0}")]
    Translation(String),
    /// A translator that is not installed, or lacks a language pair; the message names what
    /// to install (e.g. `apertium is not installed: apt-get install apertium apertium-eng-spa`).
    #[error("{0}")]
    Unavailable(String),
}

/// `Result` with [`AugmentError`].
pub type Result<T, E = AugmentError> = std::result::Result<T, E>;
