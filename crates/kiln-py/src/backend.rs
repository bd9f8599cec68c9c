//! `backend=` and `precision=`: their names, checked, and the dispatch of a loaded model to the
//! code generic over its backend.

use std::path::Path;

use kiln::backend::{BackendChoice, Selection};
use kiln::Precision;
use pyo3::exceptions::PyValueError;
use pyo3::PyResult;

use crate::errors::kiln_error;

/// `backend=`: `auto`, `wgpu`, `ndarray` or `flex`.
pub fn parse_backend(name: &str) -> PyResult<BackendChoice> {
    name.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "backend must be 'auto', 'wgpu', 'ndarray' or 'flex', not {name:?}"
        ))
    })
}

/// `precision=`, as given: `auto` is resolved against the weights file by [`resolve_precision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionChoice {
    /// int8 when the weights file stores int8 Linear weights (`kiln quantize`'s output), else f32.
    Auto,
    /// One precision.
    Fixed(Precision),
}

/// `precision=`: `auto`, `f32`, `int8` or `bf16`.
pub fn parse_precision(name: &str) -> PyResult<PrecisionChoice> {
    if name == "auto" {
        return Ok(PrecisionChoice::Auto);
    }
    name.parse().map(PrecisionChoice::Fixed).map_err(|_| {
        PyValueError::new_err(format!(
            "precision must be 'auto', 'f32', 'int8' or 'bf16', not {name:?}"
        ))
    })
}

/// The precision to run the model whose weights are `weights`: `auto` reads the file's header
/// (as `kiln --precision auto` does); bf16 on a CPU without AVX-512 BF16 is an error naming it.
pub fn resolve_precision(choice: PrecisionChoice, weights: &Path) -> PyResult<Precision> {
    match choice {
        PrecisionChoice::Fixed(precision) => {
            precision.check_cpu().map_err(|e| kiln_error(None, e))?;
            Ok(precision)
        }
        PrecisionChoice::Auto if weights.is_file() => {
            let int8 = kiln::weights::stores_int8(weights).map_err(|e| kiln_error(None, e))?;
            Ok(if int8 {
                Precision::Int8
            } else {
                Precision::F32
            })
        }
        PrecisionChoice::Auto => Ok(Precision::F32),
    }
}

/// Resolves `backend=` against this machine's devices (`auto`: wgpu on a real GPU, else flex).
pub fn select(choice: BackendChoice) -> PyResult<Selection> {
    kiln::backend::select(choice).map_err(|e| kiln_error(None, e))
}

/// Evaluates `$body` with `$m` bound to the model inside `$value`, an enum with one variant per
/// backend (`Ndarray`, `Flex`, `Wgpu`): the body is compiled once per backend type.
macro_rules! on_backend {
    ($value:expr, $enum:ident, |$m:ident| $body:expr) => {
        match $value {
            $enum::Ndarray($m) => $body,
            $enum::Flex($m) => $body,
            $enum::Wgpu($m) => $body,
        }
    };
}
pub(crate) use on_backend;

/// `From` a model on each backend type into the matching variant of `$enum` (`Ndarray`, `Flex`,
/// `Wgpu`), so a loader written once for any `B` runs under `kiln::with_backend!` and wraps
/// its result with `.into()`.
macro_rules! per_backend_from {
    ($enum:ident, $model:ident) => {
        impl From<$model<kiln::backend::Cpu>> for $enum {
            fn from(model: $model<kiln::backend::Cpu>) -> Self {
                Self::Ndarray(model)
            }
        }
        impl From<$model<kiln::backend::Flex>> for $enum {
            fn from(model: $model<kiln::backend::Flex>) -> Self {
                Self::Flex(model)
            }
        }
        impl From<$model<kiln::backend::Gpu>> for $enum {
            fn from(model: $model<kiln::backend::Gpu>) -> Self {
                Self::Wgpu(model)
            }
        }
    };
}
pub(crate) use per_backend_from;
