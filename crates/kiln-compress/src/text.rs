//! Compression of sentence encoders (`kiln-text`): gradient importance on text, distillation
//! on unlabeled lines (cosine of the pooled embeddings and/or hidden-state MSE), and fidelity
//! on held-out sentences.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use kiln_text::{BertConfig, BertModel, TextEncoder, TokenizedText};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::calibration_batch::CalibrationBatch;
use crate::distill::{cosine_loss, finetune, FinetuneConfig, StepRecord};
use crate::error::{CompressError, Result};
use crate::importance::{random_projection_loss, GradientImportance, Importance};
use crate::metrics::Fidelity;
use crate::unstructured::PruningMasks;
use crate::wanda::ActivationNorms;

/// Michel et al.'s head and neuron importance of `encoder`'s layers over `texts`, with the
/// label-free [`random_projection_loss`] of the sentence embeddings (one random direction per
/// batch, seeded). Calls `progress(n)` after each batch of `n` texts.
pub fn gradient_importance<B: AutodiffBackend>(
    encoder: &TextEncoder<B>,
    texts: &[String],
    batch_size: usize,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<Importance> {
    if texts.is_empty() {
        return Err(CompressError::Invalid(
            "gradient importance needs at least one text (--data)".into(),
        ));
    }
    let tokenized = encoder.tokenize(texts)?;
    let mut acc = GradientImportance::new(&encoder.model.encoder);
    for (i, chunk) in tokenized.chunks(batch_size.max(1)).enumerate() {
        let batch = encoder.batch_tensors(chunk);
        let pooled = encoder.pipeline.embed_batch(&encoder.model, &batch)?;
        let grads = random_projection_loss(pooled, seed.wrapping_add(i as u64)).backward();
        acc.accumulate(&encoder.model.encoder, &grads);
        progress(chunk.len());
    }
    Ok(acc.finish())
}

/// The calibration statistics of Wanda pruning ([`crate::wanda`]): the norms of every Linear
/// layer's input features over the real tokens of `texts` (one forward pass, no gradients).
/// Calls `progress(n)` after each batch of `n` texts.
pub fn activation_norms<B: burn::tensor::backend::Backend>(
    encoder: &TextEncoder<B>,
    texts: &[String],
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<ActivationNorms> {
    if texts.is_empty() {
        return Err(CompressError::Invalid(
            "wanda pruning needs calibration text lines (--data)".into(),
        ));
    }
    let batches = calibration_batches(encoder, texts, batch_size)?;
    ActivationNorms::from_batches(&encoder.model.encoder, &batches, |batch| {
        progress(batch.lengths.as_ref().map_or(0, Vec::len))
    })
}

/// Calibration batches of `texts` for `encoder`'s layers: the embedding outputs of batches
/// of `batch_size` texts, with their lengths (for activation importance and reconstruction,
/// which run the encoder layers only).
pub fn calibration_batches<B: burn::tensor::backend::Backend>(
    encoder: &TextEncoder<B>,
    texts: &[String],
    batch_size: usize,
) -> Result<Vec<CalibrationBatch<B>>> {
    if texts.is_empty() {
        return Err(CompressError::Invalid(
            "calibration needs text lines (--data)".into(),
        ));
    }
    let tokenized = encoder.tokenize(texts)?;
    Ok(tokenized
        .chunks(batch_size.max(1))
        .map(|chunk| {
            let batch = encoder.batch_tensors(chunk);
            CalibrationBatch {
                src: encoder
                    .model
                    .embeddings
                    .forward(batch.input_ids, batch.token_type_ids),
                lengths: Some(batch.lengths),
            }
        })
        .collect())
}

/// Sentence embeddings of `texts` computed by `model` with `frame`'s tokenizer, batching,
/// pooling and normalisation (in input order).
pub fn embed_with<B: burn::tensor::backend::Backend>(
    frame: &TextEncoder<B>,
    model: &BertModel<B>,
    texts: &[TokenizedText],
) -> Result<Vec<Vec<f32>>> {
    let mut rows = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(frame.pipeline.batch_size.max(1)) {
        let batch = frame.batch_tensors(chunk);
        let pooled = frame.pipeline.embed_batch(model, &batch)?;
        let dim = pooled.dims()[1];
        let values = kiln::HostTensor::from_tensor(pooled).data;
        rows.extend(values.chunks(dim).map(<[f32]>::to_vec));
    }
    Ok(rows)
}

/// Fidelity of `candidate`'s sentence embeddings to `reference`'s on `texts` (mean and worst
/// cosine, Spearman of pairwise similarities). Both must use the same tokenizer.
pub fn fidelity<B: burn::tensor::backend::Backend>(
    reference: &TextEncoder<B>,
    candidate: &BertModel<B>,
    texts: &[String],
) -> Result<Fidelity> {
    let tokenized = reference.tokenize(texts)?;
    let expected = embed_with(reference, &reference.model, &tokenized)?;
    let got = embed_with(reference, candidate, &tokenized)?;
    Ok(Fidelity::between(&expected, &got))
}

/// What text distillation makes the student match (the chosen terms are added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLoss {
    /// `1 - cosine` between the student's and the teacher's sentence embeddings (pooled and
    /// normalised as `embed` returns them).
    Cosine,
    /// Mean squared error of every layer's output on the real tokens, averaged over layers
    /// (TinyBERT's hidden-state loss; pruning keeps the number of layers, so layer `l` of the
    /// student learns from layer `l` of the teacher).
    Layers,
}

/// Distils `teacher` into `student` (a pruned copy on the autodiff backend): each step draws
/// `batch_size` lines of `train` (shuffled per epoch, seeded) and minimises the sum of `losses`
/// between the student and the teacher; `masks` keep unstructured-pruned weights at zero.
/// Dropout is off while training unless `config.dropout`. Evaluates on `heldout` (fidelity to
/// the teacher) before, every `eval_every` steps and after.
#[allow(clippy::too_many_arguments)]
pub fn distill<B: AutodiffBackend>(
    mut student: TextEncoder<B>,
    teacher: &TextEncoder<B::InnerBackend>,
    train: &[String],
    heldout: &[String],
    batch_size: usize,
    losses: &[TextLoss],
    config: &FinetuneConfig,
    masks: Option<&PruningMasks>,
    on_step: impl FnMut(&StepRecord),
) -> Result<(TextEncoder<B>, Vec<StepRecord>)> {
    if train.is_empty() || heldout.is_empty() {
        return Err(CompressError::Invalid(
            "distillation needs training lines and held-out lines".into(),
        ));
    }
    if losses.is_empty() {
        return Err(CompressError::Invalid(
            "distillation needs at least one loss term".into(),
        ));
    }
    check_pair(&student.config, &teacher.config, losses)?;
    let train_tokens = teacher.tokenize(train)?;
    let heldout_tokens = teacher.tokenize(heldout)?;
    let expected = embed_with(teacher, &teacher.model, &heldout_tokens)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = Vec::new();
    let batch_size = batch_size.max(1);
    let lines = train_tokens.len();
    let mut next_batch = move || -> Vec<usize> {
        if order.len() < batch_size {
            let mut epoch: Vec<usize> = (0..lines).collect();
            epoch.shuffle(&mut rng);
            order.extend(epoch);
        }
        order.drain(..batch_size.min(order.len())).collect()
    };
    let (cosine, layers) = (
        losses.contains(&TextLoss::Cosine),
        losses.contains(&TextLoss::Layers),
    );
    let device = student.device().clone();
    let frame = &student;
    let loss = |model: &BertModel<B>, _step: usize| -> Result<Tensor<B, 1>> {
        let texts: Vec<TokenizedText> = next_batch()
            .into_iter()
            .map(|i| train_tokens[i].clone())
            .collect();
        let batch = frame.batch_tensors(&texts);
        let target_batch = teacher.batch_tensors(&texts);
        let target = teacher.model.forward(
            target_batch.input_ids,
            target_batch.token_type_ids,
            &target_batch.lengths,
            |input| input.output_hidden_states(layers),
        )?;
        let out = model.forward(
            batch.input_ids.clone(),
            batch.token_type_ids.clone(),
            &batch.lengths,
            |input| input.output_hidden_states(layers),
        )?;
        let mut total = Tensor::<B, 1>::zeros([1], &device);
        if cosine {
            let pooled = frame.pool(out.output, batch.padding.clone());
            let wanted = teacher.pool(target.output, target_batch.padding);
            total = total + cosine_loss(pooled, Tensor::from_inner(wanted));
        }
        if layers {
            let (got, want) = (
                out.hidden_states.unwrap_or_default(),
                target.hidden_states.unwrap_or_default(),
            );
            total = total + hidden_state_mse(&got, &want, &batch);
        }
        Ok(total)
    };
    let eval = |model: &BertModel<B::InnerBackend>| -> Result<Fidelity> {
        let got = embed_with(teacher, model, &heldout_tokens)?;
        Ok(Fidelity::between(&expected, &got))
    };
    let (model, records) = finetune(
        student.model.clone(),
        config,
        masks,
        &device,
        loss,
        eval,
        on_step,
    )?;
    student.model = model;
    Ok((student, records))
}

/// Refuses a student that cannot learn from `teacher` with `losses`: both read the teacher's
/// tokens (same vocabulary, token types and positions), the pooled embeddings are compared
/// (same width) and, with [`TextLoss::Layers`], layer `l` learns from layer `l`.
fn check_pair(student: &BertConfig, teacher: &BertConfig, losses: &[TextLoss]) -> Result<()> {
    let mut checks = vec![
        ("vocab_size", student.vocab_size, teacher.vocab_size),
        ("hidden_size", student.hidden_size, teacher.hidden_size),
        (
            "type_vocab_size",
            student.type_vocab_size,
            teacher.type_vocab_size,
        ),
        (
            "max_position_embeddings",
            student.max_position_embeddings,
            teacher.max_position_embeddings,
        ),
    ];
    if losses.contains(&TextLoss::Layers) {
        checks.push((
            "num_hidden_layers",
            student.num_hidden_layers,
            teacher.num_hidden_layers,
        ));
    }
    for (name, s, t) in checks {
        if s != t {
            return Err(CompressError::Invalid(format!(
                "the student cannot learn from this teacher: {name} {s} vs the teacher's {t}"
            )));
        }
    }
    Ok(())
}

/// Mean over layers of the squared error per real token and feature between the student's
/// hidden states `got` and the teacher's `want` (padding excluded).
///
/// # Shapes
/// - `got[l]`, `want[l]`: `[B, S, E]`; `batch.padding`: `[B, S]` (`true` = padding)
fn hidden_state_mse<B: AutodiffBackend>(
    got: &[Tensor<B, 3>],
    want: &[Tensor<B::InnerBackend, 3>],
    batch: &kiln_text::BatchTensors<B>,
) -> Tensor<B, 1> {
    let device = batch.padding.device();
    let real = batch
        .padding
        .clone()
        .bool_not()
        .float()
        .unsqueeze_dim::<3>(2); // [B, S, 1]
    let width = got.first().map_or(1, |h| h.dims()[2]);
    let count = (batch.lengths.iter().sum::<usize>() * width).max(1) as f64;
    let mut total = Tensor::<B, 1>::zeros([1], &device);
    for (student, teacher) in got.iter().zip(want) {
        let diff = (student.clone() - Tensor::from_inner(teacher.clone())) * real.clone();
        total = total + diff.powi_scalar(2).sum().div_scalar(count);
    }
    total.div_scalar(got.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> BertConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_student_must_read_the_teachers_tokens_at_its_width() {
        let teacher = config(r#"{"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 4}"#);
        let shallower = config(r#"{"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2}"#);
        // Pooled embeddings can be compared across depths; hidden states layer by layer cannot.
        assert!(check_pair(&shallower, &teacher, &[TextLoss::Cosine]).is_ok());
        let err = check_pair(&shallower, &teacher, &[TextLoss::Cosine, TextLoss::Layers])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("num_hidden_layers 2 vs the teacher's 4"),
            "{err}"
        );
        let narrower = config(r#"{"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 4}"#);
        let err = check_pair(&narrower, &teacher, &[TextLoss::Cosine]).unwrap_err();
        assert!(err.to_string().contains("hidden_size 16"), "{err}");
        let other_vocab =
            config(r#"{"vocab_size": 90, "hidden_size": 32, "num_hidden_layers": 4}"#);
        let err = check_pair(&other_vocab, &teacher, &[TextLoss::Cosine]).unwrap_err();
        assert!(err.to_string().contains("vocab_size 90"), "{err}");
    }
}
