//! `TransformerEncoder`: a stack of layers and an optional final LayerNorm.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::config::{LayerInit, TransformerEncoderConfig};
use crate::error::{KilnError, Result};
use crate::layer::{LinearInputs, TransformerEncoderLayer};
use crate::mask::{
    check_mask_shapes, AttentionBias, AttentionKernel, AttentionPath, KeyPaddingMask, SrcMask,
};
use crate::split::{assign, join_outputs, slice_input, BatchSplit};

/// A stack of [`TransformerEncoderLayer`]s, the counterpart of `torch.nn.TransformerEncoder`
/// (`layers.{i}.*` and `norm.*` in its `state_dict`).
#[derive(Module, Debug)]
pub struct TransformerEncoder<B: Backend> {
    /// The layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// PyTorch's `norm=`: a LayerNorm after the last layer.
    pub norm: Option<LayerNorm<B>>,
    /// The configuration the model was built from (kept in sync by loaders and pruners).
    pub config: TransformerEncoderConfig,
}

impl TransformerEncoderConfig {
    /// A new encoder. Each layer is initialised as PyTorch initialises one; with
    /// [`LayerInit::Cloned`] all layers start from layer 0's weights, as PyTorch's deep copy does.
    ///
    /// Panics if the config is invalid; [`Self::try_init`] returns the error instead.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerEncoder<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A new encoder, or the reason the config is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<TransformerEncoder<B>> {
        // burn initialises parameters lazily, on first use; a clone taken before that would draw
        // its own values. Draw them now, so clones and saves see the same weights.
        Ok(self.build(device)?.map(&mut Materialize))
    }

    /// An encoder of this shape with every parameter zero, drawing no random numbers: the
    /// skeleton that weights are loaded into (drawing PyTorch's init for ~10^7 values only to
    /// overwrite them costs seconds).
    pub fn try_init_zeroed<B: Backend>(&self, device: &B::Device) -> Result<TransformerEncoder<B>> {
        Ok(self.build(device)?.map(&mut ZeroFill))
    }

    fn build<B: Backend>(&self, device: &B::Device) -> Result<TransformerEncoder<B>> {
        self.validate()?;
        let layers = match self.layer_init {
            LayerInit::Independent => (0..self.num_layers)
                .map(|i| self.layer_config(i).init(device))
                .collect(),
            LayerInit::Cloned => {
                if self.layer_heads.is_some() || self.layer_dim_feedforward.is_some() {
                    return Err(KilnError::Config(
                        "layer_init = cloned needs every layer to have the same shape".into(),
                    ));
                }
                let first = self.layer_config(0).init::<B>(device).map(&mut Materialize);
                (0..self.num_layers)
                    .map(|_| first.clone().map(&mut FreshParamIds))
                    .collect()
            }
        };
        let norm = self.final_norm.then(|| {
            LayerNormConfig::new(self.d_model)
                .with_epsilon(self.final_norm_eps.unwrap_or(self.layer_norm_eps))
                .with_bias(self.final_norm_bias)
                .init(device)
        });
        let model = TransformerEncoder {
            layers,
            norm,
            config: self.clone(),
        };
        Ok(model)
    }
}

/// Replaces every parameter by zeros of its shape without running its (lazy) initialiser.
/// The zeros are trainable (`require_grad`) on autodiff backends, as freshly built parameters are.
pub struct ZeroFill;

impl<B: Backend> ModuleMapper<B> for ZeroFill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let shape = param.lazy_shape();
        let device = param.lazy_device();
        Param::initialized(param.id, Tensor::zeros(shape, &device).require_grad())
    }
}

/// Forces lazily initialised parameters to take their values, keeping their identities.
struct Materialize;

impl<B: Backend> ModuleMapper<B> for Materialize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let tensor = param.val();
        Param::initialized(param.id, tensor)
    }
}

/// Gives every parameter a new identity, so deep copies train as separate parameters.
struct FreshParamIds;

impl<B: Backend> ModuleMapper<B> for FreshParamIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let tensor = param.val();
        Param::initialized(ParamId::new(), tensor)
    }
}

/// The inputs of one forward pass, with PyTorch's argument names.
#[derive(Debug, Clone)]
pub struct EncoderInput<B: Backend> {
    /// `[B, S, E]` if `batch_first`, else `[S, B, E]`.
    pub src: Tensor<B, 3>,
    /// `[S, S]` or `[B * nhead, S, S]`, bool (`true` = masked) or float (added).
    pub src_mask: Option<SrcMask<B>>,
    /// `[B, S]`, `true` = padding.
    pub src_key_padding_mask: Option<KeyPaddingMask<B>>,
    /// Apply the causal mask.
    pub is_causal: bool,
    /// Return each layer's per-head attention weights.
    pub need_weights: bool,
    /// Return each layer's output (before the final norm).
    pub output_hidden_states: bool,
    /// Fail with [`KilnError::NonFinite`] if `src` holds NaN or inf (costs a device sync).
    pub check_finite: bool,
    /// Skip the padding: when the only mask is a bool `src_key_padding_mask` that pads at the
    /// end of each sequence (and no weights are asked for), the real tokens are packed end to
    /// end and attention runs per sequence, as PyTorch's nested tensors do. Real tokens get the
    /// same outputs; padded positions get zeros (as in PyTorch's fast path) instead of values
    /// computed from padding. Costs one read of the mask from the device. Not while training
    /// with dropout (attention dropout runs on the padded path).
    pub pack_padding: bool,
    /// Return the inputs of every layer's Linear layers ([`LinearInputs`], batch-first,
    /// padding included); padding is then never packed.
    pub output_linear_inputs: bool,
    /// How attention is computed when its weights are not needed (default
    /// [`AttentionKernel::Auto`]: matmuls on views on burn-flex, burn's fused op elsewhere).
    pub attention_kernel: AttentionKernel,
    /// Whether slices of the batch run on separate CPU threads (default [`BatchSplit::Auto`]:
    /// one slice per thread on the CPU backends outside autodiff, no split on GPUs). Outputs
    /// are the same either way (to float rounding of differently blocked matmuls).
    pub batch_split: BatchSplit,
}

impl<B: Backend> EncoderInput<B> {
    /// Input `src` with no masks.
    pub fn new(src: Tensor<B, 3>) -> Self {
        Self {
            src,
            src_mask: None,
            src_key_padding_mask: None,
            is_causal: false,
            need_weights: false,
            output_hidden_states: false,
            check_finite: false,
            pack_padding: false,
            output_linear_inputs: false,
            attention_kernel: AttentionKernel::Auto,
            batch_split: BatchSplit::Auto,
        }
    }
    /// Chooses whether slices of the batch run on separate threads (see [`BatchSplit`]).
    pub fn batch_split(mut self, split: BatchSplit) -> Self {
        self.batch_split = split;
        self
    }
    /// Chooses how attention is computed (see [`AttentionKernel`]).
    pub fn attention_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.attention_kernel = kernel;
        self
    }
    /// Asks for the inputs of every layer's Linear layers.
    pub fn output_linear_inputs(mut self, yes: bool) -> Self {
        self.output_linear_inputs = yes;
        self
    }
    /// Skips padding (see [`EncoderInput::pack_padding`](Self#structfield.pack_padding)).
    pub fn pack_padding(mut self, yes: bool) -> Self {
        self.pack_padding = yes;
        self
    }
    /// Sets `src_mask` (bool or float, 2-D or 3-D).
    pub fn src_mask(mut self, mask: impl Into<SrcMask<B>>) -> Self {
        self.src_mask = Some(mask.into());
        self
    }
    /// Sets `src_key_padding_mask`.
    pub fn key_padding_mask(mut self, mask: impl Into<KeyPaddingMask<B>>) -> Self {
        self.src_key_padding_mask = Some(mask.into());
        self
    }
    /// Sets `is_causal`.
    pub fn causal(mut self, is_causal: bool) -> Self {
        self.is_causal = is_causal;
        self
    }
    /// Asks for per-layer attention weights.
    pub fn need_weights(mut self, yes: bool) -> Self {
        self.need_weights = yes;
        self
    }
    /// Asks for per-layer hidden states.
    pub fn output_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }
    /// Rejects NaN/inf input.
    pub fn check_finite(mut self, yes: bool) -> Self {
        self.check_finite = yes;
        self
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// The encoder's output, in the input's layout (`[B, S, E]` or `[S, B, E]`).
    pub output: Tensor<B, 3>,
    /// Per layer, the attention weights `[B, H, S, S]` (PyTorch's `need_weights=True,
    /// average_attn_weights=False`), when asked for.
    pub attentions: Option<Vec<Tensor<B, 4>>>,
    /// Per layer, its output in the input's layout (before the final norm), when asked for.
    pub hidden_states: Option<Vec<Tensor<B, 3>>>,
    /// Per layer, the inputs of its Linear layers (batch-first `[B, S, ·]`), when asked for.
    pub linear_inputs: Option<Vec<LinearInputs<B>>>,
}

impl<B: Backend> TransformerEncoder<B> {
    /// PyTorch's `forward(src, mask, src_key_padding_mask, is_causal)`.
    ///
    /// # Shapes
    /// - `src`: `[B, S, E]` if `batch_first`, else `[S, B, E]`; output: the same
    /// - `src_mask`: `[S, S]` or `[B * nhead, S, S]`; `src_key_padding_mask`: `[B, S]`
    pub fn forward(
        &self,
        src: Tensor<B, 3>,
        src_mask: Option<SrcMask<B>>,
        src_key_padding_mask: Option<KeyPaddingMask<B>>,
        is_causal: bool,
    ) -> Result<Tensor<B, 3>> {
        let input = EncoderInput {
            src_mask,
            src_key_padding_mask,
            is_causal,
            ..EncoderInput::new(src)
        };
        Ok(self.run(input)?.output)
    }

    /// The forward pass that also returns each layer's attention weights `[B, H, S, S]`.
    pub fn forward_with_weights(
        &self,
        src: Tensor<B, 3>,
        src_mask: Option<SrcMask<B>>,
        src_key_padding_mask: Option<KeyPaddingMask<B>>,
        is_causal: bool,
    ) -> Result<(Tensor<B, 3>, Vec<Tensor<B, 4>>)> {
        let input = EncoderInput {
            src_mask,
            src_key_padding_mask,
            is_causal,
            need_weights: true,
            ..EncoderInput::new(src)
        };
        let out = self.run(input)?;
        Ok((out.output, out.attentions.unwrap_or_default()))
    }

    /// The one forward pass every other entry point (and interpretability, pruning,
    /// distillation) goes through.
    ///
    /// # Shapes
    /// - `input.src`: `[B, S, E]` if `batch_first`, else `[S, B, E]`
    /// - output: as `src`; attentions `L x [B, H, S, S]`; hidden states `L x` as `src`
    pub fn run(&self, input: EncoderInput<B>) -> Result<EncoderOutput<B>> {
        let batch_first = self.config.batch_first;
        let [batch, seq] = check_src(&input.src, self.config.d_model, batch_first)?;
        if input.check_finite {
            ensure_finite(&input.src, "src")?;
        }
        // Attention dropout needs the weights-materialising path, which does not pack.
        let training_dropout = B::ad_enabled(&input.src.device()) && self.config.dropout > 0.0;
        let packed_lengths = if input.pack_padding
            && !input.need_weights
            && !input.output_linear_inputs
            && !training_dropout
            && input.src_mask.is_none()
        {
            input
                .src_key_padding_mask
                .as_ref()
                .filter(|m| m.dims() == [batch, seq])
                .and_then(|m| m.suffix_lengths())
        } else {
            None
        };
        let slices = input.batch_split.slices::<B>(batch, &input.src.device());
        let per_sequence_mask =
            matches!(input.src_mask, Some(SrcMask::Bool3(_) | SrcMask::Float3(_)));
        if slices > 1 && !per_sequence_mask {
            // Shapes are checked on the whole batch: a slice would only see its own rows.
            check_mask_shapes(
                batch,
                seq,
                self.config.nhead,
                input.src_mask.as_ref(),
                input.src_key_padding_mask.as_ref(),
            )?;
            // A sequence's cost grows with its real tokens when the padding is skipped.
            let cost = packed_lengths.unwrap_or_else(|| vec![seq; batch]);
            return self.run_split(input, &cost, slices);
        }
        if let Some(lengths) = packed_lengths {
            return Ok(self.run_packed(input, lengths));
        }
        let fused_kernel = input.attention_kernel.is_fused::<B>(&input.src.device());
        let path = AttentionPath::choose(input.need_weights || training_dropout, fused_kernel);
        let bias = AttentionBias::new(
            batch,
            seq,
            self.config.nhead,
            input.src_mask.as_ref(),
            input.src_key_padding_mask.as_ref(),
            input.is_causal,
            path,
            fused_kernel,
            &input.src.device(),
        )?;
        for layer in &self.layers {
            bias.check_heads(layer.self_attn.num_heads)?;
        }

        let mut x = to_batch_first(input.src, batch_first);
        let mut attentions = input.need_weights.then(Vec::new);
        let mut hidden_states = input.output_hidden_states.then(Vec::new);
        let mut linear_inputs = input.output_linear_inputs.then(Vec::new);
        for layer in &self.layers {
            let out = layer.forward_batch_first(x, &bias, input.output_linear_inputs);
            let y = out.output;
            if let (Some(all), Some(w)) = (attentions.as_mut(), out.weights) {
                all.push(w);
            }
            if let (Some(all), Some(inputs)) = (linear_inputs.as_mut(), out.linear_inputs) {
                all.push(inputs);
            }
            if let Some(all) = hidden_states.as_mut() {
                all.push(to_batch_first(y.clone(), batch_first));
            }
            x = y;
        }
        if let Some(norm) = &self.norm {
            x = norm.forward(x);
        }
        Ok(EncoderOutput {
            output: to_batch_first(x, batch_first),
            attentions,
            hidden_states,
            linear_inputs,
        })
    }

    /// The forward pass as `slices` forward passes over slices of the batch, on rayon's threads.
    fn run_split(
        &self,
        input: EncoderInput<B>,
        cost: &[usize],
        slices: usize,
    ) -> Result<EncoderOutput<B>> {
        use rayon::prelude::*;
        let batch_dim = if self.config.batch_first { 0 } else { 1 };
        let members = assign(cost, slices);
        let inputs: Vec<EncoderInput<B>> = members
            .iter()
            .map(|indices| slice_input(&input, batch_dim, indices))
            .collect();
        drop(input);
        let parts = inputs
            .into_par_iter()
            .map(|slice| self.run(slice))
            .collect::<Result<Vec<_>>>()?;
        Ok(join_outputs(parts, &members, batch_dim))
    }

    /// The forward pass without padding: real tokens packed into `[1, N, E]`.
    fn run_packed(&self, input: EncoderInput<B>, lengths: Vec<usize>) -> EncoderOutput<B> {
        let batch_first = self.config.batch_first;
        let x = to_batch_first(input.src, batch_first);
        let [batch, seq, d_model] = x.dims();
        let device = x.device();
        // [B, S, E] -> [1, N, E]: the first len_b rows of each sequence, end to end.
        let pieces: Vec<Tensor<B, 3>> = lengths
            .iter()
            .enumerate()
            .filter(|(_, &len)| len > 0)
            .map(|(b, &len)| x.clone().narrow(0, b, 1).narrow(1, 0, len))
            .collect();
        if pieces.is_empty() {
            // Every sequence is empty: zeros everywhere, as for any padded position.
            let zeros = to_batch_first(Tensor::zeros([batch, seq, d_model], &device), batch_first);
            return EncoderOutput {
                hidden_states: input
                    .output_hidden_states
                    .then(|| vec![zeros.clone(); self.layers.len()]),
                output: zeros,
                attentions: None,
                linear_inputs: None,
            };
        }
        let bias = AttentionBias::packed(
            lengths.clone(),
            input.is_causal,
            input.attention_kernel.is_fused::<B>(&device),
        );
        let unpack = |packed: Tensor<B, 3>| -> Tensor<B, 3> {
            // [1, N, E] -> [B, S, E], zeros at padded positions.
            let mut offset = 0;
            let rows: Vec<Tensor<B, 3>> = lengths
                .iter()
                .map(|&len| {
                    let mut parts = Vec::with_capacity(2);
                    if len > 0 {
                        parts.push(packed.clone().narrow(1, offset, len));
                    }
                    if len < seq {
                        parts.push(Tensor::zeros([1, seq - len, d_model], &device));
                    }
                    offset += len;
                    Tensor::cat(parts, 1)
                })
                .collect();
            to_batch_first(Tensor::cat(rows, 0), batch_first)
        };
        let mut x = Tensor::cat(pieces, 1);
        let mut hidden_states = input.output_hidden_states.then(Vec::new);
        for layer in &self.layers {
            let y = layer.forward_batch_first(x, &bias, false).output;
            if let Some(all) = hidden_states.as_mut() {
                all.push(unpack(y.clone()));
            }
            x = y;
        }
        if let Some(norm) = &self.norm {
            x = norm.forward(x);
        }
        EncoderOutput {
            output: unpack(x),
            attentions: None,
            hidden_states,
            linear_inputs: None,
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }

    /// The same model with every dropout probability set to 0. On an autodiff backend dropout
    /// is active (training); this makes the forward a fixed function there, as attributions and
    /// other gradients of a trained model need (`model.eval()` in PyTorch).
    pub fn without_dropout(self) -> Self {
        self.with_dropout(0.0)
    }

    /// The same model with every dropout probability set to `prob` (in `[0, 1)`), e.g. to turn
    /// dropout back on after [`Self::without_dropout`].
    pub fn with_dropout(mut self, prob: f64) -> Self {
        self.config.dropout = prob;
        for layer in &mut self.layers {
            layer.dropout.prob = prob;
            layer.dropout1.prob = prob;
            layer.dropout2.prob = prob;
            layer.self_attn.dropout.prob = prob;
        }
        self
    }
}

/// Checks `src` against the model width and returns `[B, S]`.
pub(crate) fn check_src<B: Backend>(
    src: &Tensor<B, 3>,
    d_model: usize,
    batch_first: bool,
) -> Result<[usize; 2]> {
    let dims = src.dims();
    let layout = if batch_first {
        "[B, S, E]"
    } else {
        "[S, B, E]"
    };
    if dims[2] != d_model || dims[0] == 0 || dims[1] == 0 {
        return Err(KilnError::shape(
            "src",
            &dims,
            format!("{layout} with E = d_model = {d_model} and B, S > 0"),
        ));
    }
    Ok(if batch_first {
        [dims[0], dims[1]]
    } else {
        [dims[1], dims[0]]
    })
}

/// `[S, B, E] <-> [B, S, E]` when the model is not batch-first; identity otherwise.
pub(crate) fn to_batch_first<B: Backend>(x: Tensor<B, 3>, batch_first: bool) -> Tensor<B, 3> {
    if batch_first {
        x
    } else {
        x.swap_dims(0, 1)
    }
}

/// Fails with [`KilnError::NonFinite`] if `t` holds NaN or inf.
pub fn ensure_finite<B: Backend, const D: usize>(t: &Tensor<B, D>, what: &str) -> Result<()> {
    let bad = t.clone().is_finite().bool_not().int().sum().into_scalar();
    let count: i64 = burn::tensor::ElementConversion::elem(bad);
    if count > 0 {
        return Err(KilnError::NonFinite {
            what: what.to_string(),
            count: count as usize,
        });
    }
    Ok(())
}
