//! NumPy arrays in and out. An input is read straight from its buffer into the one host copy a
//! burn tensor is built from (a float32 C-contiguous array is copied once, with `memcpy`; other
//! float dtypes are converted by NumPy first); outputs move their buffer into NumPy, uncopied.

use kiln::HostTensor;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

/// An input array on the host, in the element kind it was given in.
pub enum HostArray {
    /// Floats (float16/32/64 given), as f32.
    Float(HostTensor),
    /// Booleans, row-major.
    Bool {
        /// The array's shape.
        shape: Vec<usize>,
        /// The values.
        values: Vec<bool>,
    },
}

impl HostArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::Float(t) => &t.shape,
            Self::Bool { shape, .. } => shape,
        }
    }
}

/// `shape` as Python writes it: `(2, 3)`.
pub fn show_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads argument `name`, a NumPy array or anything `numpy.asarray` accepts, as floats or
/// booleans; any other dtype is a `TypeError` naming the argument.
pub fn read_array(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<HostArray> {
    let py = obj.py();
    let array: Bound<'_, PyUntypedArray> = match obj.cast::<PyUntypedArray>() {
        Ok(array) => array.clone(),
        Err(_) => py
            .import("numpy")?
            .call_method1("asarray", (obj,))
            .and_then(|converted| Ok(converted.cast_into::<PyUntypedArray>()?))
            .map_err(|e| {
                PyTypeError::new_err(format!("{name} must be a NumPy array or array-like ({e})"))
            })?,
    };
    let dtype = array.dtype();
    match dtype.kind() {
        b'b' => {
            let typed = array.cast::<PyArrayDyn<bool>>()?;
            let readonly = typed.try_readonly()?;
            let shape = readonly.shape().to_vec();
            let values: Vec<bool> = readonly.as_array().iter().copied().collect();
            Ok(HostArray::Bool { shape, values })
        }
        b'f' => {
            let typed: Bound<'_, PyArrayDyn<f32>> = match array.cast::<PyArrayDyn<f32>>() {
                Ok(typed) => typed.clone(),
                Err(_) => array
                    .call_method1("astype", ("float32",))?
                    .cast_into::<PyArrayDyn<f32>>()?,
            };
            let readonly = typed.try_readonly()?;
            let shape = readonly.shape().to_vec();
            let contiguous = readonly.is_c_contiguous();
            let data: Vec<f32> = match readonly.as_slice() {
                Ok(slice) if contiguous => slice.to_vec(),
                _ => readonly.as_array().iter().copied().collect(),
            };
            Ok(HostArray::Float(HostTensor::new(shape, data)))
        }
        _ => Err(PyTypeError::new_err(format!(
            "{name} has dtype {dtype}, expected a float or bool array"
        ))),
    }
}

/// Reads argument `name` as floats: a bool array is a `TypeError`.
pub fn read_float_array(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<HostTensor> {
    match read_array(name, obj)? {
        HostArray::Float(t) => Ok(t),
        HostArray::Bool { .. } => Err(PyTypeError::new_err(format!(
            "{name} has dtype bool, expected a float array"
        ))),
    }
}

/// A float32 NumPy array of `shape` owning `data` (moved, not copied).
pub fn to_numpy<'py>(
    py: Python<'py>,
    shape: &[usize],
    data: Vec<f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let array = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| {
        PyRuntimeError::new_err(format!(
            "kiln returned {} values of the wrong shape: {e}",
            show_shape(shape)
        ))
    })?;
    Ok(array.into_pyarray(py))
}
