//! BERT's input embeddings: word + position + token type, then LayerNorm and dropout.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::BertConfig;

/// `embeddings.*` of a Hugging Face `BertModel`.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `word_embeddings`: `[vocab_size, E]`.
    pub word_embeddings: Embedding<B>,
    /// `position_embeddings`: `[max_position_embeddings, E]`.
    pub position_embeddings: Embedding<B>,
    /// `token_type_embeddings`: `[type_vocab_size, E]`.
    pub token_type_embeddings: Embedding<B>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    /// Dropout (`hidden_dropout_prob`), active only under autodiff.
    pub dropout: Dropout,
}

impl<B: Backend> BertEmbeddings<B> {
    /// Randomly initialised embeddings of `config`'s shape.
    pub fn new(config: &BertConfig, device: &B::Device) -> Self {
        let e = config.hidden_size;
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, e).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, e)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, e).init(device),
            layer_norm: LayerNormConfig::new(e)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        }
    }

    /// The word vectors of `input_ids`, before positions, types and LayerNorm are added.
    /// Attribution methods differentiate with respect to these.
    ///
    /// # Shapes
    /// - `input_ids`: `[B, S]` -> `[B, S, E]`
    pub fn word_vectors(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.word_embeddings.forward(input_ids)
    }

    /// The embedding output for given word vectors (positions `0..S`).
    ///
    /// # Shapes
    /// - `word_vectors`: `[B, S, E]`, `token_type_ids`: `[B, S]` -> `[B, S, E]`
    pub fn forward_word_vectors(
        &self,
        word_vectors: Tensor<B, 3>,
        token_type_ids: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = word_vectors.dims();
        let device = word_vectors.device();
        // [B, S] positions -> [B, S, E]: gathered per row rather than broadcast from [1, S, E],
        // so the sum is of two contiguous tensors (burn-flex adds a broadcast operand through
        // a strided index per value, several times slower than the gather).
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .repeat_dim(0, batch);
        let x = word_vectors
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids);
        self.dropout.forward(self.layer_norm.forward(x))
    }

    /// The embedding output.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[B, S]` -> `[B, S, E]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        self.forward_word_vectors(self.word_vectors(input_ids), token_type_ids)
    }
}
