//! How close a compressed model stays to the original: row cosines and the Spearman
//! correlation of pairwise similarities.

use serde::Serialize;

/// Fidelity of a compressed model's outputs to the reference model's, on the same inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fidelity {
    /// Mean cosine between corresponding output rows.
    pub mean_cosine: f64,
    /// Smallest of those cosines.
    pub min_cosine: f64,
    /// Spearman correlation between the two models' pairwise cosine similarities of the rows
    /// (the measure of sentence-embedding benchmarks), when there are at least 3 rows.
    pub spearman: Option<f64>,
}

impl Fidelity {
    /// Compares `candidate` rows to `reference` rows (same count, same width).
    pub fn between(reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> Self {
        assert_eq!(reference.len(), candidate.len(), "row counts differ");
        let cosines: Vec<f64> = reference
            .iter()
            .zip(candidate)
            .map(|(a, b)| cosine(a, b))
            .collect();
        let n = cosines.len().max(1) as f64;
        let spearman = (reference.len() >= 3)
            .then(|| spearman(&pairwise_cosines(reference), &pairwise_cosines(candidate)));
        Self {
            mean_cosine: cosines.iter().sum::<f64>() / n,
            min_cosine: cosines.iter().copied().fold(f64::INFINITY, f64::min),
            spearman,
        }
    }
}

/// Cosine similarity (0 when either vector is zero), accumulated in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Cosines of all pairs `i < j` of rows, in row-major order of the upper triangle.
pub fn pairwise_cosines(rows: &[Vec<f32>]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * rows.len().saturating_sub(1) / 2);
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            out.push(cosine(&rows[i], &rows[j]));
        }
    }
    out
}

/// Ranks from 1, ties sharing their average rank (as `scipy.stats.rankdata`).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0; // mean of start+1 ..= end
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Spearman's rank correlation (Pearson on average ranks, as `scipy.stats.spearmanr`).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    pearson(&ranks(a), &ranks(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_scipy() {
        // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).statistic == 0.8207826816681233
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!((r - 0.8207826816681233).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]), -1.0);
    }

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
    }

    #[test]
    fn identical_rows_are_perfectly_faithful() {
        let rows = vec![
            vec![1.0, 0.0],
            vec![0.5, 0.5],
            vec![0.0, 2.0],
            vec![1.0, 1.0],
        ];
        let f = Fidelity::between(&rows, &rows);
        assert!((f.mean_cosine - 1.0).abs() < 1e-12 && (f.min_cosine - 1.0).abs() < 1e-12);
        assert!((f.spearman.unwrap() - 1.0).abs() < 1e-12);
    }
}
