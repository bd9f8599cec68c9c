//! Attention maps per layer and head, taken from the core's one forward pass
//! ([`kiln::EncoderInput::need_weights`]), for plain encoders and text models.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use kiln::{EncoderInput, HostTensor, TransformerEncoder};
use kiln_text::{Pooling, TextEncoder, TokenizedText};
use serde::Serialize;

use crate::error::{ExplainError, Result};

/// A square matrix, row-major: entry `(i, j)` is `data[i * n + j]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SquareMatrix {
    /// Number of rows and columns.
    pub n: usize,
    /// `n * n` values.
    pub data: Vec<f32>,
}

impl SquareMatrix {
    /// All zeros.
    pub fn zeros(n: usize) -> Self {
        Self {
            n,
            data: vec![0.0; n * n],
        }
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.n + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// The rows as vectors (for JSON).
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        self.data
            .chunks(self.n.max(1))
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// The top-left `len x len` block.
    pub fn crop(&self, len: usize) -> Self {
        let mut data = Vec::with_capacity(len * len);
        for i in 0..len {
            data.extend_from_slice(&self.row(i)[..len]);
        }
        Self { n: len, data }
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Self) -> Self {
        let n = self.n;
        let mut out = Self::zeros(n);
        for i in 0..n {
            for k in 0..n {
                let a = self.get(i, k);
                if a == 0.0 {
                    continue;
                }
                let row = &mut out.data[i * n..(i + 1) * n];
                for (o, b) in row.iter_mut().zip(other.row(k)) {
                    *o += a * b;
                }
            }
        }
        out
    }
}

/// The attention weights of one sequence: per layer, one `S x S` matrix per head (rows:
/// queries, columns: keys; a row sums to 1 over the keys its query may attend to, and masked
/// keys, padding included, get exactly 0). Layers of a pruned model may have different head
/// counts.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMaps {
    /// Positions `S` (padded length of the batch the sequence came in).
    pub seq: usize,
    /// Real tokens: positions `0..len`; the rest is padding.
    pub len: usize,
    /// `layers[layer][head]`.
    pub layers: Vec<Vec<SquareMatrix>>,
}

impl AttentionMaps {
    /// Splits the per-layer weights of a batch ([`kiln::EncoderOutput::attentions`], each
    /// `[B, H, S, S]`) into one map per item; `lengths[b]` real tokens start item `b` (`None`:
    /// no padding).
    pub fn from_batch<B: Backend>(
        attentions: &[Tensor<B, 4>],
        lengths: Option<&[usize]>,
    ) -> Result<Vec<Self>> {
        let Some(first) = attentions.first() else {
            return Err(ExplainError::Invalid(
                "the model returned no attention weights (no layers?)".into(),
            ));
        };
        let [batch, _, seq, _] = first.dims();
        let lengths = lengths.map(<[usize]>::to_vec).unwrap_or(vec![seq; batch]);
        if lengths.len() != batch || lengths.iter().any(|&l| l == 0 || l > seq) {
            return Err(ExplainError::Invalid(format!(
                "lengths {lengths:?} do not fit a batch of {batch} sequences of {seq} positions"
            )));
        }
        let mut items: Vec<Self> = lengths
            .iter()
            .map(|&len| Self {
                seq,
                len,
                layers: Vec::with_capacity(attentions.len()),
            })
            .collect();
        for weights in attentions {
            // [B, H, S, S] on the host.
            let [_, heads, _, _] = weights.dims();
            let host = HostTensor::from_tensor(weights.clone());
            let per_head = seq * seq;
            for (b, item) in items.iter_mut().enumerate() {
                let start = b * heads * per_head;
                item.layers.push(
                    (0..heads)
                        .map(|h| SquareMatrix {
                            n: seq,
                            data: host.data[start + h * per_head..start + (h + 1) * per_head]
                                .to_vec(),
                        })
                        .collect(),
                );
            }
        }
        Ok(items)
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Head `head` of layer `layer`.
    pub fn head(&self, layer: usize, head: usize) -> Result<&SquareMatrix> {
        let heads = self.heads_of(layer)?;
        heads.get(head).ok_or_else(|| {
            ExplainError::Invalid(format!(
                "head {head} is out of range: layer {layer} has {} heads (0..{})",
                heads.len(),
                heads.len()
            ))
        })
    }

    /// Layer `layer`'s maps averaged over its heads (PyTorch's `average_attn_weights=True`).
    pub fn mean(&self, layer: usize) -> Result<SquareMatrix> {
        let heads = self.heads_of(layer)?;
        let mut out = SquareMatrix::zeros(self.seq);
        for h in heads {
            for (o, v) in out.data.iter_mut().zip(&h.data) {
                *o += v;
            }
        }
        let count = heads.len().max(1) as f32;
        out.data.iter_mut().for_each(|v| *v /= count);
        Ok(out)
    }

    /// One head, or the mean over heads when `head` is `None`; the last layer when `layer` is
    /// `None`.
    pub fn select(&self, layer: Option<usize>, head: Option<usize>) -> Result<SquareMatrix> {
        let layer = layer.unwrap_or(self.num_layers().saturating_sub(1));
        match head {
            Some(h) => self.head(layer, h).cloned(),
            None => self.mean(layer),
        }
    }

    fn heads_of(&self, layer: usize) -> Result<&Vec<SquareMatrix>> {
        self.layers.get(layer).ok_or_else(|| {
            ExplainError::Invalid(format!(
                "layer {layer} is out of range: the model has {} layers (0..{})",
                self.layers.len(),
                self.layers.len()
            ))
        })
    }

    /// Every head of every layer over the real tokens, `[layer][head][query][key]` (for JSON).
    pub fn to_nested(&self) -> Vec<Vec<Vec<Vec<f32>>>> {
        self.layers
            .iter()
            .map(|heads| heads.iter().map(|m| m.crop(self.len).to_rows()).collect())
            .collect()
    }
}

/// How much attention each position receives: the rows of `matrix` averaged with
/// `query_weights` (one weight per query; see [`query_weights`]).
pub fn received(matrix: &SquareMatrix, query_weights: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; matrix.n];
    for (i, &w) in query_weights.iter().enumerate().take(matrix.n) {
        if w != 0.0 {
            for (o, v) in out.iter_mut().zip(matrix.row(i)) {
                *o += w * v;
            }
        }
    }
    out
}

/// Which output positions a text model's sentence vector is made of, as weights over the `seq`
/// positions: the first (`[CLS]`) for CLS pooling, the `len` real tokens equally otherwise
/// (mean pooling; max pooling draws on all of them too). Token scores from attention and
/// rollout average the rows of these queries.
pub fn query_weights(pooling: &[Pooling], len: usize, seq: usize) -> Vec<f32> {
    let mut w = vec![0.0; seq];
    if pooling == [Pooling::Cls] {
        w[0] = 1.0;
    } else {
        w[..len].iter_mut().for_each(|v| *v = 1.0 / len as f32);
    }
    w
}

/// The attention maps of `texts` under a text model, with their tokens, from one batched
/// forward pass.
pub fn text_attention<B: Backend, S: AsRef<str>>(
    encoder: &TextEncoder<B>,
    texts: &[S],
) -> Result<Vec<(TokenizedText, AttentionMaps)>> {
    let tokenized = encoder.tokenize(texts)?;
    let batch = encoder.batch_tensors(&tokenized);
    let out = encoder.model.forward(
        batch.input_ids.clone(),
        batch.token_type_ids.clone(),
        &batch.lengths,
        |input| input.need_weights(true),
    )?;
    let attentions = out.attentions.unwrap_or_default();
    let maps = AttentionMaps::from_batch(&attentions, Some(&batch.lengths))?;
    Ok(tokenized.into_iter().zip(maps).collect())
}

/// The attention maps of a plain encoder's input (one per batch item); `lengths` gives each
/// item's real tokens when the input carries a matching key padding mask.
pub fn encoder_attention<B: Backend>(
    model: &TransformerEncoder<B>,
    input: EncoderInput<B>,
    lengths: Option<&[usize]>,
) -> Result<Vec<AttentionMaps>> {
    let out = model.run(input.need_weights(true))?;
    AttentionMaps::from_batch(&out.attentions.unwrap_or_default(), lengths)
}
