//! `kiln.TransformerEncoder`: PyTorch's `nn.TransformerEncoder` loaded from an exported
//! directory, NumPy arrays in and out.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use kiln::backend::{Cpu, Flex, Gpu, Resolved};
use kiln::{EncoderInput, HostTensor, KeyPaddingMask, SrcMask, TransformerEncoder as RustEncoder};
use numpy::PyArrayDyn;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::arrays::{read_array, read_float_array, show_shape, to_numpy, HostArray};
use crate::backend::{
    on_backend, parse_backend, parse_precision, per_backend_from, resolve_precision, select,
};
use crate::errors::{catch_panics, kiln_error};
use crate::text::check_model_dir;

/// A loaded encoder and the device it lives on.
struct Placed<B: Backend> {
    model: RustEncoder<B>,
    device: B::Device,
}

/// The loaded encoder on the backend it runs on.
enum EncoderModel {
    Ndarray(Placed<Cpu>),
    Flex(Placed<Flex>),
    Wgpu(Placed<Gpu>),
}
per_backend_from!(EncoderModel, Placed);

/// The inputs of one forward pass, read from NumPy.
struct ForwardInputs {
    src: HostTensor,
    src_mask: Option<HostArray>,
    key_padding_mask: Option<HostArray>,
    is_causal: bool,
    need_weights: bool,
}

/// What one forward pass returns, on the host.
struct ForwardOutputs {
    output: HostTensor,
    /// `[L, B, H, S, S]`, when asked for.
    attentions: Option<HostTensor>,
}

/// PyTorch's ``torch.nn.TransformerEncoder`` (its semantics, defaults and ``state_dict``
/// names), loaded from a directory exported from PyTorch (``config.json`` +
/// ``model.safetensors``, see ``scripts/export_torch.py``). Build one with
/// :meth:`TransformerEncoder.from_dir`.
///
/// The model is loaded once and shared: calls from several Python threads run at the same
/// time (kiln releases the GIL while it computes).
///
/// Example:
///     >>> import numpy as np, kiln
///     >>> encoder = kiln.TransformerEncoder.from_dir("exported/")
///     >>> src = np.random.randn(10, 2, encoder.d_model).astype(np.float32)  # [S, B, E]
///     >>> encoder.forward(src, is_causal=True).shape
///     (10, 2, 64)
#[pyclass(module = "kiln", name = "TransformerEncoder", frozen)]
pub struct TransformerEncoder {
    model: EncoderModel,
    path: PathBuf,
    backend: Resolved,
}

fn load<B: Backend>(
    path: &std::path::Path,
    device: B::Device,
    precision: kiln::Precision,
) -> PyResult<Placed<B>> {
    let context = format!("cannot load encoder {}", path.display());
    let model = RustEncoder::<B>::from_dir(path, &device)
        .map_err(|e| kiln_error(Some(&context), e))?
        .with_precision(precision);
    Ok(Placed { model, device })
}

fn float_tensor<B: Backend, const D: usize>(t: HostTensor, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

/// One forward pass on backend `B`, as `kiln forward` runs it.
fn run<B: Backend>(placed: &Placed<B>, inputs: ForwardInputs) -> PyResult<ForwardOutputs> {
    let device = &placed.device;
    let src_mask: Option<SrcMask<B>> = match inputs.src_mask {
        None => None,
        Some(HostArray::Bool { shape, values }) => Some(
            SrcMask::from_bool_values(values, &shape, device).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "src_mask has shape {}, expected [S, S] or [B*nhead, S, S]",
                    show_shape(&shape)
                ))
            })?,
        ),
        Some(HostArray::Float(t)) if t.shape.len() == 2 => {
            Some(SrcMask::Float2(float_tensor::<B, 2>(t, device)))
        }
        Some(HostArray::Float(t)) => Some(SrcMask::Float3(float_tensor::<B, 3>(t, device))),
    };
    let key_padding_mask: Option<KeyPaddingMask<B>> =
        inputs.key_padding_mask.map(|mask| match mask {
            HostArray::Bool { shape, values } => {
                KeyPaddingMask::<B>::from_bool_values(values, [shape[0], shape[1]], device)
            }
            HostArray::Float(t) => KeyPaddingMask::Float(float_tensor::<B, 2>(t, device)),
        });
    let input = EncoderInput {
        src_mask,
        src_key_padding_mask: key_padding_mask,
        is_causal: inputs.is_causal,
        need_weights: inputs.need_weights,
        ..EncoderInput::new(float_tensor::<B, 3>(inputs.src, device))
    };
    let out = placed.model.run(input).map_err(|e| kiln_error(None, e))?;
    let attentions = match out.attentions {
        Some(layers) if !layers.is_empty() => {
            let first = layers[0].dims();
            if let Some(other) = layers.iter().find(|w| w.dims() != first) {
                return Err(PyValueError::new_err(format!(
                    "need_weights needs the same head count in every layer ({} vs {}); this model's heads were pruned",
                    show_shape(&first),
                    show_shape(&other.dims())
                )));
            }
            Some(HostTensor::from_tensor(Tensor::stack::<5>(layers, 0)))
        }
        _ => None,
    };
    Ok(ForwardOutputs {
        output: HostTensor::from_tensor(out.output),
        attentions,
    })
}

impl TransformerEncoder {
    fn config(&self) -> &kiln::TransformerEncoderConfig {
        on_backend!(&self.model, EncoderModel, |p| &p.model.config)
    }

    /// Checks ranks (before tensors of a fixed rank are built) and that `src` is finite, with
    /// errors naming the argument and its shape. The encoder checks the sizes themselves.
    fn check_inputs(&self, inputs: &ForwardInputs) -> PyResult<()> {
        let config = self.config();
        let layout = if config.batch_first {
            "[B, S, E] (this model is batch_first)"
        } else {
            "[S, B, E]"
        };
        if inputs.src.shape.len() != 3 {
            return Err(PyValueError::new_err(format!(
                "src has shape {}, expected 3 dimensions {layout} with E = d_model = {}",
                show_shape(&inputs.src.shape),
                config.d_model
            )));
        }
        if let Some(mask) = &inputs.src_mask {
            if !matches!(mask.shape().len(), 2 | 3) {
                return Err(PyValueError::new_err(format!(
                    "src_mask has shape {}, expected [S, S] or [B*nhead, S, S]",
                    show_shape(mask.shape())
                )));
            }
        }
        if let Some(mask) = &inputs.key_padding_mask {
            if mask.shape().len() != 2 {
                return Err(PyValueError::new_err(format!(
                    "src_key_padding_mask has shape {}, expected [B, S]",
                    show_shape(mask.shape())
                )));
            }
        }
        let nonfinite = inputs.src.data.iter().filter(|v| !v.is_finite()).count();
        if nonfinite > 0 && !kiln::weights::nonfinite_weights_allowed() {
            return Err(PyValueError::new_err(format!(
                "src contains {nonfinite} NaN/inf value(s)"
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl TransformerEncoder {
    /// Loads an encoder exported from PyTorch: ``config.json`` (``nn.TransformerEncoder``'s
    /// fields) and ``model.safetensors`` (its ``state_dict`` names).
    ///
    /// Args:
    ///     path: the directory.
    ///     backend: ``"auto"`` (wgpu on a real GPU, else flex), ``"wgpu"``, ``"ndarray"`` or
    ///         ``"flex"``.
    ///     precision: ``"auto"`` (int8 for the output of ``kiln quantize``, else f32),
    ///         ``"f32"``, ``"int8"`` or ``"bf16"``.
    ///
    /// Raises:
    ///     FileNotFoundError: ``path``, its ``config.json`` or ``model.safetensors`` is missing.
    ///     ValueError: an unknown ``backend`` or ``precision``.
    ///     RuntimeError: the files do not hold a valid model (the message names the key or
    ///         field).
    #[staticmethod]
    #[pyo3(signature = (path, backend = "auto", precision = "auto"))]
    fn from_dir(py: Python<'_>, path: PathBuf, backend: &str, precision: &str) -> PyResult<Self> {
        let choice = parse_backend(backend)?;
        let precision = parse_precision(precision)?;
        check_model_dir(&path)?;
        py.detach(|| {
            catch_panics(|| {
                let precision = resolve_precision(precision, &path.join("model.safetensors"))?;
                let selection = select(choice)?;
                let model: EncoderModel = kiln::with_backend!(selection.backend, |B, device| {
                    load::<B>(&path, device, precision)?.into()
                });
                Ok(Self {
                    model,
                    path: path.clone(),
                    backend: selection.backend,
                })
            })
        })
    }

    /// PyTorch's ``forward(src, mask, src_key_padding_mask, is_causal)``, the same pass as
    /// ``kiln forward``.
    ///
    /// Args:
    ///     src: float array ``[S, B, E]``, or ``[B, S, E]`` for a ``batch_first`` model
    ///         (float16/float64 are converted to float32).
    ///     src_mask: ``[S, S]`` or ``[B*nhead, S, S]``; bool (``True`` = may not attend) or
    ///         float (added to the attention scores).
    ///     src_key_padding_mask: ``[B, S]``; bool (``True`` = padding) or float (added).
    ///     is_causal: apply the causal mask (together with any ``src_mask``).
    ///     need_weights: also return every layer's per-head attention weights.
    ///
    /// Returns:
    ///     numpy.ndarray: float32, the shape of ``src``; with ``need_weights``, a tuple
    ///     ``(output, weights)`` with ``weights`` float32 ``[L, B, H, S, S]``.
    ///
    /// Raises:
    ///     ValueError: an input of the wrong shape (the message names it and both shapes), or
    ///         ``src`` holding NaN/inf.
    ///     TypeError: an input that is not a float (or, for masks, bool) array.
    #[pyo3(signature = (src, src_mask = None, src_key_padding_mask = None, is_causal = false, need_weights = false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        src: &Bound<'py, PyAny>,
        src_mask: Option<&Bound<'py, PyAny>>,
        src_key_padding_mask: Option<&Bound<'py, PyAny>>,
        is_causal: bool,
        need_weights: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = ForwardInputs {
            src: read_float_array("src", src)?,
            src_mask: src_mask.map(|m| read_array("src_mask", m)).transpose()?,
            key_padding_mask: src_key_padding_mask
                .map(|m| read_array("src_key_padding_mask", m))
                .transpose()?,
            is_causal,
            need_weights,
        };
        self.check_inputs(&inputs)?;
        let model = &self.model;
        let outputs = py.detach(|| {
            catch_panics(|| on_backend!(model, EncoderModel, |placed| run(placed, inputs)))
        })?;
        let output: Bound<'py, PyArrayDyn<f32>> =
            to_numpy(py, &outputs.output.shape, outputs.output.data)?;
        match outputs.attentions {
            Some(weights) if need_weights => {
                let weights = to_numpy(py, &weights.shape, weights.data)?;
                Ok(PyTuple::new(py, [output.into_any(), weights.into_any()])?.into_any())
            }
            None if need_weights => Err(PyRuntimeError::new_err(
                "the encoder returned no attention weights (a model without layers has none)",
            )),
            _ => Ok(output.into_any()),
        }
    }

    /// ``d_model``, the width of ``src``'s last dimension.
    #[getter]
    fn d_model(&self) -> usize {
        self.config().d_model
    }

    /// Attention heads per layer (of the first layer, for a model whose heads were pruned).
    #[getter]
    fn nhead(&self) -> usize {
        self.config().nhead
    }

    /// Number of layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.config().num_layers
    }

    /// Whether ``src`` is ``[B, S, E]`` (else ``[S, B, E]``).
    #[getter]
    fn batch_first(&self) -> bool {
        self.config().batch_first
    }

    /// The backend the model runs on: ``"wgpu"``, ``"ndarray"`` or ``"flex"``.
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The arithmetic of the Linear layers: ``"f32"``, ``"int8"`` or ``"bf16"``.
    #[getter]
    fn precision(&self) -> &'static str {
        on_backend!(&self.model, EncoderModel, |p| p.model.precision().name())
    }

    /// The model directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        let config = self.config();
        format!(
            "TransformerEncoder.from_dir({:?}, backend={:?}) (d_model={}, nhead={}, num_layers={}, batch_first={})",
            self.path.display().to_string(),
            self.backend.name(),
            config.d_model,
            config.nhead,
            config.num_layers,
            if config.batch_first { "True" } else { "False" }
        )
    }
}
