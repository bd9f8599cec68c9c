//! Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

use serde::{Deserialize, Serialize};

/// One class's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// The label.
    pub label: String,
    /// Of the texts predicted as this class, the share that are.
    pub precision: f64,
    /// Of the texts of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Texts of this class.
    pub support: usize,
}

/// How well predictions match gold labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Texts evaluated.
    pub count: usize,
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 over all classes of the label set (a class that is
    /// neither present nor predicted counts as F1 0; scikit-learn's `average="macro"` with
    /// `labels=` all classes and `zero_division=0`).
    pub macro_f1: f64,
    /// Per class, in label-set order.
    pub classes: Vec<ClassScores>,
    /// `confusion[gold][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Scores `predicted` against `gold` (class indices below `labels.len()`).
    ///
    /// # Panics
    /// If the slices differ in length or hold an index out of range.
    pub fn new(gold: &[usize], predicted: &[usize], labels: &[String]) -> Self {
        assert_eq!(gold.len(), predicted.len(), "one prediction per gold label");
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&g, &p) in gold.iter().zip(predicted) {
            confusion[g][p] += 1;
        }
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes: Vec<ClassScores> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted_as: usize = confusion.iter().map(|row| row[c]).sum();
                let precision = ratio(tp, predicted_as);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = classes.iter().map(|c| c.f1).sum::<f64>() / k.max(1) as f64;
        Self {
            count: gold.len(),
            accuracy: ratio(correct, gold.len()),
            macro_f1,
            classes,
            confusion,
        }
    }
}
