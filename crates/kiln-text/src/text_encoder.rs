//! `TextEncoder`: a sentence-transformers directory loaded end to end — text in, embeddings out.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use serde_json::Value;

use crate::config::BertConfig;
use crate::error::{Result, TextError};
use crate::json::read_json;
use crate::model::BertModel;
use crate::pooling::{normalize, padding_mask, Pooling, PoolingConfig};
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

/// Texts per forward pass unless told otherwise (sentence-transformers' default).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// What a model directory holds, resolved to paths and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The pooling (from `1_Pooling/config.json`, or mean for a plain Hugging Face model).
    pub pooling: PoolingConfig,
    /// Whether `modules.json` lists `Normalize`.
    pub normalize: bool,
    /// `max_seq_length` of `sentence_bert_config.json`, if given.
    pub max_seq_length: Option<usize>,
    /// `do_lower_case` of `sentence_bert_config.json`.
    pub lowercase: bool,
}

fn required(dir: &Path, file: &str, why: &'static str) -> Result<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TextError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.to_string(),
            why,
        })
    }
}

impl ModelDir {
    /// Inspects a Hugging Face or sentence-transformers model directory.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(TextError::Input(format!(
                "{}: not a model directory",
                dir.display()
            )));
        }
        let mut found = Self {
            dir: dir.to_path_buf(),
            config: required(dir, "config.json", "the architecture")?,
            weights: required(dir, "model.safetensors", "the weights")?,
            tokenizer: required(dir, "tokenizer.json", "the tokenizer")?,
            pooling: PoolingConfig::default(),
            normalize: false,
            max_seq_length: None,
            lowercase: false,
        };
        let modules_path = dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Value = read_json(&modules_path)?;
            let list = modules.as_array().ok_or_else(|| TextError::Config {
                path: modules_path.clone(),
                reason: "expected a list of modules".into(),
            })?;
            for module in list {
                let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
                let sub = module.get("path").and_then(Value::as_str).unwrap_or("");
                match kind.rsplit('.').next().unwrap_or("") {
                    "Transformer" => {}
                    "Pooling" => {
                        let file = Path::new(sub).join("config.json");
                        let path = required(
                            dir,
                            &file.to_string_lossy(),
                            "the pooling listed in modules.json",
                        )?;
                        found.pooling = PoolingConfig::from_json_file(&path)?;
                    }
                    "Normalize" => found.normalize = true,
                    _ => {
                        return Err(TextError::Unsupported {
                            path: modules_path,
                            what: "sentence-transformers module",
                            value: kind.to_string(),
                            supported: "kiln-text runs Transformer, Pooling and Normalize modules",
                        })
                    }
                }
            }
        }
        let st_config = dir.join("sentence_bert_config.json");
        if st_config.is_file() {
            let json: Value = read_json(&st_config)?;
            found.max_seq_length = json
                .get("max_seq_length")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            found.lowercase = json
                .get("do_lower_case")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        Ok(found)
    }
}

/// A pretrained BERT-family sentence encoder on backend `B`.
///
/// ```no_run
/// # use kiln_text::TextEncoder;
/// let device = Default::default();
/// let encoder = TextEncoder::<kiln::backend::Cpu>::from_dir(".cache/models/all-MiniLM-L6-v2", &device)?;
/// let vectors = encoder.embed(&["A man is eating food.", "Someone is having a meal."])?;
/// assert_eq!(vectors[0].len(), 384);
/// # Ok::<(), kiln_text::TextError>(())
/// ```
#[derive(Debug)]
pub struct TextEncoder<B: Backend> {
    /// Embeddings and encoder layers.
    pub model: BertModel<B>,
    /// `config.json`.
    pub config: BertConfig,
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
    /// Whether the encoder skips the padding of a batch (real tokens packed end to end,
    /// attention per text: [`kiln::EncoderInput::pack_padding`]); on by default. Sentence
    /// vectors are the same (padding never reaches them) and cost what the real tokens cost.
    pub pack_padding: bool,
    /// Whether slices of each batch run on separate CPU threads ([`kiln::BatchSplit`]; `Auto`
    /// by default: split on the CPU backends, not on GPUs). The vectors are the same.
    pub batch_split: kiln::BatchSplit,
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
        let model = BertModel::from_safetensors(&config, &found.weights, device)?;
        let mut encoder = Self {
            model,
            config,
            tokenizer,
            pooling: found.pooling.clone(),
            normalize: found.normalize,
            lowercase: found.lowercase,
            batch_size: DEFAULT_BATCH_SIZE,
            pack_padding: true,
            batch_split: kiln::BatchSplit::Auto,
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

    /// Length of a sentence vector.
    pub fn dim(&self) -> usize {
        self.config.hidden_size * self.pooling.modes.len()
    }

    /// The truncation length in tokens.
    pub fn max_seq_length(&self) -> usize {
        self.tokenizer.max_seq_length()
    }

    /// Changes the truncation length; at most `max_position_embeddings`.
    pub fn set_max_seq_length(&mut self, max_seq_length: usize) -> Result<()> {
        if max_seq_length > self.config.max_position_embeddings {
            return Err(TextError::Input(format!(
                "max_seq_length {max_seq_length} exceeds the model's max_position_embeddings ({})",
                self.config.max_position_embeddings
            )));
        }
        self.tokenizer.set_max_seq_length(max_seq_length)
    }

    /// Replaces the pooling with one mode.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = PoolingConfig::single(pooling);
        self
    }

    /// Switches normalisation on or off.
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Sets the batch size (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Chooses whether batches are split across CPU threads (see [`Self::batch_split`]).
    pub fn with_batch_split(mut self, split: kiln::BatchSplit) -> Self {
        self.batch_split = split;
        self
    }

    /// Switches padding skipping on or off (see [`Self::pack_padding`]).
    pub fn with_pack_padding(mut self, pack_padding: bool) -> Self {
        self.pack_padding = pack_padding;
        self
    }

    /// Tokenizes `texts` as the model sees them, checking the ids against the vocabulary.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<TokenizedText>> {
        let tokenized = if self.lowercase {
            let lower: Vec<String> = texts.iter().map(|t| t.as_ref().to_lowercase()).collect();
            self.tokenizer.tokenize(&lower)?
        } else {
            self.tokenizer.tokenize(texts)?
        };
        for text in &tokenized {
            if let Some(&id) = text
                .ids
                .iter()
                .find(|&&id| id as usize >= self.config.vocab_size)
            {
                return Err(TextError::Input(format!(
                    "token id {id} is outside the model's vocabulary (vocab_size {}): \
                     tokenizer.json does not belong to config.json",
                    self.config.vocab_size
                )));
            }
            if let Some(&t) = text
                .type_ids
                .iter()
                .find(|&&t| t as usize >= self.config.type_vocab_size)
            {
                return Err(TextError::Input(format!(
                    "token type {t} is outside the model's type_vocab_size ({})",
                    self.config.type_vocab_size
                )));
            }
        }
        Ok(tokenized)
    }

    /// A padded batch on the device: ids and type ids `[B, S]`, lengths, and the padding mask
    /// `[B, S]` (`true` = padding).
    pub fn batch_tensors(&self, texts: &[TokenizedText]) -> BatchTensors<B> {
        let seq = texts.iter().map(TokenizedText::len).max().unwrap_or(0);
        let pad = self.config.pad_token_id as i64;
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
            input_ids: Tensor::from_data(TensorData::new(ids, shape), &self.device),
            token_type_ids: Tensor::from_data(TensorData::new(types, shape), &self.device),
            padding: padding_mask(&lengths, seq, &self.device),
            lengths,
        }
    }

    /// The directory the model was loaded from.
    pub fn source_dir(&self) -> &Path {
        &self.source_dir
    }

    /// Token vectors of one batch (the Transformer module's output).
    ///
    /// # Shapes
    /// - output: `[B, S, E]` with `S` the longest text of the batch
    pub fn token_embeddings(&self, batch: &BatchTensors<B>) -> Result<Tensor<B, 3>> {
        self.token_embeddings_with(&self.model, batch)
    }

    /// [`Self::token_embeddings`] computed by another model of the same vocabulary (a copy
    /// being trained, a pruned student) with this encoder's batching.
    pub fn token_embeddings_with(
        &self,
        model: &BertModel<B>,
        batch: &BatchTensors<B>,
    ) -> Result<Tensor<B, 3>> {
        let out = model.forward(
            batch.input_ids.clone(),
            batch.token_type_ids.clone(),
            &batch.lengths,
            |input| {
                input
                    .pack_padding(self.pack_padding)
                    .batch_split(self.batch_split)
            },
        )?;
        Ok(out.output)
    }

    /// Pooling and (when configured) normalisation of token vectors.
    ///
    /// # Shapes
    /// - `tokens`: `[B, S, E]`, `padding`: `[B, S]` -> `[B, dim]`
    pub fn pool(&self, tokens: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let pooled = self.pooling.pool(tokens, padding);
        if self.normalize {
            normalize(pooled)
        } else {
            pooled
        }
    }

    /// Sentence vectors of one batch computed by `model` (see [`Self::token_embeddings_with`]),
    /// pooled and normalised as this encoder does.
    ///
    /// # Shapes
    /// - output: `[B, dim]`
    pub fn embed_batch_with(
        &self,
        model: &BertModel<B>,
        batch: &BatchTensors<B>,
    ) -> Result<Tensor<B, 2>> {
        let tokens = self.token_embeddings_with(model, batch)?;
        Ok(self.pool(tokens, batch.padding.clone()))
    }

    /// Writes the model as a directory that [`Self::from_dir`] (and sentence-transformers, for
    /// unpruned shapes) loads: `config.json` (with `kiln_layer_heads` /
    /// `kiln_layer_intermediate_sizes` when layers were pruned), `model.safetensors` (Hugging
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
        config.kiln_layer_heads = encoder.layer_heads.clone();
        config.kiln_layer_intermediate_sizes = encoder.layer_dim_feedforward.clone();
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
                        std::fs::create_dir_all(dir.join(sub)).map_err(|e| io(dir, e))?;
                        files.push(Path::new(sub).join("config.json"));
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
        if texts.is_empty() {
            return Err(TextError::Input("no texts to embed".into()));
        }
        let batch = self.batch_tensors(texts);
        let tokens = self.token_embeddings(&batch)?;
        Ok(self.pool(tokens, batch.padding))
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
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let tokenized = self.tokenize(texts)?;
        // Longest first, like sentence-transformers; the sort is stable.
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokenized[i].len()));
        let mut rows = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<TokenizedText> = chunk.iter().map(|&i| tokenized[i].clone()).collect();
            let pooled = self.embed_tokenized(&batch)?;
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

/// A padded batch on the device.
#[derive(Debug, Clone)]
pub struct BatchTensors<B: Backend> {
    /// `[B, S]` token ids, `[PAD]` after each text.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, S]` segment ids.
    pub token_type_ids: Tensor<B, 2, Int>,
    /// `[B, S]`, `true` = padding.
    pub padding: Tensor<B, 2, Bool>,
    /// Real tokens per text.
    pub lengths: Vec<usize>,
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
