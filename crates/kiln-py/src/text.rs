//! `kiln.TextEncoder`: a sentence-transformers directory, text in, embeddings out.

use std::path::{Path, PathBuf};

use kiln::backend::{Cpu, Flex, Gpu, Resolved};
use kiln_text::{cosine, EmbedOptions, TextEncoder as RustTextEncoder};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyNotADirectoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};

use crate::backend::{
    on_backend, parse_backend, parse_precision, per_backend_from, resolve_precision, select,
};
use crate::errors::{catch_panics, text_error};

/// The loaded model on the backend it runs on.
enum TextModel {
    Ndarray(RustTextEncoder<Cpu>),
    Flex(RustTextEncoder<Flex>),
    Wgpu(RustTextEncoder<Gpu>),
}
per_backend_from!(TextModel, RustTextEncoder);

/// A pretrained sentence encoder (a Hugging Face / sentence-transformers directory such as
/// all-MiniLM-L6-v2), equal to sentence-transformers' ``SentenceTransformer.encode``.
///
/// Args:
///     path: the model directory (``config.json``, ``model.safetensors``, ``tokenizer.json``,
///         and when present ``modules.json``, ``1_Pooling/config.json``,
///         ``sentence_bert_config.json``).
///     backend: ``"auto"`` (wgpu on a real GPU, else flex), ``"wgpu"``, ``"ndarray"`` or
///         ``"flex"`` (kiln's fastest CPU backend).
///     precision: arithmetic of the Linear layers: ``"f32"`` (sentence-transformers' numbers),
///         ``"int8"``, ``"bf16"`` (CPUs with AVX-512 BF16), or ``"auto"`` (int8 for the output of
///         ``kiln quantize``, else f32).
///
/// Raises:
///     FileNotFoundError: ``path`` or a file the model needs does not exist.
///     ValueError: an unknown ``backend`` or ``precision``.
///     RuntimeError: the model cannot be loaded (the message says why).
///
/// The model is loaded once and shared: calls from several Python threads run at the same
/// time (kiln releases the GIL while it computes).
///
/// Example:
///     >>> import kiln
///     >>> encoder = kiln.TextEncoder(".cache/models/all-MiniLM-L6-v2")
///     >>> encoder.embed(["A man is eating food.", "Someone is having a meal."]).shape
///     (2, 384)
#[pyclass(module = "kiln", name = "TextEncoder", frozen)]
pub struct TextEncoder {
    model: TextModel,
    path: PathBuf,
    backend: Resolved,
}

/// Checks that `path` is a directory before anything is loaded, with the exception Python uses.
pub fn check_model_dir(path: &Path) -> PyResult<()> {
    if !path.exists() {
        return Err(PyFileNotFoundError::new_err(format!(
            "{}: no such model directory",
            path.display()
        )));
    }
    if !path.is_dir() {
        return Err(PyNotADirectoryError::new_err(format!(
            "{}: not a directory (a model is a directory holding config.json, model.safetensors, ...)",
            path.display()
        )));
    }
    Ok(())
}

fn load<B: burn::tensor::backend::Backend>(
    path: &Path,
    device: &B::Device,
    precision: kiln::Precision,
) -> PyResult<RustTextEncoder<B>> {
    let context = format!("cannot load text model {}", path.display());
    let encoder =
        RustTextEncoder::<B>::from_dir(path, device).map_err(|e| text_error(Some(&context), e))?;
    Ok(encoder.with_precision(precision))
}

/// `texts`: a sequence of `str` (a lone `str` is refused: it would be read as its characters).
fn extract_texts(name: &str, texts: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if texts.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a list of str, not a single str (wrap it: [text])"
        )));
    }
    texts
        .extract::<Vec<String>>()
        .map_err(|e| PyTypeError::new_err(format!("{name} must be a list of str ({e})")))
}

fn check_batch_size(batch_size: i64) -> PyResult<usize> {
    if batch_size < 1 {
        return Err(PyValueError::new_err(format!(
            "batch_size must be at least 1, not {batch_size}"
        )));
    }
    Ok(batch_size as usize)
}

impl TextEncoder {
    /// Embeds `texts` with the GIL released: one row per text, in input order.
    fn embed_rows(
        &self,
        py: Python<'_>,
        texts: &[String],
        batch_size: usize,
        normalize: Option<bool>,
    ) -> PyResult<Vec<Vec<f32>>> {
        let model = &self.model;
        py.detach(|| {
            catch_panics(|| {
                on_backend!(model, TextModel, |m| {
                    let options = EmbedOptions {
                        batch_size,
                        normalize: normalize.unwrap_or(m.pipeline.normalize),
                    };
                    m.embed_with(texts, options, |_| {})
                        .map_err(|e| text_error(None, e))
                })
            })
        })
    }

    fn dim_of(&self) -> usize {
        on_backend!(&self.model, TextModel, |m| m.dim())
    }
}

#[pymethods]
impl TextEncoder {
    #[new]
    #[pyo3(signature = (path, backend = "auto", precision = "f32"))]
    fn new(py: Python<'_>, path: PathBuf, backend: &str, precision: &str) -> PyResult<Self> {
        let choice = parse_backend(backend)?;
        let precision = parse_precision(precision)?;
        check_model_dir(&path)?;
        py.detach(|| {
            catch_panics(|| {
                let precision = resolve_precision(precision, &path.join("model.safetensors"))?;
                let selection = select(choice)?;
                let model: TextModel = kiln::with_backend!(selection.backend, |B, device| {
                    load::<B>(&path, &device, precision)?.into()
                });
                Ok(Self {
                    model,
                    path: path.clone(),
                    backend: selection.backend,
                })
            })
        })
    }

    /// Sentence embeddings of ``texts``.
    ///
    /// Args:
    ///     texts: a list of str.
    ///     batch_size: texts per forward pass (texts are sorted by length first, so little
    ///         padding is computed; the embeddings do not depend on it beyond float rounding).
    ///     normalize: scale each embedding to unit length; ``None`` follows the model
    ///         (``modules.json`` with a ``Normalize`` module).
    ///
    /// Returns:
    ///     numpy.ndarray: float32 ``[len(texts), dim]``, rows in input order.
    ///
    /// Raises:
    ///     TypeError: ``texts`` is not a list of str.
    ///     ValueError: ``batch_size`` is below 1.
    #[pyo3(signature = (texts, batch_size = 32, normalize = None))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: i64,
        normalize: Option<bool>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let texts = extract_texts("texts", texts)?;
        let batch_size = check_batch_size(batch_size)?;
        let dim = self.dim_of();
        let rows = if texts.is_empty() {
            Vec::new()
        } else {
            self.embed_rows(py, &texts, batch_size, normalize)?
        };
        let flat: Vec<f32> = rows.concat();
        let matrix = Array2::from_shape_vec((texts.len(), dim), flat).map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "kiln returned embeddings of the wrong size: {e}"
            ))
        })?;
        Ok(matrix.into_pyarray(py))
    }

    /// Cosine similarity of embeddings.
    ///
    /// Args:
    ///     a: a str, or a list of str.
    ///     b: a str (when ``a`` is one), or a list of str.
    ///
    /// Returns:
    ///     float for two str; for two lists, numpy.ndarray float32 ``[len(a), len(b)]`` with
    ///     ``[i, j]`` the similarity of ``a[i]`` and ``b[j]``.
    fn similarity<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'py, PyAny>,
        b: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let single = (
            a.is_instance_of::<PyString>(),
            b.is_instance_of::<PyString>(),
        );
        match single {
            (true, true) => {
                let texts = vec![a.extract::<String>()?, b.extract::<String>()?];
                let rows = self.embed_rows(py, &texts, kiln_text::DEFAULT_BATCH_SIZE, None)?;
                let value = cosine(&rows[0], &rows[1]);
                Ok(PyFloat::new(py, f64::from(value)).into_any())
            }
            (false, false) => {
                let a = extract_texts("a", a)?;
                let b = extract_texts("b", b)?;
                let mut texts = a.clone();
                texts.extend(b.iter().cloned());
                let rows = if texts.is_empty() {
                    Vec::new()
                } else {
                    self.embed_rows(py, &texts, kiln_text::DEFAULT_BATCH_SIZE, None)?
                };
                let (left, right) = rows.split_at(a.len());
                let values: Vec<f32> = left
                    .iter()
                    .flat_map(|x| right.iter().map(move |y| cosine(x, y)))
                    .collect();
                let matrix = Array2::from_shape_vec((a.len(), b.len()), values).map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "similarity matrix of the wrong size: {e}"
                    ))
                })?;
                Ok(matrix.into_pyarray(py).into_any())
            }
            _ => Err(PyTypeError::new_err(
                "similarity takes two str or two lists of str, not one of each",
            )),
        }
    }

    /// Tokenizes ``texts`` as the model sees them (lowercased when the model says so,
    /// truncated to ``max_seq_length``, with ``[CLS]`` and ``[SEP]``).
    ///
    /// Returns:
    ///     list[dict]: per text, ``{"ids": list[int], "type_ids": list[int],
    ///     "tokens": list[str]}``.
    fn tokenize<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let texts = extract_texts("texts", texts)?;
        let tokenized = on_backend!(&self.model, TextModel, |m| m.tokenize(&texts))
            .map_err(|e| text_error(None, e))?;
        let out = PyList::empty(py);
        for text in tokenized {
            let entry = PyDict::new(py);
            entry.set_item("ids", text.ids)?;
            entry.set_item("type_ids", text.type_ids)?;
            entry.set_item("tokens", text.tokens)?;
            out.append(entry)?;
        }
        Ok(out)
    }

    /// Length of an embedding.
    #[getter]
    fn dim(&self) -> usize {
        self.dim_of()
    }

    /// Texts are truncated to this many tokens (special tokens included).
    #[getter]
    fn max_seq_length(&self) -> usize {
        on_backend!(&self.model, TextModel, |m| m.max_seq_length())
    }

    /// Whether embeddings are scaled to unit length by default (the model's ``modules.json``).
    #[getter]
    fn normalize(&self) -> bool {
        on_backend!(&self.model, TextModel, |m| m.pipeline.normalize)
    }

    /// The backend the model runs on: ``"wgpu"``, ``"ndarray"`` or ``"flex"``.
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The arithmetic of the Linear layers: ``"f32"``, ``"int8"`` or ``"bf16"``.
    #[getter]
    fn precision(&self) -> &'static str {
        on_backend!(&self.model, TextModel, |m| m.precision().name())
    }

    /// The model directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "TextEncoder({:?}, backend={:?}, precision={:?}, dim={})",
            self.path.display().to_string(),
            self.backend.name(),
            self.precision(),
            self.dim_of()
        )
    }
}
