//! Pretrained BERT-family text encoders on kiln, with sentence-transformers' semantics.
//!
//! Loads a Hugging Face / sentence-transformers directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`) and
//! turns text into embeddings equal to Python's. The encoder layers are kiln's
//! [`kiln::TransformerEncoder`]: BERT's `query`/`key`/`value` weights fill its packed projection.
//!
//! ```no_run
//! use kiln_text::TextEncoder;
//! let device = Default::default();
//! let encoder = TextEncoder::<kiln::backend::Flex>::from_dir(".cache/models/all-MiniLM-L6-v2", &device)?
//!     .with_precision(kiln::Precision::F32); // weights packed once for kiln's CPU kernel
//! let cos = encoder.similarity("A man is eating food.", "Someone is having a meal.")?;
//! # Ok::<(), kiln_text::TextError>(())
//! ```

pub mod config;
pub mod embeddings;
pub mod error;
mod json;
pub mod model;
pub mod model_dir;
pub mod pipeline;
pub mod pooling;
pub mod text_encoder;
pub mod tokenize;

pub use config::BertConfig;
pub use embeddings::BertEmbeddings;
pub use error::{Result, TextError};
pub use model::BertModel;
pub use model_dir::ModelDir;
pub use pipeline::{BatchTensors, EmbedOptions, SentencePipeline, Vocabulary, DEFAULT_BATCH_SIZE};
pub use pooling::{normalize, Pooling, PoolingConfig};
pub use text_encoder::{cosine, TextEncoder};
pub use tokenize::{TextTokenizer, TokenizedText};
