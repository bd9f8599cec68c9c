//! [`SentencePipeline`]: what turns texts into sentence vectors around a model — tokenizing,
//! batching, pooling, normalizing — as a value of its own, so that any [`BertModel`] of the same
//! vocabulary (the loaded one, a copy being trained, a pruned student) embeds the same way.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::config::BertConfig;
use crate::error::{Result, TextError};
use crate::model::BertModel;
use crate::pooling::{normalize, padding_mask, PoolingConfig};
use crate::tokenize::{TextTokenizer, TokenizedText};

/// Texts per forward pass unless told otherwise (sentence-transformers' default).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// What one embedding call may choose apart from the pipeline's settings: texts per forward
/// pass and whether sentence vectors are scaled to unit length. A shared encoder serves callers
/// with different choices without being copied (the Python bindings' `embed(batch_size=...,
/// normalize=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Texts per forward pass (at least 1).
    pub batch_size: usize,
    /// Whether sentence vectors are scaled to unit length.
    pub normalize: bool,
}

/// Tokenizer, pooling, normalization and batching of a sentence encoder: sentence-transformers'
/// modules around the Transformer.
#[derive(Debug, Clone)]
pub struct SentencePipeline {
    /// The tokenizer (truncating to `max_seq_length`).
    pub tokenizer: TextTokenizer,
    /// How token vectors become sentence vectors.
    pub pooling: PoolingConfig,
    /// Whether sentence vectors are scaled to unit length.
    pub normalize: bool,
    /// Whether texts are lowercased before tokenizing (`do_lower_case`).
    pub lowercase: bool,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// What the pipeline checks token ids against and pads with.
    pub vocabulary: Vocabulary,
    /// Width of the model's token vectors (`hidden_size`).
    pub hidden_size: usize,
}

/// The model's id ranges and padding id, from `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary {
    /// Token ids must be below this.
    pub vocab_size: usize,
    /// Segment ids must be below this.
    pub type_vocab_size: usize,
    /// The id that pads a batch.
    pub pad_token_id: usize,
}

impl Vocabulary {
    /// The vocabulary of a BERT `config.json`.
    pub fn of(config: &BertConfig) -> Self {
        Self {
            vocab_size: config.vocab_size,
            type_vocab_size: config.type_vocab_size,
            pad_token_id: config.pad_token_id,
        }
    }
}

/// A padded batch on the device.
#[derive(Debug, Clone)]
pub struct BatchTensors<B: Backend> {
    /// `[B, S]` token ids, `[PAD]` after each text.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, S]` segment ids.
    pub token_type_ids: Tensor<B, 2, Int>,
    /// `[B, S]`, `true` = padding (what pooling reads).
    pub padding: Tensor<B, 2, Bool>,
    /// Real tokens per text (what the encoder reads: it never needs the mask back).
    pub lengths: Vec<usize>,
}

impl SentencePipeline {
    /// A pipeline for a model of `config` with sentence-transformers' defaults: no
    /// normalization, no lowercasing, [`DEFAULT_BATCH_SIZE`].
    pub fn new(config: &BertConfig, tokenizer: TextTokenizer, pooling: PoolingConfig) -> Self {
        Self {
            tokenizer,
            pooling,
            normalize: false,
            lowercase: false,
            batch_size: DEFAULT_BATCH_SIZE,
            vocabulary: Vocabulary::of(config),
            hidden_size: config.hidden_size,
        }
    }

    /// Length of a sentence vector.
    pub fn dim(&self) -> usize {
        self.hidden_size * self.pooling.modes.len()
    }

    /// Tokenizes `texts` as the model sees them, checking the ids against the vocabulary.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<TokenizedText>> {
        let tokenized = if self.lowercase {
            let lower: Vec<String> = texts.iter().map(|t| t.as_ref().to_lowercase()).collect();
            self.tokenizer.tokenize(&lower)?
        } else {
            self.tokenizer.tokenize(texts)?
        };
        let vocab = &self.vocabulary;
        for text in &tokenized {
            if let Some(&id) = text.ids.iter().find(|&&id| id as usize >= vocab.vocab_size) {
                return Err(TextError::Input(format!(
                    "token id {id} is outside the model's vocabulary (vocab_size {}): \
                     tokenizer.json does not belong to config.json",
                    vocab.vocab_size
                )));
            }
            if let Some(&t) = text
                .type_ids
                .iter()
                .find(|&&t| t as usize >= vocab.type_vocab_size)
            {
                return Err(TextError::Input(format!(
                    "token type {t} is outside the model's type_vocab_size ({})",
                    vocab.type_vocab_size
                )));
            }
        }
        Ok(tokenized)
    }

    /// A padded batch on `device`: ids and type ids `[B, S]`, lengths, and the padding mask
    /// `[B, S]` (`true` = padding) that pooling reads.
    pub fn batch_tensors<B: Backend>(
        &self,
        texts: &[TokenizedText],
        device: &B::Device,
    ) -> BatchTensors<B> {
        let seq = texts.iter().map(TokenizedText::len).max().unwrap_or(0);
        let pad = self.vocabulary.pad_token_id as i64;
        let mut ids = Vec::with_capacity(texts.len() * seq);
        let mut types = Vec::with_capacity(texts.len() * seq);
        for text in texts {
            ids.extend(text.ids.iter().map(|&i| i as i64));
            ids.extend(std::iter::repeat_n(pad, seq - text.len()));
            types.extend(text.type_ids.iter().map(|&t| t as i64));
            types.extend(std::iter::repeat_n(0, seq - text.len()));
        }
        let shape = [texts.len(), seq];
        let lengths: Vec<usize> = texts.iter().map(TokenizedText::len).collect();
        BatchTensors {
            input_ids: Tensor::from_data(TensorData::new(ids, shape), device),
            token_type_ids: Tensor::from_data(TensorData::new(types, shape), device),
            padding: padding_mask(&lengths, seq, device),
            lengths,
        }
    }

    /// Token vectors of one batch computed by `model` (the Transformer module's output), as
    /// the model's [`kiln::Execution`] runs it.
    ///
    /// # Shapes
    /// - output: `[B, S, E]` with `S` the longest text of the batch
    pub fn token_embeddings<B: Backend>(
        &self,
        model: &BertModel<B>,
        batch: &BatchTensors<B>,
    ) -> Result<Tensor<B, 3>> {
        let out = model.forward(
            batch.input_ids.clone(),
            batch.token_type_ids.clone(),
            &batch.lengths,
            |input| input,
        )?;
        Ok(out.output)
    }

    /// Pooling and (when configured) normalization of token vectors.
    ///
    /// # Shapes
    /// - `tokens`: `[B, S, E]`, `padding`: `[B, S]` -> `[B, dim]`
    pub fn pool<B: Backend>(
        &self,
        tokens: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 2> {
        let pooled = self.pooling.pool(tokens, padding);
        if self.normalize {
            normalize(pooled)
        } else {
            pooled
        }
    }

    /// Sentence vectors of one batch computed by `model`.
    ///
    /// # Shapes
    /// - output: `[B, dim]`
    pub fn embed_batch<B: Backend>(
        &self,
        model: &BertModel<B>,
        batch: &BatchTensors<B>,
    ) -> Result<Tensor<B, 2>> {
        let tokens = self.token_embeddings(model, batch)?;
        Ok(self.pool(tokens, batch.padding.clone()))
    }

    /// Sentence vectors of already tokenized texts, in their order, in one batch.
    ///
    /// # Shapes
    /// - output: `[N, dim]`
    pub fn embed_tokenized<B: Backend>(
        &self,
        model: &BertModel<B>,
        texts: &[TokenizedText],
        device: &B::Device,
    ) -> Result<Tensor<B, 2>> {
        if texts.is_empty() {
            return Err(TextError::Input("no texts to embed".into()));
        }
        self.embed_batch(model, &self.batch_tensors(texts, device))
    }

    /// The pipeline's own [`EmbedOptions`]: its `batch_size` and `normalize`.
    pub fn options(&self) -> EmbedOptions {
        EmbedOptions {
            batch_size: self.batch_size,
            normalize: self.normalize,
        }
    }

    /// Embeds `texts` with `model`, one row per text in input order, calling `progress(n)`
    /// after each batch of `n` texts. Texts are sorted by length (longest first, like
    /// sentence-transformers) and batched (`batch_size`) so that little padding is computed.
    pub fn embed<B: Backend, S: AsRef<str>>(
        &self,
        model: &BertModel<B>,
        texts: &[S],
        device: &B::Device,
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        self.embed_with(model, texts, device, self.options(), progress)
    }

    /// [`Self::embed`] with `options` in place of the pipeline's `batch_size` and `normalize`.
    pub fn embed_with<B: Backend, S: AsRef<str>>(
        &self,
        model: &BertModel<B>,
        texts: &[S],
        device: &B::Device,
        options: EmbedOptions,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let tokenized = self.tokenize(texts)?;
        // The sort is stable: equal lengths keep their order.
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokenized[i].len()));
        let mut rows = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(options.batch_size.max(1)) {
            let batch: Vec<TokenizedText> = chunk.iter().map(|&i| tokenized[i].clone()).collect();
            let tensors = self.batch_tensors::<B>(&batch, device);
            let tokens = self.token_embeddings(model, &tensors)?;
            let pooled = self.pooling.pool(tokens, tensors.padding.clone());
            let pooled = if options.normalize {
                normalize(pooled)
            } else {
                pooled
            };
            let values: Vec<f32> = pooled
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| TextError::Input(format!("reading embeddings: {e:?}")))?;
            for (row, &index) in values.chunks(self.dim()).zip(chunk) {
                rows[index] = row.to_vec();
            }
            progress(chunk.len());
        }
        Ok(rows)
    }
}
