//! The arithmetic an encoder's Linear layers run in.

use std::fmt;
use std::str::FromStr;

use crate::error::{KilnError, Result};

/// The arithmetic of the Linear layers (LayerNorm and softmax always run in f32; attention's
/// two products follow `Bf16` on burn-flex, see there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout: PyTorch's numbers.
    #[default]
    F32,
    /// Weights quantized once, symmetric int8 per output channel; activations quantized per
    /// row (asymmetric u8, dynamic); `u8 x i8 -> i32` products, rescaled to f32 with the bias.
    /// On burn-flex these run as integer matrix products (AMX-INT8, AVX-512 VNNI or AVX-VNNI
    /// where the CPU has them, a portable kernel elsewhere); other backends compute the same quantized
    /// values with f32 ops.
    Int8,
    /// Weights rounded once to bf16 (round to nearest even), activations rounded per call;
    /// `bf16 x bf16` products accumulated in f32. On burn-flex these run as AVX-512 BF16 dot
    /// products (`vdpbf16ps`: twice the multiply-adds of an f32 FMA per instruction), or as AMX
    /// tile products (`tdpbf16ps`) where the CPU has AMX; other
    /// backends multiply f32 activations by the rounded weights. On burn-flex, attention's two
    /// products (`q kᵀ`, weights times `v`) run as bf16 dot products too, over queries, keys,
    /// values and weights rounded the same way (the softmax stays f32), as PyTorch's bf16
    /// autocast does; elsewhere, and on padded batches that are not packed, attention stays
    /// f32. Needs a CPU with AVX-512 BF16 ([`Precision::check_cpu`]).
    Bf16,
}

impl Precision {
    /// The name used by the CLI and in reports: `f32`, `int8`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
        }
    }

    /// Whether this CPU runs the precision's kernels. bf16 needs AVX-512 BF16: without it the
    /// portable kernel would compute the same numbers slower than f32, which is never what
    /// asking for bf16 means; the error names the missing feature.
    pub fn check_cpu(self) -> Result<()> {
        let cpu = super::cpu_features();
        match self {
            Self::Bf16 if !cpu.avx512_bf16 => Err(KilnError::UnsupportedCpu {
                what: "precision bf16".to_string(),
                feature: "AVX-512 BF16 (avx512_bf16)",
                found: cpu.summary(),
            }),
            _ => Ok(()),
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
            "bf16" => Ok(Self::Bf16),
            other => Err(KilnError::Config(format!(
                "unknown precision {other:?} (f32, int8, bf16)"
            ))),
        }
    }
}
