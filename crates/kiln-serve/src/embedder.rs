//! [`Embedder`]: what the batcher calls to run one forward pass, and [`TextEmbedder`], the
//! implementation over a kiln-text [`TextEncoder`].

use burn::tensor::backend::Backend;
use kiln_text::{TextEncoder, TokenizedText};

/// Runs one batch of already tokenized texts through a model. The batcher owns it on its own
/// thread, so it needs `Send` but not `Sync`, and may block.
pub trait Embedder: Send + 'static {
    /// Pooled sentence vectors of `texts`, one per text in their order, **not** normalized
    /// (the routes normalize when the model or the request asks for it).
    fn embed(&mut self, texts: &[TokenizedText]) -> Result<Vec<Vec<f32>>, String>;
}

/// A [`TextEncoder`] as an [`Embedder`]: its pipeline's normalization is switched off, so that
/// the raw pooled vectors come out (whether the model normalizes is read before, see
/// [`crate::ModelInfo`]).
pub struct TextEmbedder<B: Backend> {
    encoder: TextEncoder<B>,
}

impl<B: Backend> TextEmbedder<B> {
    /// Wraps `encoder`, switching its normalization off.
    pub fn new(encoder: TextEncoder<B>) -> Self {
        Self {
            encoder: encoder.with_normalize(false),
        }
    }
}

impl<B: Backend> Embedder for TextEmbedder<B> {
    fn embed(&mut self, texts: &[TokenizedText]) -> Result<Vec<Vec<f32>>, String> {
        let pooled = self
            .encoder
            .embed_tokenized(texts)
            .map_err(|e| e.to_string())?;
        let dim = self.encoder.dim();
        let values: Vec<f32> = pooled
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("reading embeddings: {e:?}"))?;
        if values.len() != texts.len() * dim {
            return Err(format!(
                "the model returned {} values for {} texts of {dim}",
                values.len(),
                texts.len()
            ));
        }
        Ok(values.chunks(dim).map(<[f32]>::to_vec).collect())
    }
}

/// Scales `vector` to unit length in place (left as is when it is all zeros), accumulating in
/// f64 so that the result matches the model's own normalization to float rounding.
pub fn normalize_in_place(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for x in vector.iter_mut() {
        *x = (*x as f64 / norm) as f32;
    }
}
