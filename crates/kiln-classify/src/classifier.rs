//! A trained classifier on disk, and classifying with it.
//!
//! A classifier directory holds `classifier.json` (the labels, the head's shape, which encoder
//! and how it was configured, and a free-form training record) and `head.safetensors` (the
//! head's weights under PyTorch names). The encoder is not copied: `classifier.json` records
//! its directory (absolute) and embedding width, and loading checks the width; pass another
//! directory (e.g. after moving the model) to [`TextClassifier::load`].

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use kiln::weights::{write_atomic, TensorFile};
use kiln_text::{Pooling, PoolingConfig, TextEncoder};
use serde::{Deserialize, Serialize};

use crate::data::{LabelSet, LabeledText};
use crate::error::{ClassifyError, Result};
use crate::features::Features;
use crate::head::{ClassifierHead, ClassifierHeadConfig};
use crate::metrics::Evaluation;
use crate::train::{argmax, predict_proba};

/// `classifier.json`.
pub const MANIFEST_FILE: &str = "classifier.json";
/// `head.safetensors`.
pub const HEAD_FILE: &str = "head.safetensors";
/// The manifest format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which encoder a classifier's features come from, and how it was configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRef {
    /// The model directory.
    pub path: PathBuf,
    /// Embedding width (the head's input).
    pub dim: usize,
    /// Token limit per text.
    pub max_seq_length: usize,
    /// Pooling modes (sentence-transformers names), in concatenation order.
    pub pooling: Vec<String>,
    /// Whether embeddings are scaled to unit length.
    pub normalize: bool,
}

impl EncoderRef {
    /// The reference of a loaded encoder (its directory made absolute).
    pub fn of<B: Backend>(encoder: &TextEncoder<B>) -> Self {
        let path = encoder.source_dir();
        Self {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            dim: encoder.dim(),
            max_seq_length: encoder.max_seq_length(),
            pooling: encoder
                .pipeline
                .pooling
                .modes
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
            normalize: encoder.pipeline.normalize,
        }
    }

    /// A key that changes whenever the embeddings could: this reference plus the size and
    /// modification time of the encoder's weights file.
    pub fn cache_key(&self) -> String {
        let weights = self.path.join("model.safetensors");
        let stamp = std::fs::metadata(&weights)
            .map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}:{modified}", m.len())
            })
            .unwrap_or_default();
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{json}|{stamp}")
    }

    /// Gives `encoder` the recorded token limit, pooling and normalisation, and checks that
    /// its embedding width is the recorded one.
    pub fn configure<B: Backend>(&self, mut encoder: TextEncoder<B>) -> Result<TextEncoder<B>> {
        let modes = self
            .pooling
            .iter()
            .map(|name| {
                Pooling::from_name(name).ok_or_else(|| {
                    ClassifyError::Invalid(format!("{MANIFEST_FILE}: unknown pooling `{name}`"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        encoder.pipeline.pooling = PoolingConfig { modes };
        encoder.pipeline.normalize = self.normalize;
        encoder.set_max_seq_length(self.max_seq_length)?;
        if encoder.dim() != self.dim {
            return Err(ClassifyError::Invalid(format!(
                "the encoder in {} embeds into {} dimensions, the classifier was trained on {}",
                encoder.source_dir().display(),
                encoder.dim(),
                self.dim
            )));
        }
        Ok(encoder)
    }
}

/// `classifier.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierManifest {
    /// Format version ([`FORMAT_VERSION`]).
    pub kiln_classifier: u32,
    /// Class names, in output order.
    pub labels: Vec<String>,
    /// The head's shape.
    pub head: ClassifierHeadConfig,
    /// The encoder.
    pub encoder: EncoderRef,
    /// How it was trained (settings, data sizes, final losses, evaluation): informational.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl ClassifierManifest {
    /// Reads `dir/classifier.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ClassifyError::io(&path, e))?;
        let manifest: Self = serde_json::from_str(&text).map_err(|e| ClassifyError::Parse {
            path: path.clone(),
            line: e.line(),
            message: e.to_string(),
        })?;
        if manifest.kiln_classifier != FORMAT_VERSION {
            return Err(ClassifyError::Invalid(format!(
                "{}: format version {} (this kiln reads {FORMAT_VERSION})",
                path.display(),
                manifest.kiln_classifier
            )));
        }
        LabelSet::new(manifest.labels.clone())?;
        if manifest.labels.len() != manifest.head.num_classes {
            return Err(ClassifyError::Invalid(format!(
                "{}: {} labels but the head has {} classes",
                path.display(),
                manifest.labels.len(),
                manifest.head.num_classes
            )));
        }
        Ok(manifest)
    }
}

/// Writes a classifier directory (created if needed): `classifier.json` and `head.safetensors`,
/// each atomically.
pub fn save_classifier<B: Backend>(
    dir: &Path,
    manifest: &ClassifierManifest,
    head: ClassifierHead<B>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ClassifyError::io(dir, e))?;
    head.state_dict().write(dir.join(HEAD_FILE))?;
    let json = serde_json::to_string_pretty(manifest)
        .map_err(|e| ClassifyError::Invalid(format!("serialising the manifest: {e}")))?;
    write_atomic(&dir.join(MANIFEST_FILE), format!("{json}\n").as_bytes())?;
    Ok(())
}

/// One text's predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The label.
    pub label: String,
    /// Its index.
    pub index: usize,
    /// Its probability.
    pub confidence: f32,
    /// Every class's probability, in label order.
    pub probabilities: Vec<f32>,
}

/// An encoder and a trained head.
pub struct TextClassifier<B: Backend> {
    /// The classes.
    pub labels: LabelSet,
    /// The (frozen) encoder.
    pub encoder: TextEncoder<B>,
    /// The head.
    pub head: ClassifierHead<B>,
    /// What was read from `classifier.json`.
    pub manifest: ClassifierManifest,
}

impl<B: Backend> TextClassifier<B> {
    /// Loads a classifier directory, with its encoder from `encoder_dir` or the recorded path.
    pub fn load(
        dir: impl AsRef<Path>,
        encoder_dir: Option<&Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let manifest = ClassifierManifest::read(dir)?;
        let weights = TensorFile::read(dir.join(HEAD_FILE))?;
        let head = ClassifierHead::from_state_dict(&manifest.head, &weights, device)?;
        let encoder_dir = encoder_dir.unwrap_or(&manifest.encoder.path);
        let encoder = TextEncoder::from_dir(encoder_dir, device).map_err(|e| {
            ClassifyError::Invalid(format!(
                "loading the classifier's encoder from {}: {e} (pass the encoder's directory if it moved)",
                encoder_dir.display()
            ))
        })?;
        let encoder = manifest.encoder.configure(encoder)?;
        Ok(Self {
            labels: LabelSet::new(manifest.labels.clone())?,
            encoder,
            head,
            manifest,
        })
    }

    /// Class probabilities of each text, calling `progress(n)` after each encoder batch.
    pub fn predict_proba<S: AsRef<str>>(
        &self,
        texts: &[S],
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let rows = self.encoder.embed_with_progress(texts, progress)?;
        predict_proba(
            &self.head,
            &Features::new(self.encoder.dim(), rows.concat()),
        )
    }

    /// The predicted class of each text.
    pub fn predict<S: AsRef<str>>(
        &self,
        texts: &[S],
        progress: impl FnMut(usize),
    ) -> Result<Vec<Prediction>> {
        let probabilities = self.predict_proba(texts, progress)?;
        Ok(argmax(&probabilities)
            .into_iter()
            .zip(probabilities)
            .map(|(index, probabilities)| Prediction {
                label: self.labels.names()[index].clone(),
                index,
                confidence: probabilities[index],
                probabilities,
            })
            .collect())
    }

    /// Accuracy, macro-F1 and per-class scores on labelled texts (their labels must be classes).
    pub fn evaluate(
        &self,
        examples: &[LabeledText],
        progress: impl FnMut(usize),
    ) -> Result<Evaluation> {
        let gold = self.labels.indices(examples)?;
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let predicted = argmax(&self.predict_proba(&texts, progress)?);
        Ok(Evaluation::new(&gold, &predicted, self.labels.names()))
    }
}
