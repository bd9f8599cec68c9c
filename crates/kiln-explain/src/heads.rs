//! Head importance for a target: Michel et al. 2019's gradient score, computed by the same
//! accumulator kiln-compress's head pruning ranks heads with
//! ([`kiln_compress::importance::GradientImportance`]).

use burn::tensor::backend::AutodiffBackend;
use kiln_compress::importance::{GradientImportance, Importance};
use kiln_text::TextEncoder;

use crate::error::{ExplainError, Result};
use crate::target::Target;

/// `I_h = mean over texts of |∂f/∂ξ_h|` (`ξ_h` a gate on head `h`'s output) for the target
/// `f`, per layer and head (and per feed-forward neuron). One backward pass per text.
pub fn head_importance<B: AutodiffBackend, S: AsRef<str>>(
    encoder: &TextEncoder<B>,
    texts: &[S],
    target: &Target,
) -> Result<Importance> {
    if texts.is_empty() {
        return Err(ExplainError::Invalid(
            "head importance needs at least one text".into(),
        ));
    }
    let model = encoder.model.clone().without_dropout();
    let mut acc = GradientImportance::new(&model.encoder);
    for tokens in encoder.tokenize(texts)? {
        let batch = encoder.batch_tensors(std::slice::from_ref(&tokens));
        // Pooled, not normalised: the target normalises where it should.
        let tokens = encoder.pipeline.token_embeddings(&model, &batch)?;
        let pooled = encoder.pipeline.pooling.pool(tokens, batch.padding.clone());
        let grads = target
            .value(pooled, encoder.pipeline.normalize)?
            .sum()
            .backward();
        acc.accumulate(&model.encoder, &grads);
    }
    Ok(acc.finish())
}
