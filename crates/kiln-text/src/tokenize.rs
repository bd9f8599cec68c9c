//! Tokenization as sentence-transformers does it: `tokenizer.json` through the `tokenizers`
//! crate, truncated to the model's `max_seq_length` (which overrides the truncation and fixed
//! padding written inside `tokenizer.json`), not padded (batches pad to their longest member).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use crate::error::{Result, TextError};

/// Checks what `tokenizers` checks when a template is built in code but not when one is read
/// from a file (where a violation panics later, in the middle of tokenizing): every special token
/// a template names is defined, with as many ids as tokens, and the single-text template uses
/// only the first sequence. Processors nested in a `Sequence` are checked too.
fn check_post_processor(processor: &serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::Value;
    match processor.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            for inner in processor
                .get("processors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_post_processor(inner)?;
            }
            Ok(())
        }
        Some("TemplateProcessing") => {
            let special = processor.get("special_tokens").and_then(Value::as_object);
            if let Some(special) = special {
                for (name, token) in special {
                    let len = |key: &str| token.get(key).and_then(Value::as_array).map(Vec::len);
                    if len("ids") != len("tokens") {
                        return Err(format!(
                            "special token {name:?} has {:?} ids but {:?} tokens",
                            len("ids"),
                            len("tokens")
                        ));
                    }
                }
            }
            for template in ["single", "pair"] {
                for piece in processor
                    .get(template)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(id) = piece
                        .get("SpecialToken")
                        .and_then(|t| t.get("id"))
                        .and_then(Value::as_str)
                    {
                        if !special.is_some_and(|s| s.contains_key(id)) {
                            return Err(format!(
                                "the {template} template uses the undefined special token {id:?}"
                            ));
                        }
                    }
                    let sequence = piece
                        .get("Sequence")
                        .and_then(|t| t.get("id"))
                        .and_then(Value::as_str);
                    if template == "single" && sequence == Some("B") {
                        return Err("the single template uses the second sequence (B)".into());
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// One tokenized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, special tokens included (`[CLS] ... [SEP]`).
    pub ids: Vec<u32>,
    /// Segment ids (all 0 for a single text).
    pub type_ids: Vec<u32>,
    /// The tokens as strings (e.g. `##ing`), for reports.
    pub tokens: Vec<String>,
    /// Byte range of each token in the text as tokenized (lowercased first when the model
    /// lowercases); `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token is a special token (`[CLS]`, `[SEP]`) added by the tokenizer.
    pub special: Vec<bool>,
    /// Whether the text was cut to `max_seq_length` (some of its tokens were dropped).
    pub truncated: bool,
}

impl TokenizedText {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens (never the case with special tokens).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A `tokenizer.json` tokenizer with sentence-transformers' truncation.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_seq_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_seq_length", &self.max_seq_length)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and truncates to `max_seq_length` tokens (special tokens included).
    pub fn from_file(path: &Path, max_seq_length: usize) -> Result<Self> {
        let bytes = kiln::input_file::read_regular(path, kiln::input_file::MAX_JSON_BYTES)?;
        let inner = Tokenizer::from_bytes(&bytes)
            .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
        if let Some(processor) = inner.get_post_processor() {
            let json = serde_json::to_value(processor)
                .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
            check_post_processor(&json).map_err(|e| {
                TextError::Tokenizer(format!("{}: post_processor: {e}", path.display()))
            })?;
        }
        let mut tokenizer = Self {
            inner,
            max_seq_length: 0,
        };
        tokenizer.set_max_seq_length(max_seq_length)?;
        Ok(tokenizer)
    }

    /// The truncation length.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Changes the truncation length.
    pub fn set_max_seq_length(&mut self, max_seq_length: usize) -> Result<()> {
        if max_seq_length < 2 {
            return Err(TextError::Input(format!(
                "max_seq_length must be at least 2 (room for [CLS] and [SEP]), got {max_seq_length}"
            )));
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..Default::default()
            }))
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        self.inner.with_padding(None);
        self.max_seq_length = max_seq_length;
        Ok(())
    }

    /// Tokenizes `texts` (in parallel), each on its own.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<TokenizedText>> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| TokenizedText {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
                tokens: e.get_tokens().to_vec(),
                offsets: e.get_offsets().to_vec(),
                special: e
                    .get_special_tokens_mask()
                    .iter()
                    .map(|&m| m != 0)
                    .collect(),
                truncated: !e.get_overflowing().is_empty(),
            })
            .collect())
    }

    /// The vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of `token`, if it is in the vocabulary (e.g. `[PAD]`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
