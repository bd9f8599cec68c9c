//! `TransformerEncoder`: a stack of layers and an optional final LayerNorm.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::bias::{AttentionBias, MaskInput};
use crate::config::{LayerInit, TransformerEncoderConfig};
use crate::error::{KilnError, Result};
use crate::execution::{plan, AttentionPath, Execution, Plan};
use crate::input::{EncoderInput, EncoderOutput};
use crate::kernels::Precision;
use crate::layer::TransformerEncoderLayer;
use crate::layout::{check_src, to_batch_first};
use crate::mask::{check_mask_shapes, KeyPaddingMask, SrcMask};

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
    /// How forward passes run (packing, threads, attention kernel); not part of the weights.
    pub execution: Execution,
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
        crate::memory::check_fits(
            &format!(
                "a model of {} layers, d_model {} ({} parameters)",
                self.num_layers,
                self.d_model,
                self.num_params_exact()
            ),
            4 * self.num_params_exact(),
        )?;
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
            execution: Execution::default(),
        };
        Ok(model)
    }
}

/// Replaces every parameter by zeros of its shape without running its (lazy) initialiser.
/// The zeros stay lazy: they are allocated only if the parameter is read before a value is
/// assigned to it, so loading a checkpoint into this skeleton never allocates them. They are
/// trainable (`require_grad`) on autodiff backends, as freshly built parameters are.
pub struct ZeroFill;

impl<B: Backend> ModuleMapper<B> for ZeroFill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let shape = param.lazy_shape();
        let device = param.lazy_device();
        let init_shape = shape.clone();
        Param::uninitialized(
            param.id,
            move |device, require_grad| {
                Tensor::zeros(init_shape.clone(), device).set_require_grad(require_grad)
            },
            device,
            true,
            shape,
        )
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

    /// The one forward pass every other entry point (and interpretability, pruning,
    /// distillation) goes through. Validates the input, then takes the path
    /// [`Execution`] chooses for it: slices on separate threads, the packed real tokens, or
    /// the padded batch.
    ///
    /// # Shapes
    /// - `input.src`: `[B, S, E]` if `batch_first`, else `[S, B, E]`
    /// - output: as `src`; attentions `L x [B, H, S, S]`; hidden states `L x` as `src`
    pub fn run(&self, input: EncoderInput<B>) -> Result<EncoderOutput<B>> {
        self.run_with(&self.execution, input)
    }

    /// [`Self::run`] under other execution settings than the model's.
    pub fn run_with(
        &self,
        execution: &Execution,
        mut input: EncoderInput<B>,
    ) -> Result<EncoderOutput<B>> {
        let [batch, seq] = check_src(&input.src, self.config.d_model, self.config.batch_first)?;
        crate::memory::check_fits(
            &format!("a forward pass over {batch} x {seq} tokens"),
            self.config.activation_bytes(batch, seq),
        )?;
        check_mask_shapes(
            batch,
            seq,
            self.config.nhead,
            input.src_mask.as_ref(),
            input.src_key_padding_mask.as_ref(),
        )?;
        // Lengths that pad nothing are no mask at all, except where packing would run kiln's
        // packed attention kernel (burn-flex): it beats the padded batch's matmul attention
        // even with no padding to skip, so a batch of equal lengths keeps the packed path.
        if let Some(lengths) = input
            .src_key_padding_mask
            .as_ref()
            .and_then(|m| m.lengths())
        {
            let packs_on_kernel =
                execution.pack_padding && crate::kernels::has_packed_attention::<B>();
            if lengths.iter().all(|&len| len == seq) && !packs_on_kernel {
                input.src_key_padding_mask = None;
            }
        }
        // Attention dropout needs the weights-materialising path, which does not pack.
        let training_dropout = B::ad_enabled(&input.src.device()) && self.config.dropout > 0.0;
        match plan(execution, &input, [batch, seq], training_dropout) {
            Plan::Split { slices, cost } => self.run_split(execution, input, &cost, slices),
            Plan::Packed { lengths } => Ok(self.run_packed(input, lengths, execution)),
            Plan::Padded { path, fused_kernel } => {
                self.run_padded(input, [batch, seq], path, fused_kernel)
            }
        }
    }

    /// The forward pass over the padded batch.
    fn run_padded(
        &self,
        input: EncoderInput<B>,
        [batch, seq]: [usize; 2],
        path: AttentionPath,
        fused_kernel: bool,
    ) -> Result<EncoderOutput<B>> {
        let batch_first = self.config.batch_first;
        let masks = MaskInput {
            batch,
            seq,
            nhead: self.config.nhead,
            src_mask: input.src_mask.as_ref(),
            key_padding_mask: input.src_key_padding_mask.as_ref(),
            is_causal: input.is_causal,
        };
        let bias = AttentionBias::new(masks, path, fused_kernel, &input.src.device())?;
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

    /// The same model with its Linear layers computing in `precision` ([`Precision`]): int8
    /// quantizes (bf16 rounds) the weights once, here, and f32 packs them for kiln's f32 kernel
    /// where the backend runs it (burn-flex on a CPU with AVX-512); call it when the weights are
    /// final: after loading, pruning or training (a packed copy does not follow later changes).
    /// LayerNorm and softmax stay f32; attention's two products follow bf16 on burn-flex
    /// ([`Precision::Bf16`]). Without a call, f32 runs burn's Linear.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.set_precision(precision);
        self
    }

    /// [`Self::with_precision`] in place.
    pub fn set_precision(&mut self, precision: Precision) {
        for layer in &mut self.layers {
            layer.set_precision(precision);
        }
    }

    /// The precision the Linear layers compute in (that of the first layer; f32 without layers).
    pub fn precision(&self) -> Precision {
        self.layers
            .first()
            .map_or(Precision::F32, |l| l.precision())
    }

    /// The same model running its forward passes as `execution` says.
    pub fn with_execution(mut self, execution: Execution) -> Self {
        self.execution = execution;
        self
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
