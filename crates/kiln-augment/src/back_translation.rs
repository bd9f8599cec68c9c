//! K back-translated variants of each text, deterministic under a seed.
//!
//! A rule-based translator such as Apertium gives one translation per text, so one pivot gives
//! one paraphrase. Variant `j` of a text is:
//!
//! - for `j < pivots`: the round trip through pivot `j` (`--pivot spa,cat`: Spanish, then
//!   Catalan);
//! - beyond: the round trip through pivot `j mod pivots`, then one EDA operation (synonym
//!   replacement, insertion, swap or deletion, drawn at random, at [`EdaConfig`]'s rates, EDA's
//!   cleaning included: lowercase, letters only) from the text's own generator (seeded from the
//!   seed and the text's position, as `kiln augment` seeds EDA), so they need WordNet.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::eda::{apply, EdaConfig, Operation};
use crate::error::{AugmentError, Result};
use crate::translate::{back_translate, Translator};
use crate::wordnet::WordNet;

/// The generator seed of text `position` under `seed` (the stream `kiln augment` and
/// kiln-classify's views use: texts do not depend on the texts before them).
pub fn text_seed(seed: u64, position: usize) -> u64 {
    seed ^ (position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Back-translation settings.
#[derive(Clone, Copy)]
pub struct BackTranslation<'a> {
    /// The translator (e.g. [`crate::apertium::Apertium`]).
    pub translator: &'a dyn Translator,
    /// Language of the texts (`eng`).
    pub source: &'a str,
    /// Pivot languages, one round trip each (`spa`, `cat`, ...).
    pub pivots: &'a [String],
    /// Rates of the EDA operation added to variants beyond one per pivot.
    pub eda: EdaConfig,
    /// WordNet, for variants beyond one per pivot.
    pub wordnet: Option<&'a WordNet>,
}

/// What [`BackTranslation::variants`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct Variants {
    /// `k` variants per text, in text order (empty strings for a blank text).
    pub texts: Vec<Vec<String>>,
    /// Round trips made (non-blank texts times pivots used).
    pub round_trips: usize,
    /// Round trips that came back identical to their text (whitespace aside).
    pub unchanged: usize,
}

fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl BackTranslation<'_> {
    /// One round trip per pivot: `out[p][i]` is text `i` through pivot `p`. Blank texts are
    /// not sent to the translator and come back empty.
    pub fn round_trips(&self, texts: &[String]) -> Result<Vec<Vec<String>>> {
        self.round_trips_through(texts, self.pivots)
    }

    fn round_trips_through(&self, texts: &[String], pivots: &[String]) -> Result<Vec<Vec<String>>> {
        let filled: Vec<usize> = (0..texts.len())
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        let to_send: Vec<String> = filled.iter().map(|&i| texts[i].clone()).collect();
        pivots
            .iter()
            .map(|pivot| -> Result<Vec<String>> {
                let back = if to_send.is_empty() {
                    Vec::new()
                } else {
                    back_translate(self.translator, &to_send, self.source, pivot)?
                };
                let mut out = vec![String::new(); texts.len()];
                for (&i, text) in filled.iter().zip(back) {
                    out[i] = text;
                }
                Ok(out)
            })
            .collect()
    }

    /// `k` variants of each text (see the module's documentation); text `i` draws its EDA
    /// operations from the generator of position `first + i` under `seed`.
    pub fn variants(
        &self,
        texts: &[String],
        k: usize,
        seed: u64,
        first: usize,
    ) -> Result<Variants> {
        if self.pivots.is_empty() {
            return Err(AugmentError::Invalid(
                "back-translation needs at least one pivot language".into(),
            ));
        }
        if k == 0 {
            return Err(AugmentError::Invalid(
                "variants per text must be at least 1".into(),
            ));
        }
        self.eda.check()?;
        let used = k.min(self.pivots.len());
        let wordnet = match self.wordnet {
            Some(wordnet) => Some(wordnet),
            None if k > used => {
                return Err(AugmentError::Invalid(format!(
                    "{k} back-translated variants per text through {used} pivot(s): the variants beyond one per pivot add an EDA operation, which needs WordNet (scripts/fetch_wordnet.sh), or give more pivots"
                )))
            }
            None => None,
        };
        let trips = self.round_trips_through(texts, &self.pivots[..used])?;
        let mut round_trips = 0;
        let mut unchanged = 0;
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                out.push(vec![String::new(); k]);
                continue;
            }
            let original = normalized(text);
            for trip in &trips {
                round_trips += 1;
                if normalized(&trip[i]) == original {
                    unchanged += 1;
                }
            }
            let mut rng = StdRng::seed_from_u64(text_seed(seed, first + i));
            let mut variants = Vec::with_capacity(k);
            for j in 0..k {
                let base = &trips[j % used][i];
                if j < used {
                    variants.push(base.clone());
                    continue;
                }
                let operation = [
                    Operation::Synonym,
                    Operation::Insert,
                    Operation::Swap,
                    Operation::Delete,
                ][rng.random_range(0..4usize)];
                variants.push(apply(operation, base, &self.eda, wordnet, &mut rng)?);
            }
            out.push(variants);
        }
        Ok(Variants {
            texts: out,
            round_trips,
            unchanged,
        })
    }
}
