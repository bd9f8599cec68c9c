//! Layer-wise reconstruction after structured pruning: refit each layer's `out_proj` and
//! `linear2` by least squares so the pruned layer reproduces the original one, with no
//! gradient steps (Kwon et al. 2022, "A Fast Post-Training Pruning Framework for Transformers",
//! mask tuning).
//!
//! Removing heads and neurons deletes inputs of `out_proj` and `linear2`; the weights that remain
//! were trained alongside the removed ones and no longer add up to the same output. For each
//! layer in order, and in it first the attention block, then the feed-forward block, the
//! pruned model's block input `x` (the kept heads' contexts, or the kept neurons' activations)
//! and residual `r` are captured on calibration data, together with the original model's
//! pre-LayerNorm sum `t = r_orig + W_orig x_orig + b_orig`, and
//!
//! ```text
//! W, b = argmin  Σ_tokens ‖r + W x + b - t‖²  +  λ · mean(diag XᵀX) · ‖W‖²
//! ```
//!
//! is solved in closed form (normal equations, Cholesky, f64). Fitting to the original model's
//! sums with the pruned model's own inputs also corrects the error that earlier layers pass on.
//! Padding tokens are left out. Each layer's inputs (original and pruned) are kept per batch
//! between layers, so the whole refit costs four one-layer passes per layer over the data.

use burn::module::{Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{EncoderOutput, HostTensor, TransformerEncoder};
use nalgebra::DMatrix;

use crate::calibration_batch::{capture, token_mask, with_bias_column, CalibrationBatch};
use crate::error::{CompressError, Result};
use crate::unstructured::LinearKind;
use kiln::layout::to_batch_first as batch_first;

/// Options of [`reconstruct`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconstructConfig {
    /// Ridge factor `λ`, relative to the mean diagonal of `XᵀX` (keeps the system well posed
    /// when calibration tokens are few or features collinear).
    pub ridge: f64,
}

impl Default for ReconstructConfig {
    fn default() -> Self {
        Self { ridge: 1e-3 }
    }
}

/// The refit weights of one Linear layer, in burn's `[in, out]` layout.
#[derive(Debug, Clone)]
pub struct LinearFit {
    /// Layer index.
    pub layer: usize,
    /// `OutProj` or `Linear2`.
    pub kind: LinearKind,
    /// `[in, out]`.
    pub weight: HostTensor,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<HostTensor>,
    /// Mean squared error of the block's pre-LayerNorm sum against the original's, before the
    /// fit and after it (on the calibration tokens).
    pub mse: [f64; 2],
}

impl LinearFit {
    /// Writes the fit into `encoder` (new parameters; trainable if the old ones were).
    pub fn apply<B: Backend>(&self, encoder: &mut TransformerEncoder<B>) -> Result<()> {
        let layer = encoder.layers.get_mut(self.layer).ok_or_else(|| {
            CompressError::Invalid(format!("fit for layer {} of a smaller model", self.layer))
        })?;
        let linear = match self.kind {
            LinearKind::OutProj => &mut layer.self_attn.out_proj,
            LinearKind::Linear2 => &mut layer.linear2,
            other => {
                return Err(CompressError::Invalid(format!(
                    "reconstruction refits out_proj and linear2, not {}",
                    other.torch_name()
                )))
            }
        };
        let dims = linear.weight.dims();
        if self.weight.shape != dims {
            return Err(CompressError::Invalid(format!(
                "layers.{}.{}: fit of shape {:?} for a weight of {dims:?}",
                self.layer,
                self.kind.torch_name(),
                self.weight.shape
            )));
        }
        let device = linear.weight.device();
        let trainable = linear.weight.val().is_require_grad();
        linear.weight = new_param(self.weight.to_tensor(&device), trainable);
        if let (Some(bias), Some(fit)) = (linear.bias.as_mut(), &self.bias) {
            *bias = new_param(fit.to_tensor(&device), trainable);
        }
        Ok(())
    }
}

/// A fresh parameter holding `value`, a trainable leaf if asked.
fn new_param<B: Backend, const D: usize>(
    value: Tensor<B, D>,
    trainable: bool,
) -> Param<Tensor<B, D>> {
    let value = if trainable {
        value.require_grad()
    } else {
        value
    };
    Param::initialized(ParamId::new(), value)
}

/// `XᵀX`, `XᵀY` and their sums, accumulated in f64 over batches of tokens.
struct NormalEquations {
    inputs: usize,
    outputs: usize,
    /// `[k+1, k+1]` with the bias column last.
    xtx: Vec<f64>,
    /// `[k+1, E]`.
    xty: Vec<f64>,
    /// `Σ‖y‖²`.
    yty: f64,
    /// Real tokens added.
    tokens: usize,
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    HostTensor::from_tensor(t).data
}

impl NormalEquations {
    fn new(inputs: usize, outputs: usize) -> Self {
        Self {
            inputs,
            outputs,
            xtx: vec![0.0; (inputs + 1) * (inputs + 1)],
            xty: vec![0.0; (inputs + 1) * outputs],
            yty: 0.0,
            tokens: 0,
        }
    }

    /// Adds rows `x` `[N, k]`, `y` `[N, E]`; `keep` `[N, 1]` is 1 on real tokens, 0 on padding.
    fn add<B: Backend>(
        &mut self,
        x: Tensor<B, 2>,
        y: Tensor<B, 2>,
        keep: Tensor<B, 2>,
        real: usize,
    ) {
        let x = with_bias_column(x, &keep); // [N, k + 1]
        let y = y * keep;
        self.yty += f64::from(host(y.clone().powi_scalar(2).sum())[0]);
        let xt = x.clone().transpose();
        let xtx = host(xt.clone().matmul(x));
        let xty = host(xt.matmul(y));
        for (acc, v) in self.xtx.iter_mut().zip(xtx) {
            *acc += f64::from(v);
        }
        for (acc, v) in self.xty.iter_mut().zip(xty) {
            *acc += f64::from(v);
        }
        self.tokens += real;
    }

    /// Solves the ridge system; returns the solution `[k+1, E]` (bias row last, or `[k, E]`
    /// without bias) and the summed squared error it leaves on the data.
    fn solve(&self, ridge: f64, with_bias: bool) -> Result<(DMatrix<f64>, f64)> {
        let k = self.inputs;
        let n = if with_bias { k + 1 } else { k };
        let full = k + 1;
        let xtx = DMatrix::<f64>::from_fn(n, n, |i, j| self.xtx[i * full + j]);
        let b = DMatrix::<f64>::from_fn(n, self.outputs, |i, j| self.xty[i * self.outputs + j]);
        let mut a = xtx.clone();
        let mean_diag = (0..k).map(|i| self.xtx[i * full + i]).sum::<f64>() / k.max(1) as f64;
        let lambda = ridge * mean_diag.max(f64::MIN_POSITIVE);
        for i in 0..k {
            a[(i, i)] += lambda;
        }
        let cholesky = a.cholesky().ok_or_else(|| {
            CompressError::Invalid(
                "reconstruction: the calibration activations are degenerate (too few tokens?); \
                 use more data or a larger ridge"
                    .into(),
            )
        })?;
        let w = cholesky.solve(&b);
        // Σ‖y - X w‖² = Σ‖y‖² - 2 tr(wᵀ XᵀY) + tr(wᵀ XᵀX w)
        let error =
            self.yty - 2.0 * w.component_mul(&b).sum() + (w.transpose() * &xtx * &w).trace();
        Ok((w, error.max(0.0)))
    }
}

/// For block `kind` of a one-layer encoder ([`single_layer`]) run on `input` by [`capture`]:
/// the input of the block's last Linear (`[B, S, k]`) and the residual it is added to
/// (`[B, S, E]`), both batch-first.
fn block_io<B: Backend>(
    single: &TransformerEncoder<B>,
    out: &EncoderOutput<B>,
    input: &CalibrationBatch<B>,
    kind: LinearKind,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let captured = &out.linear_inputs.as_ref().expect("asked for")[0];
    let l = &single.layers[0];
    let layer_input = || batch_first(input.src.clone(), single.config.batch_first);
    match (kind, l.norm_first) {
        // x = x + sa(norm1(x)): the residual is the layer input.
        (LinearKind::OutProj, true) => (captured.out_proj.clone(), layer_input()),
        // x = norm1(x + sa(x)): the residual is the attention input.
        (LinearKind::OutProj, false) => (captured.out_proj.clone(), captured.in_proj.clone()),
        // x = x + ff(norm2(x)) with x = input + sa(norm1(input)).
        (_, true) => (
            captured.linear2.clone(),
            layer_input() + l.self_attn.out_proj.forward(captured.out_proj.clone()),
        ),
        // x = norm2(x + ff(x)): the residual is the feed-forward input.
        (_, false) => (captured.linear2.clone(), captured.linear1.clone()),
    }
}

/// Layer `layer` of `encoder` alone (no final norm): a forward pass through one layer, fed the
/// previous layer's output.
fn single_layer<B: Backend>(
    encoder: &TransformerEncoder<B>,
    layer: usize,
) -> TransformerEncoder<B> {
    TransformerEncoder {
        layers: vec![encoder.layers[layer].clone()],
        norm: None,
        config: encoder.config.clone(),
        execution: encoder.execution,
    }
}

/// `batch` with `src` replaced by a layer's input (same lengths).
fn with_src<B: Backend>(batch: &CalibrationBatch<B>, src: Tensor<B, 3>) -> CalibrationBatch<B> {
    CalibrationBatch {
        src,
        lengths: batch.lengths.clone(),
    }
}

/// The output of a one-layer `capture` (the next layer's input, in the model's layout).
fn layer_output<B: Backend>(out: &EncoderOutput<B>) -> Tensor<B, 3> {
    out.hidden_states.as_ref().expect("asked for")[0].clone()
}

/// The Linear that ends block `kind` of `layer`: `out_proj` or `linear2`.
fn block_linear<B: Backend>(
    encoder: &TransformerEncoder<B>,
    layer: usize,
    kind: LinearKind,
) -> burn::nn::Linear<B> {
    match kind {
        LinearKind::OutProj => encoder.layers[layer].self_attn.out_proj.clone(),
        _ => encoder.layers[layer].linear2.clone(),
    }
}

/// Refits `student`'s `out_proj` and `linear2` in every layer, in order, so that each block
/// reproduces `teacher`'s pre-LayerNorm sums on `batches` (see the module docs). `student`
/// must be `teacher` with heads and/or neurons removed (same layers, same model width).
/// Calls `progress(done, total)` after each of the `2 * layers` fits. Returns the refit model
/// and the fits (to write into another copy, e.g. an autodiff one, with [`LinearFit::apply`]).
pub fn reconstruct<B: Backend>(
    teacher: &TransformerEncoder<B>,
    mut student: TransformerEncoder<B>,
    batches: &[CalibrationBatch<B>],
    config: &ReconstructConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<(TransformerEncoder<B>, Vec<LinearFit>)> {
    if teacher.layers.len() != student.layers.len()
        || teacher.config.d_model != student.config.d_model
    {
        return Err(CompressError::Invalid(
            "reconstruction needs the pruned model of the same original (same layers and width)"
                .into(),
        ));
    }
    if batches.is_empty() {
        return Err(CompressError::Invalid(
            "reconstruction needs calibration data".into(),
        ));
    }
    let total = 2 * student.layers.len();
    let mut fits = Vec::with_capacity(total);
    let blocks = [LinearKind::OutProj, LinearKind::Linear2];
    // Per batch, the input of the current layer in the original and in the pruned model (the
    // model's layout): each layer runs once per pass instead of every pass re-running all the
    // layers before it.
    let mut teacher_inputs: Vec<CalibrationBatch<B>> = batches.to_vec();
    let mut student_inputs: Vec<CalibrationBatch<B>> = batches.to_vec();
    for layer in 0..student.layers.len() {
        // The original model's pre-LayerNorm sums of both blocks of this layer, per batch.
        let teacher_layer = single_layer(teacher, layer);
        let mut targets: Vec<[Tensor<B, 3>; 2]> = Vec::with_capacity(batches.len());
        for input in teacher_inputs.iter_mut() {
            let out = capture(&teacher_layer, input)?;
            targets.push(blocks.map(|kind| {
                let (x, residual) = block_io(&teacher_layer, &out, input, kind);
                residual + block_linear(&teacher_layer, 0, kind).forward(x)
            }));
            *input = with_src(input, layer_output(&out));
        }
        for (block, kind) in blocks.into_iter().enumerate() {
            let student_layer = single_layer(&student, layer);
            let student_linear = block_linear(&student, layer, kind);
            let [k, e] = student_linear.weight.dims();
            let with_bias = student_linear.bias.is_some();
            let mut equations = NormalEquations::new(k, e);
            let mut squared_error_before = 0.0f64;
            for (input, target) in student_inputs.iter().zip(&targets) {
                let out = capture(&student_layer, input)?;
                let (x, residual) = block_io(&student_layer, &out, input, kind);
                let dims = x.dims();
                let rows = dims[0] * dims[1];
                let (keep, real) =
                    token_mask::<B>(input.lengths.as_deref(), dims[0], dims[1], &x.device());
                let keep = keep.reshape([rows, 1]);
                // y: what `W x + b` must add to the pruned model's residual.
                let y = (target[block].clone() - residual).reshape([rows, e]);
                let before = y.clone() - student_linear.forward(x.clone()).reshape([rows, e]);
                squared_error_before +=
                    f64::from(host((before * keep.clone()).powi_scalar(2).sum())[0]);
                equations.add(x.reshape([rows, k]), y, keep, real);
            }
            let (solution, squared_error_after) = equations.solve(config.ridge, with_bias)?;
            let weight: Vec<f32> = (0..k)
                .flat_map(|i| (0..e).map(move |j| (i, j)))
                .map(|(i, j)| solution[(i, j)] as f32)
                .collect();
            let bias = with_bias.then(|| {
                HostTensor::new(vec![e], (0..e).map(|j| solution[(k, j)] as f32).collect())
            });
            let per_value = (equations.tokens.max(1) * e) as f64;
            let fit = LinearFit {
                layer,
                kind,
                weight: HostTensor::new(vec![k, e], weight),
                bias,
                mse: [
                    squared_error_before / per_value,
                    squared_error_after / per_value,
                ],
            };
            fit.apply(&mut student)?;
            tracing::debug!(
                layer,
                kind = kind.torch_name(),
                mse_before = fit.mse[0],
                mse_after = fit.mse[1],
                "reconstructed"
            );
            fits.push(fit);
            progress(fits.len(), total);
        }
        // The refit layer's output: the next layer's input in the pruned model.
        if layer + 1 < student.layers.len() {
            let student_layer = single_layer(&student, layer);
            for input in student_inputs.iter_mut() {
                let out = capture(&student_layer, input)?;
                *input = with_src(input, layer_output(&out));
            }
        }
    }
    Ok((student, fits))
}
