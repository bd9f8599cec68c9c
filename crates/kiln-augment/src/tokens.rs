//! Token-level augmentation on token ids (after tokenization): random masking and span cutoff.
//! Special tokens (`[CLS]`, `[SEP]`, padding) are never touched.

use rand::Rng;

use crate::error::{AugmentError, Result};

/// Replaces each non-special token by `mask_id` with probability `p` (BERT's `[MASK]`).
pub fn mask_tokens(
    ids: &[u32],
    p: f64,
    mask_id: u32,
    special: &[u32],
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    if !(0.0..=1.0).contains(&p) {
        return Err(AugmentError::Invalid(format!(
            "mask probability {p} must be in [0, 1]"
        )));
    }
    Ok(ids
        .iter()
        .map(|&id| {
            if !special.contains(&id) && rng.random::<f64>() < p {
                mask_id
            } else {
                id
            }
        })
        .collect())
}

/// Span cutoff (Shen et al. 2020): removes one contiguous span of `ratio` of the non-special
/// tokens (at least 1 when `ratio > 0`) at a random place; special tokens stay.
pub fn span_cutoff(
    ids: &[u32],
    ratio: f64,
    special: &[u32],
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(AugmentError::Invalid(format!(
            "cutoff ratio {ratio} must be in [0, 1)"
        )));
    }
    let positions: Vec<usize> = (0..ids.len())
        .filter(|&i| !special.contains(&ids[i]))
        .collect();
    if ratio == 0.0 || positions.len() < 2 {
        return Ok(ids.to_vec());
    }
    let len = ((ratio * positions.len() as f64).round() as usize).clamp(1, positions.len() - 1);
    let start = rng.random_range(0..=positions.len() - len);
    let cut: Vec<usize> = positions[start..start + len].to_vec();
    Ok(ids
        .iter()
        .enumerate()
        .filter(|(i, _)| !cut.contains(i))
        .map(|(_, &id)| id)
        .collect())
}
