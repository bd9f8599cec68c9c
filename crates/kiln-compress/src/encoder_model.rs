//! The models compression takes in and gives back: a plain [`TransformerEncoder`], or a text
//! model ([`TextEncoder`]) whose layers are one. Pruning and quantization work on the encoder
//! layers; the rest of the model (a text model's embeddings) stays as it is.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use kiln::{TensorFile, TransformerEncoder};
use kiln_text::TextEncoder;

use crate::error::Result;
use crate::quantize::{encoder_linear_suffixes, BERT_LINEAR_SUFFIXES};

/// A model built around a kiln [`TransformerEncoder`].
pub trait EncoderModel<B: Backend>: Sized {
    /// The encoder layers that compression works on.
    fn encoder(&self) -> &TransformerEncoder<B>;

    /// The encoder layers, to replace them with a pruned or quantized copy.
    fn encoder_mut(&mut self) -> &mut TransformerEncoder<B>;

    /// Parameters of the whole model (a text model's embeddings included).
    fn num_params(&self) -> usize;

    /// The model's state_dict (PyTorch / Hugging Face names), on the host.
    fn state_dict(&self) -> TensorFile;

    /// State_dict suffixes of the encoder's Linear weights, the ones int8 quantization stores.
    fn linear_weight_suffixes(&self) -> Vec<&'static str>;

    /// Writes the model as a directory its loader reads back (`from_dir`): `config.json`,
    /// `model.safetensors` and, for a text model, its tokenizer and pooling files.
    fn save_dir(&self, dir: &Path) -> Result<()>;
}

impl<B: Backend> EncoderModel<B> for TransformerEncoder<B> {
    fn encoder(&self) -> &TransformerEncoder<B> {
        self
    }

    fn encoder_mut(&mut self) -> &mut TransformerEncoder<B> {
        self
    }

    fn num_params(&self) -> usize {
        Module::num_params(self)
    }

    fn state_dict(&self) -> TensorFile {
        TransformerEncoder::state_dict(&mut self.clone())
    }

    fn linear_weight_suffixes(&self) -> Vec<&'static str> {
        encoder_linear_suffixes()
    }

    fn save_dir(&self, dir: &Path) -> Result<()> {
        Ok(TransformerEncoder::save_dir(self, dir)?)
    }
}

impl<B: Backend> EncoderModel<B> for TextEncoder<B> {
    fn encoder(&self) -> &TransformerEncoder<B> {
        &self.model.encoder
    }

    fn encoder_mut(&mut self) -> &mut TransformerEncoder<B> {
        &mut self.model.encoder
    }

    fn num_params(&self) -> usize {
        self.model.num_params()
    }

    fn state_dict(&self) -> TensorFile {
        self.model.clone().state_dict()
    }

    fn linear_weight_suffixes(&self) -> Vec<&'static str> {
        BERT_LINEAR_SUFFIXES.to_vec()
    }

    fn save_dir(&self, dir: &Path) -> Result<()> {
        Ok(TextEncoder::save_dir(self, dir)?)
    }
}
