//! The error type of kiln-compress.

use kiln::KilnError;
use kiln_text::TextError;

/// What can go wrong while compressing a model.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A pruning rate outside `[0, 1]` (or one that would remove everything).
    #[error("{what}: rate {rate} must be in [0, 1)")]
    Rate { what: &'static str, rate: f64 },
    /// A plan or option that does not fit the model.
    #[error("{0}")]
    Invalid(String),
    /// From the encoder core.
    #[error(transparent)]
    Kiln(#[from] KilnError),
    /// From the text models.
    #[error(transparent)]
    Text(#[from] TextError),
}

/// `Result` with [`CompressError`].
pub type Result<T, E = CompressError> = std::result::Result<T, E>;

/// Checks a pruning rate: `0 <= rate < 1`.
pub(crate) fn check_rate(what: &'static str, rate: f64) -> Result<()> {
    if (0.0..1.0).contains(&rate) {
        Ok(())
    } else {
        Err(CompressError::Rate { what, rate })
    }
}
