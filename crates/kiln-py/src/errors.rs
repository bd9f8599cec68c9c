//! kiln's errors as Python exceptions of the right kind, and Rust panics caught before they
//! reach the interpreter.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kiln::KilnError;
use kiln_text::TextError;
use pyo3::exceptions::{
    PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::{PyErr, PyResult};

/// `FileNotFoundError` for a missing file, `OSError` for other I/O, `ValueError` for inputs of
/// the wrong shape or holding NaN/inf, `MemoryError` for a model or batch over the memory
/// budget, `RuntimeError` for the rest; `context` (e.g. "cannot load model X") leads the message.
pub fn kiln_error(context: Option<&str>, error: KilnError) -> PyErr {
    let message = match context {
        Some(context) => format!("{context}: {error}"),
        None => error.to_string(),
    };
    match &error {
        KilnError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        KilnError::Io { .. } => PyOSError::new_err(message),
        KilnError::Shape { .. } | KilnError::NonFinite { .. } => PyValueError::new_err(message),
        KilnError::TooLarge { .. } => PyMemoryError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// [`kiln_error`] for kiln-text's errors: a file missing from a model directory is
/// `FileNotFoundError`, bad input text or options `ValueError`.
pub fn text_error(context: Option<&str>, error: TextError) -> PyErr {
    let message = match context {
        Some(context) => format!("{context}: {error}"),
        None => error.to_string(),
    };
    match error {
        TextError::Kiln(inner) => kiln_error(context, inner),
        TextError::MissingFile { .. } => PyFileNotFoundError::new_err(message),
        TextError::Input(_) => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// Runs `work`, turning a panic into a `RuntimeError` that says what happened, instead of a
/// `PanicException` carrying only Rust's message.
pub fn catch_panics<T>(work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(PyRuntimeError::new_err(format!(
            "kiln failed with an internal error ({}); please report it with the input that caused it",
            panic_message(payload.as_ref())
        )))
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}
