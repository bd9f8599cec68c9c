//! The arithmetic an encoder's Linear layers run in.

use std::fmt;
use std::str::FromStr;

use crate::error::{KilnError, Result};

/// The arithmetic of the Linear layers (attention, LayerNorm and softmax always run in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout: PyTorch's numbers.
    #[default]
    F32,
    /// Weights quantized once, symmetric int8 per output channel; activations quantized per
    /// row (asymmetric u8, dynamic); `u8 x i8 -> i32` products, rescaled to f32 with the bias.
    /// On burn-flex these run as integer matrix products (AVX-512 VNNI / AVX-VNNI where the
    /// CPU has them, a portable kernel elsewhere); other backends compute the same quantized
    /// values with f32 ops.
    Int8,
}

impl Precision {
    /// The name used by the CLI and in reports: `f32`, `int8`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = KilnError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "int8" => Ok(Self::Int8),
            other => Err(KilnError::Config(format!(
                "unknown precision {other:?} (f32, int8)"
            ))),
        }
    }
}
