//! `BertModel`: embeddings plus kiln's encoder, loaded from Hugging Face weight names.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use kiln::weights::{layer_norm_slots, linear_slots, load_slots, SlotTarget};
use kiln::{
    EncoderInput, EncoderOutput, KeyPaddingMask, TensorFile, TransformerEncoder, WeightSlot,
};

use crate::config::BertConfig;
use crate::embeddings::BertEmbeddings;
use crate::error::Result;

/// A BERT encoder (no pooler, no task head): the part sentence-transformers runs.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// `embeddings.*`.
    pub embeddings: BertEmbeddings<B>,
    /// `encoder.layer.{i}.*`, as kiln layers (post-norm, GELU, packed q/k/v projection).
    pub encoder: TransformerEncoder<B>,
}

/// Checkpoint keys that are legitimately not used by the encoder: the pooler (sentence
/// embeddings do not use it), the position-id buffer, and pre-training heads.
fn is_ignored_key(key: &str) -> bool {
    key.starts_with("pooler.") || key == "embeddings.position_ids" || key.starts_with("cls.")
}

/// Canonical (Hugging Face `BertModel`) key of a checkpoint key: without the `bert.` prefix
/// of task models, and with TF-era `gamma`/`beta` LayerNorm names renamed.
fn canonical_key(key: &str) -> String {
    let key = key.strip_prefix("bert.").unwrap_or(key);
    if key.contains("LayerNorm.") {
        key.replace("LayerNorm.gamma", "LayerNorm.weight")
            .replace("LayerNorm.beta", "LayerNorm.bias")
    } else {
        key.to_string()
    }
}

/// The model of `config` must fit the memory budget ([`kiln::memory`]).
fn check_fits(config: &BertConfig) -> Result<()> {
    let params = config.num_params_exact();
    kiln::memory::check_fits(
        &format!(
            "a BERT model of {} layers, hidden size {}, vocabulary {} ({params} parameters)",
            config.num_hidden_layers, config.hidden_size, config.vocab_size
        ),
        4 * params,
    )?;
    Ok(())
}

impl<B: Backend> BertModel<B> {
    /// A randomly initialised model of `config`'s shape (embeddings N(0, 1), layers as
    /// PyTorch initialises them).
    pub fn new(config: &BertConfig, device: &B::Device) -> Result<Self> {
        check_fits(config)?;
        Ok(Self {
            embeddings: BertEmbeddings::new(config, device),
            encoder: config.encoder_config().try_init(device)?,
        })
    }

    /// A model of `config`'s shape with every parameter zero: the skeleton weights load into.
    pub fn zeroed(config: &BertConfig, device: &B::Device) -> Result<Self> {
        check_fits(config)?;
        Ok(Self {
            embeddings: BertEmbeddings::new(config, device).map(&mut kiln::ZeroFill),
            encoder: config.encoder_config().try_init_zeroed(device)?,
        })
    }

    /// The declarative map from Hugging Face keys to this model's parameters. BERT's separate
    /// `query`/`key`/`value` projections fill kiln's packed `in_proj` (stacked along dim 0, the
    /// PyTorch layout); everything else maps one to one.
    pub fn weight_slots(&mut self) -> Vec<WeightSlot<'_, B>> {
        let emb = &mut self.embeddings;
        let mut slots = vec![
            WeightSlot::new(
                "embeddings.word_embeddings.weight",
                SlotTarget::Matrix(&mut emb.word_embeddings.weight),
            ),
            WeightSlot::new(
                "embeddings.position_embeddings.weight",
                SlotTarget::Matrix(&mut emb.position_embeddings.weight),
            ),
            WeightSlot::new(
                "embeddings.token_type_embeddings.weight",
                SlotTarget::Matrix(&mut emb.token_type_embeddings.weight),
            ),
        ];
        slots.extend(layer_norm_slots(
            "embeddings.LayerNorm",
            &mut emb.layer_norm,
        ));
        for (i, layer) in self.encoder.layers.iter_mut().enumerate() {
            let p = format!("encoder.layer.{i}");
            let attn = &mut layer.self_attn;
            let qkv = |what: &str| {
                ["query", "key", "value"]
                    .iter()
                    .map(|part| format!("{p}.attention.self.{part}.{what}"))
                    .collect::<Vec<_>>()
            };
            slots.push(WeightSlot {
                key: format!("{p}.attention.self.qkv.weight"),
                sources: qkv("weight"),
                target: SlotTarget::LinearWeight(&mut attn.in_proj.weight),
            });
            if let Some(bias) = attn.in_proj.bias.as_mut() {
                slots.push(WeightSlot {
                    key: format!("{p}.attention.self.qkv.bias"),
                    sources: qkv("bias"),
                    target: SlotTarget::Vector(bias),
                });
            }
            slots.extend(linear_slots(
                &format!("{p}.attention.output.dense"),
                &mut attn.out_proj,
            ));
            slots.extend(layer_norm_slots(
                &format!("{p}.attention.output.LayerNorm"),
                &mut layer.norm1,
            ));
            slots.extend(linear_slots(
                &format!("{p}.intermediate.dense"),
                &mut layer.linear1,
            ));
            slots.extend(linear_slots(
                &format!("{p}.output.dense"),
                &mut layer.linear2,
            ));
            slots.extend(layer_norm_slots(
                &format!("{p}.output.LayerNorm"),
                &mut layer.norm2,
            ));
        }
        slots
    }

    /// Fills the model from a checkpoint's tensors (keys with or without `bert.`; the pooler,
    /// `position_ids` and pre-training heads are skipped). A missing, mis-shaped or unknown key
    /// is an error that names it.
    pub fn load(self, file: &TensorFile, device: &B::Device) -> Result<Self> {
        let kept = file
            .tensors
            .iter()
            .filter(|(key, _)| !is_ignored_key(&canonical_key(key)))
            .map(|(key, tensor)| (key.clone(), tensor.clone()))
            .collect();
        self.load_file(TensorFile { tensors: kept }, device)
    }

    /// [`Self::load`] from a file it owns: the tensors are renamed to their canonical keys
    /// without being copied.
    fn load_file(mut self, file: TensorFile, device: &B::Device) -> Result<Self> {
        let mut canonical = TensorFile::default();
        for (key, tensor) in file.tensors {
            let key = canonical_key(&key);
            if is_ignored_key(&key) {
                continue;
            }
            canonical.tensors.insert(key, tensor);
        }
        let report = load_slots(self.weight_slots(), &canonical, device).into_result()?;
        tracing::debug!("loaded {} BERT tensors", report.applied.len());
        Ok(self)
    }

    /// Builds the model of `config` and loads the safetensors file at `path`.
    pub fn from_safetensors(
        config: &BertConfig,
        path: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        config.encoder_config().validate()?;
        kiln::weights::check_file_holds(&file, config.num_params_exact(), path)?;
        Self::zeroed(config, device)?.load_file(file, device)
    }

    /// The Hugging Face `state_dict` (separate `query`/`key`/`value`), on the host.
    pub fn state_dict(&mut self) -> TensorFile {
        kiln::weights::read_slots(self.weight_slots())
    }

    /// The same model with every dropout probability set to 0, so that on an autodiff backend
    /// the forward is a fixed function (see [`kiln::TransformerEncoder::without_dropout`]).
    pub fn without_dropout(self) -> Self {
        self.with_dropout(0.0)
    }

    /// The same model with every dropout probability set to `prob` (BERT's layout uses one
    /// rate, `hidden_dropout_prob`, for embeddings and layers).
    pub fn with_dropout(mut self, prob: f64) -> Self {
        self.embeddings.dropout.prob = prob;
        self.encoder = self.encoder.with_dropout(prob);
        self
    }

    /// Embeds and encodes a padded batch.
    ///
    /// `lengths[b]` real tokens start item `b`; the rest is padding, handed to the encoder as
    /// lengths ([`KeyPaddingMask::Lengths`]). Requests for more outputs (weights, hidden
    /// states) come in through `options`, which may be `|input| input`; how the pass runs is
    /// the encoder's [`kiln::Execution`].
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[B, S]`
    /// - output: `[B, S, E]` (padded positions hold values that must be ignored)
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        lengths: &[usize],
        options: impl FnOnce(EncoderInput<B>) -> EncoderInput<B>,
    ) -> Result<EncoderOutput<B>> {
        let hidden = self.embeddings.forward(input_ids, token_type_ids);
        self.encode(hidden, lengths, options)
    }

    /// Runs the encoder layers on an embedding output.
    ///
    /// # Shapes
    /// - `hidden`: `[B, S, E]` -> output `[B, S, E]`
    pub fn encode(
        &self,
        hidden: Tensor<B, 3>,
        lengths: &[usize],
        options: impl FnOnce(EncoderInput<B>) -> EncoderInput<B>,
    ) -> Result<EncoderOutput<B>> {
        let [batch, seq, _] = hidden.dims();
        if lengths.len() != batch {
            return Err(kiln::KilnError::Shape {
                what: "lengths".into(),
                got: vec![lengths.len()],
                expected: format!("[{batch}] (one per batch item)"),
            }
            .into());
        }
        // Padding as host-side lengths: the encoder skips it (when its execution packs) or
        // builds the one bool mask it needs, without reading anything back from the device.
        let input =
            EncoderInput::new(hidden).key_padding_mask(KeyPaddingMask::from_lengths(lengths, seq));
        Ok(self.encoder.run(options(input))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_are_canonicalised() {
        assert_eq!(
            canonical_key("bert.encoder.layer.0.output.LayerNorm.gamma"),
            "encoder.layer.0.output.LayerNorm.weight"
        );
        assert_eq!(
            canonical_key("embeddings.LayerNorm.beta"),
            "embeddings.LayerNorm.bias"
        );
        assert!(is_ignored_key("pooler.dense.weight"));
        assert!(is_ignored_key(&canonical_key(
            "bert.embeddings.position_ids"
        )));
        assert!(!is_ignored_key("encoder.layer.0.output.dense.weight"));
    }

    /// The one place a text forward pass could stall a GPU queue is reading the padding mask
    /// back to the host; with lengths on the host it never happens, on any execution path. (The
    /// counter is process-wide: no other test of this crate runs a forward pass.)
    #[test]
    fn a_text_forward_pass_reads_nothing_back_from_the_device() {
        use burn::tensor::{Distribution, TensorData};
        use kiln::{BatchSplit, EncoderInput, Execution};
        type B = kiln::backend::Cpu;
        let device = kiln::backend::cpu_device();
        let config: BertConfig = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 32,
                "max_position_embeddings": 16}"#,
        )
        .unwrap();
        let mut model = BertModel::<B>::new(&config, &device).unwrap();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new((0..24).map(|i| i % 50).collect::<Vec<i64>>(), [4, 6]),
            &device,
        );
        let types = Tensor::<B, 2, Int>::zeros([4, 6], &device);
        let lengths = [6, 2, 0, 4];
        let before = kiln::device_reads();
        for pack_padding in [true, false] {
            for batch_split in [BatchSplit::Off, BatchSplit::Slices(2)] {
                model.encoder.execution = Execution {
                    pack_padding,
                    batch_split,
                    ..Execution::default()
                };
                let out = model
                    .forward(ids.clone(), types.clone(), &lengths, |i| {
                        i.output_hidden_states(true)
                    })
                    .unwrap();
                assert_eq!(out.output.dims(), [4, 6, 16]);
            }
        }
        assert_eq!(kiln::device_reads(), before, "a padding mask was read back");
        // The counter counts: the same padding as a bool tensor on the padded matmul path has
        // to ask the device whether every query row keeps a key.
        let hidden = Tensor::<B, 3>::random([4, 6, 16], Distribution::Default, &device);
        let mask = kiln::padding_from_lengths::<B>(&lengths, 6, &device);
        let matmul = Execution::default()
            .with_batch_split(BatchSplit::Off)
            .with_attention_kernel(kiln::AttentionKernel::Matmul);
        model
            .encoder
            .run_with(&matmul, EncoderInput::new(hidden).key_padding_mask(mask))
            .unwrap();
        assert_eq!(kiln::device_reads(), before + 1);
    }
}
