//! # kiln-classify
//!
//! Text classification over a frozen kiln text encoder (e.g. all-MiniLM-L6-v2), trained from
//! few labels, with or without unlabelled text:
//!
//! - [`data`]: `label<TAB>text` files and the label set;
//! - [`head`]: the classification head (linear, or one tanh hidden layer), PyTorch names;
//! - [`features`], [`views`], [`dataset`]: every text and its EDA or back-translated views
//!   (kiln-augment) embedded once; [`translation_cache`] keeps back-translations across runs;
//! - [`train`]: supervised cross-entropy, + augmented copies (EDA), + UDA consistency
//!   (sharpened, confidence-masked KL to the prediction on an augmented view), + pseudo-labels
//!   (confidence-thresholded), with AdamW on burn's autodiff;
//! - [`metrics`]: accuracy, macro-F1, per-class scores, confusion matrix;
//! - [`classifier`]: the classifier directory (`classifier.json`, `head.safetensors`) and
//!   [`classifier::TextClassifier`] to classify and evaluate.
//!
//! The encoder stays frozen: its embeddings are computed once, so training takes seconds on a
//! CPU. Fine-tuning the encoder itself is not offered here (see docs/augmentation.md).

pub mod classifier;
pub mod data;
pub mod dataset;
pub mod error;
pub mod features;
pub mod head;
pub mod metrics;
pub mod train;
pub mod translation_cache;
pub mod views;

pub use classifier::{ClassifierManifest, EncoderRef, Prediction, TextClassifier};
pub use data::{LabelSet, LabeledText};
pub use error::{ClassifyError, Result};
pub use head::{ClassifierHead, ClassifierHeadConfig};
pub use metrics::Evaluation;
pub use train::{
    train_head, ConsistencyConfig, PseudoLabelConfig, StepLog, TrainConfig, TrainingSet,
};
pub use translation_cache::TranslationCache;
pub use views::{Augmentation, BackTranslationViews};
