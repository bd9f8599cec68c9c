//! EDA, "Easy Data Augmentation" (Wei & Zou 2019): synonym replacement, random insertion,
//! random swap and random deletion on whitespace-separated words, following the authors'
//! reference code (`eda.py`): texts are lowercased and reduced to letters and spaces first,
//! stop words are never replaced, `n = max(1, alpha * words)` changes per operation.
//! Every operation takes the random generator explicitly: same seed, same output.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use crate::chunked_list::ChunkedList;
use crate::error::{AugmentError, Result};
use crate::wordnet::WordNet;

/// The stop words EDA never replaces (the list in the authors' `eda.py`).
pub const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
    "",
];

/// EDA's cleaning: lowercase, `’'` removed, `-`, tabs and newlines to spaces, everything but
/// `a-z` and spaces dropped, runs of spaces collapsed.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        match c {
            '\'' | '’' => {}
            '-' | '\t' | '\n' | ' ' => out.push(' '),
            'a'..='z' => out.push(c),
            _ => out.push(' '),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The words of a cleaned text.
pub fn words(text: &str) -> Vec<String> {
    clean(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn is_stop(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Replaces up to `n` distinct non-stop words (in random order) that have WordNet synonyms,
/// each occurrence of a chosen word by one synonym drawn at random.
pub fn synonym_replacement(
    words: &[String],
    n: usize,
    wordnet: &WordNet,
    rng: &mut impl Rng,
) -> Vec<String> {
    // Distinct non-stop words in order of first appearance (a set: linear in the line).
    let mut seen = std::collections::HashSet::new();
    let mut candidates: Vec<String> = Vec::new();
    for w in words {
        if !is_stop(w) && seen.insert(w.as_str()) {
            candidates.push(w.clone());
        }
    }
    candidates.shuffle(rng);
    // Replacements in the order drawn: word -> (its step, synonym). Applied in one pass below,
    // with the effect of replacing every occurrence step by step (a synonym that equals a word
    // replaced later is replaced again).
    let mut replacements: std::collections::HashMap<String, (usize, String)> =
        std::collections::HashMap::new();
    for word in candidates {
        if replacements.len() >= n {
            break;
        }
        let synonyms = wordnet.synonyms(&word);
        if let Some(synonym) = synonyms.choose(rng) {
            let step = replacements.len();
            replacements.insert(word, (step, synonym.clone()));
        }
    }
    let out: Vec<String> = words
        .iter()
        .map(|w| {
            let (mut current, mut next_step) = (w, 0);
            while let Some((step, synonym)) = replacements.get(current) {
                if *step < next_step {
                    break;
                }
                current = synonym;
                next_step = step + 1;
            }
            current.clone()
        })
        .collect();
    // A multi-word synonym becomes several words.
    out.join(" ").split(' ').map(String::from).collect()
}

/// Inserts `n` times a random synonym of a random word (one with synonyms; 10 tries) at a
/// random position.
pub fn random_insertion(
    words: &[String],
    n: usize,
    wordnet: &WordNet,
    rng: &mut impl Rng,
) -> Vec<String> {
    // Positional reads and inserts in O(log n): linear in the line's length, where a Vec's
    // inserts made a long line quadratic. Same draws, same result.
    let mut out = ChunkedList::from_vec(words.to_vec());
    for _ in 0..n {
        if out.is_empty() {
            break;
        }
        for _ in 0..10 {
            let word = out.get(rng.random_range(0..out.len()));
            if let Some(synonym) = wordnet.synonyms(word).choose(rng).cloned() {
                let at = rng.random_range(0..=out.len());
                for (k, part) in synonym.split(' ').enumerate() {
                    out.insert(at + k, part.to_string());
                }
                break;
            }
        }
    }
    out.into_vec()
}

/// Swaps two random words `n` times (the same multiset of words).
pub fn random_swap(words: &[String], n: usize, rng: &mut impl Rng) -> Vec<String> {
    let mut out = words.to_vec();
    if out.len() < 2 {
        return out;
    }
    for _ in 0..n {
        let i = rng.random_range(0..out.len());
        // EDA tries 3 times to draw a different second index.
        let mut j = i;
        for _ in 0..4 {
            j = rng.random_range(0..out.len());
            if j != i {
                break;
            }
        }
        out.swap(i, j);
    }
    out
}

/// Deletes each word with probability `p`; never returns an empty text (one random word stays).
/// `p = 0` is the identity.
pub fn random_deletion(words: &[String], p: f64, rng: &mut impl Rng) -> Vec<String> {
    if words.len() <= 1 || p <= 0.0 {
        return words.to_vec();
    }
    let out: Vec<String> = words
        .iter()
        .filter(|_| rng.random::<f64>() > p)
        .cloned()
        .collect();
    if out.is_empty() {
        vec![words[rng.random_range(0..words.len())].clone()]
    } else {
        out
    }
}

/// One of EDA's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Synonym replacement (`alpha_sr`).
    Synonym,
    /// Random insertion (`alpha_ri`).
    Insert,
    /// Random swap (`alpha_rs`).
    Swap,
    /// Random deletion (`p_rd`).
    Delete,
}

/// EDA's rates: the share of words each operation changes (`p_rd`: deletion probability).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdaConfig {
    /// Synonym replacement.
    pub alpha_sr: f64,
    /// Random insertion.
    pub alpha_ri: f64,
    /// Random swap.
    pub alpha_rs: f64,
    /// Random deletion probability.
    pub p_rd: f64,
}

impl EdaConfig {
    /// All four at `alpha` (the paper's recommendation: 0.1).
    pub fn uniform(alpha: f64) -> Self {
        Self {
            alpha_sr: alpha,
            alpha_ri: alpha,
            alpha_rs: alpha,
            p_rd: alpha,
        }
    }

    /// Each operation with its rate's name and value, in EDA's order.
    pub fn rates(&self) -> [(Operation, &'static str, f64); 4] {
        [
            (Operation::Synonym, "alpha_sr", self.alpha_sr),
            (Operation::Insert, "alpha_ri", self.alpha_ri),
            (Operation::Swap, "alpha_rs", self.alpha_rs),
            (Operation::Delete, "p_rd", self.p_rd),
        ]
    }

    /// Fails unless every rate is in `[0, 1]` (naming the first that is not).
    pub fn check(&self) -> Result<()> {
        for (_, name, v) in self.rates() {
            if !(0.0..=1.0).contains(&v) {
                return Err(AugmentError::Invalid(format!(
                    "{name} {v} must be in [0, 1]"
                )));
            }
        }
        Ok(())
    }
}

impl Default for EdaConfig {
    fn default() -> Self {
        Self::uniform(0.1)
    }
}

fn changes(alpha: f64, words: usize) -> usize {
    ((alpha * words as f64) as usize).max(1)
}

/// One operation applied to `text` (cleaned as EDA does) with the rate of `config` it uses.
pub fn apply(
    operation: Operation,
    text: &str,
    config: &EdaConfig,
    wordnet: Option<&WordNet>,
    rng: &mut impl Rng,
) -> Result<String> {
    config.check()?;
    let w = words(text);
    let need = || {
        wordnet.ok_or_else(|| {
            AugmentError::Invalid(format!(
                "{operation:?} needs WordNet (scripts/fetch_wordnet.sh)"
            ))
        })
    };
    let out = match operation {
        Operation::Synonym => {
            synonym_replacement(&w, changes(config.alpha_sr, w.len()), need()?, rng)
        }
        Operation::Insert => random_insertion(&w, changes(config.alpha_ri, w.len()), need()?, rng),
        Operation::Swap => random_swap(&w, changes(config.alpha_rs, w.len()), rng),
        Operation::Delete => random_deletion(&w, config.p_rd, rng),
    };
    Ok(out.join(" "))
}

/// EDA as in the paper: `num_aug` augmented texts drawn evenly from the four operations
/// (`num_aug / 4 + 1` each, shuffled, the first `num_aug` kept); operations whose rate is 0 are
/// skipped.
pub fn eda(
    text: &str,
    config: &EdaConfig,
    num_aug: usize,
    wordnet: &WordNet,
    rng: &mut impl Rng,
) -> Result<Vec<String>> {
    config.check()?;
    let per_op = num_aug / 4 + 1;
    let mut out = Vec::new();
    for (operation, _, rate) in config.rates() {
        if rate > 0.0 {
            for _ in 0..per_op {
                out.push(apply(operation, text, config, Some(wordnet), rng)?);
            }
        }
    }
    out.shuffle(rng);
    out.truncate(num_aug);
    Ok(out)
}
