//! `--precision auto|f32|int8|bf16`: the arithmetic of a model's Linear layers.

use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;
use kiln::Precision;

/// `--precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    /// int8 when the weights file stores int8 Linear weights (`kiln quantize`'s output),
    /// else f32.
    Auto,
    /// f32 throughout (PyTorch's numbers).
    F32,
    /// int8 Linear layers: weights per output channel (quantized at load), activations per
    /// row, integer matrix products on the CPU.
    Int8,
    /// bf16 Linear layers: weights rounded to bf16 at load, activations per call, f32
    /// accumulation; needs a CPU with AVX-512 BF16.
    Bf16,
}

impl PrecisionChoice {
    /// The precision to run a model whose weights are in `weights` (a safetensors file; only
    /// its header is read). bf16 on a CPU without its instructions is an error naming them.
    pub fn resolve(self, weights: Option<&Path>) -> Result<Precision> {
        Ok(match self {
            Self::F32 => Precision::F32,
            Self::Int8 => Precision::Int8,
            Self::Bf16 => {
                Precision::Bf16.check_cpu()?;
                Precision::Bf16
            }
            Self::Auto => match weights {
                Some(path) if kiln::weights::stores_int8(path)? => Precision::Int8,
                _ => Precision::F32,
            },
        })
    }
}
