//! `TextEncoder`: a sentence-transformers directory loaded end to end — text in, embeddings out:
//! a [`BertModel`] and the [`SentencePipeline`] around it.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use serde_json::Value;

use crate::config::BertConfig;
use crate::error::{Result, TextError};
use crate::json::read_json;
use crate::model::BertModel;
use crate::model_dir::ModelDir;
use crate::pipeline::{BatchTensors, EmbedOptions, SentencePipeline};
use crate::pooling::{Pooling, PoolingConfig};
use crate::tokenize::{TextTokenizer, TokenizedText};

/// Files of a model directory that [`TextEncoder::save_dir`] copies (besides each module's
/// `config.json` listed in `modules.json`).
const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// A pretrained BERT-family sentence encoder on backend `B`: the model and its sentence
/// pipeline, with the conveniences of sentence-transformers' `SentenceTransformer`.
///
/// On the CPU backends padding is skipped by default (real tokens packed end to end, attention
/// per text: the model's [`kiln::Execution::pack_padding`]), so a batch costs what its real
/// tokens cost; on a GPU backend batches run padded, which is faster there
/// ([`kiln::Execution::pack_padding_pays`]). Sentence vectors are the same either way.
///
/// ```no_run
/// # use kiln_text::TextEncoder;
/// let device = Default::default();
/// let encoder = TextEncoder::<kiln::backend::Flex>::from_dir(".cache/models/all-MiniLM-L6-v2", &device)?;
/// let vectors = encoder.embed(&["A man is eating food.", "Someone is having a meal."])?;
/// assert_eq!(vectors[0].len(), 384);
/// # Ok::<(), kiln_text::TextError>(())
/// ```
#[derive(Debug)]
pub struct TextEncoder<B: Backend> {
    /// Embeddings and encoder layers (whose [`kiln::Execution`] says how batches run).
    pub model: BertModel<B>,
    /// `config.json`.
    pub config: BertConfig,
    /// Tokenizer, pooling, normalization, batching.
    pub pipeline: SentencePipeline,
    device: B::Device,
    source_dir: PathBuf,
}

impl<B: Backend> TextEncoder<B> {
    /// Loads a Hugging Face / sentence-transformers directory: `config.json`,
    /// `model.safetensors`, `tokenizer.json`, and when present `modules.json`,
    /// `1_Pooling/config.json`, `sentence_bert_config.json`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        Self::from_model_dir(&ModelDir::inspect(dir)?, device)
    }

    /// Loads what [`ModelDir::inspect`] found.
    pub fn from_model_dir(found: &ModelDir, device: &B::Device) -> Result<Self> {
        let config = BertConfig::from_json_file(&found.config)?;
        let max_seq_length = found
            .max_seq_length
            .unwrap_or(config.max_position_embeddings);
        let tokenizer = TextTokenizer::from_file(&found.tokenizer, max_seq_length)?;
        let mut model = BertModel::from_safetensors(&config, &found.weights, device)?;
        model.encoder.execution.pack_padding = kiln::Execution::pack_padding_pays::<B>(device);
        let mut pipeline = SentencePipeline::new(&config, tokenizer, found.pooling.clone());
        pipeline.normalize = found.normalize;
        pipeline.lowercase = found.lowercase;
        let mut encoder = Self {
            model,
            config,
            pipeline,
            device: device.clone(),
            source_dir: found.dir.clone(),
        };
        encoder.set_max_seq_length(max_seq_length)?;
        Ok(encoder)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The directory the model was loaded from.
    pub fn source_dir(&self) -> &Path {
        &self.source_dir
    }

    /// Length of a sentence vector.
    pub fn dim(&self) -> usize {
        self.pipeline.dim()
    }

    /// The truncation length in tokens.
    pub fn max_seq_length(&self) -> usize {
        self.pipeline.tokenizer.max_seq_length()
    }

    /// Changes the truncation length; at most `max_position_embeddings`.
    pub fn set_max_seq_length(&mut self, max_seq_length: usize) -> Result<()> {
        if max_seq_length > self.config.max_position_embeddings {
            return Err(TextError::Input(format!(
                "max_seq_length {max_seq_length} exceeds the model's max_position_embeddings ({})",
                self.config.max_position_embeddings
            )));
        }
        self.pipeline.tokenizer.set_max_seq_length(max_seq_length)
    }

    /// Replaces the pooling with one mode.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pipeline.pooling = PoolingConfig::single(pooling);
        self
    }

    /// Switches normalization on or off.
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.pipeline.normalize = normalize;
        self
    }

    /// Sets the batch size (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.pipeline.batch_size = batch_size.max(1);
        self
    }

    /// Chooses whether batches are split across CPU threads ([`kiln::BatchSplit`]).
    pub fn with_batch_split(mut self, split: kiln::BatchSplit) -> Self {
        self.model.encoder.execution.batch_split = split;
        self
    }

    /// The same encoder with its Linear layers computing in `precision` (int8 quantizes the
    /// weights once, here; see [`kiln::Precision`]). Embeddings, LayerNorms, attention and
    /// pooling stay f32.
    pub fn with_precision(mut self, precision: kiln::Precision) -> Self {
        self.model.encoder.set_precision(precision);
        self
    }

    /// The precision of the encoder's Linear layers.
    pub fn precision(&self) -> kiln::Precision {
        self.model.encoder.precision()
    }

    /// Switches padding skipping on or off ([`kiln::Execution::pack_padding`]).
    pub fn with_pack_padding(mut self, pack_padding: bool) -> Self {
        self.model.encoder.execution.pack_padding = pack_padding;
        self
    }

    /// How the model runs its batches.
    pub fn execution(&self) -> kiln::Execution {
        self.model.encoder.execution
    }

    /// Tokenizes `texts` as the model sees them, checking the ids against the vocabulary.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<TokenizedText>> {
        self.pipeline.tokenize(texts)
    }

    /// A padded batch on the model's device (see [`SentencePipeline::batch_tensors`]).
    pub fn batch_tensors(&self, texts: &[TokenizedText]) -> BatchTensors<B> {
        self.pipeline.batch_tensors(texts, &self.device)
    }

    /// Token vectors of one batch (the Transformer module's output).
    ///
    /// # Shapes
    /// - output: `[B, S, E]` with `S` the longest text of the batch
    pub fn token_embeddings(&self, batch: &BatchTensors<B>) -> Result<Tensor<B, 3>> {
        self.pipeline.token_embeddings(&self.model, batch)
    }

    /// Pooling and (when configured) normalization of token vectors.
    ///
    /// # Shapes
    /// - `tokens`: `[B, S, E]`, `padding`: `[B, S]` -> `[B, dim]`
    pub fn pool(&self, tokens: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        self.pipeline.pool(tokens, padding)
    }

    /// Writes the model as a directory that [`Self::from_dir`] (and sentence-transformers, for
    /// unpruned shapes) loads: `config.json` (with `layer_heads` /
    /// `layer_dim_feedforward` when layers were pruned), `model.safetensors` (Hugging
    /// Face names), and the tokenizer and sentence-transformers files copied from the source
    /// directory. Each file is written atomically; `dir` must not be the source directory.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(dir, &self.source_dir) {
            return Err(TextError::Input(format!(
                "{}: refusing to write over the model's own directory",
                dir.display()
            )));
        }
        let io = |path: &Path, e: std::io::Error| kiln::KilnError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut config = self.config.clone();
        let encoder = &self.model.encoder.config;
        config.layer_heads = encoder.layer_heads.clone();
        config.layer_dim_feedforward = encoder.layer_dim_feedforward.clone();
        kiln::weights::write_atomic(&dir.join("config.json"), config.to_json_string().as_bytes())?;
        self.model
            .clone()
            .state_dict()
            .write(dir.join("model.safetensors"))?;
        let mut files: Vec<PathBuf> = COPIED_FILES.iter().map(PathBuf::from).collect();
        let modules_path = self.source_dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Value = read_json(&modules_path)?;
            for module in modules.as_array().into_iter().flatten() {
                if let Some(sub) = module.get("path").and_then(Value::as_str) {
                    if !sub.is_empty() {
                        let sub = crate::model_dir::module_subdir(&modules_path, sub)?;
                        std::fs::create_dir_all(dir.join(&sub)).map_err(|e| io(dir, e))?;
                        files.push(sub.join("config.json"));
                    }
                }
            }
        }
        for file in files {
            let from = self.source_dir.join(&file);
            if from.is_file() {
                let bytes = std::fs::read(&from).map_err(|e| io(&from, e))?;
                kiln::weights::write_atomic(&dir.join(&file), &bytes)?;
            }
        }
        Ok(())
    }

    /// Sentence vectors of already tokenized texts, in their order.
    ///
    /// # Shapes
    /// - output: `[N, dim]`
    pub fn embed_tokenized(&self, texts: &[TokenizedText]) -> Result<Tensor<B, 2>> {
        self.pipeline
            .embed_tokenized(&self.model, texts, &self.device)
    }

    /// Embeds `texts`, one row per text in input order. Texts are sorted by length and
    /// batched (`batch_size`) so that little padding is computed.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.embed_with_progress(texts, |_| {})
    }

    /// [`Self::embed`], calling `progress(n)` after each batch of `n` texts.
    pub fn embed_with_progress<S: AsRef<str>>(
        &self,
        texts: &[S],
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        self.pipeline
            .embed(&self.model, texts, &self.device, progress)
    }

    /// [`Self::embed_with_progress`] with `options` in place of the encoder's batch size and
    /// normalization, for one call (the encoder is shared, not changed).
    pub fn embed_with<S: AsRef<str>>(
        &self,
        texts: &[S],
        options: EmbedOptions,
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        self.pipeline
            .embed_with(&self.model, texts, &self.device, options, progress)
    }

    /// Embeds `texts` into one tensor, rows in input order.
    ///
    /// # Shapes
    /// - output: `[N, dim]`
    pub fn embed_tensor<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor<B, 2>> {
        if texts.is_empty() {
            return Err(TextError::Input("no texts to embed".into()));
        }
        let rows = self.embed(texts)?;
        let data = TensorData::new(rows.concat(), [texts.len(), self.dim()]);
        Ok(Tensor::from_data(data, &self.device))
    }

    /// Cosine similarity of two texts' embeddings.
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let rows = self.embed(&[a, b])?;
        Ok(cosine(&rows[0], &rows[1]))
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na * nb)) as f32
    }
}
