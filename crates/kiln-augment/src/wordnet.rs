//! WordNet 3.0 synonyms, read from the database files (`data.noun`, `data.verb`, `data.adj`,
//! `data.adv`, and the `*.exc` exception lists) that Debian's `wordnet-base` ships
//! (`scripts/fetch_wordnet.sh`). Lookups go through WordNet's own morphology ("morphy"): the
//! exception lists, then the detachment rules of `morph.c`, so `cars` finds `car` and `ran`
//! finds `run`, as NLTK's `wordnet.synsets` does.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::{AugmentError, Result};

/// The four parts of speech and their files.
const PARTS: [(&str, &str); 4] = [
    ("noun", "data.noun"),
    ("verb", "data.verb"),
    ("adj", "data.adj"),
    ("adv", "data.adv"),
];

/// WordNet's detachment rules (morph.c), per part of speech: `(suffix, replacement)`.
const RULES: [&[(&str, &str)]; 4] = [
    &[
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    &[
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ],
    &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    &[],
];

/// Synsets of WordNet 3.0 and the lemmas in each.
#[derive(Debug, Clone)]
pub struct WordNet {
    /// Members of each synset, in file order (multi-word lemmas with spaces).
    synsets: Vec<Vec<String>>,
    /// `lemma -> synset indices`, per part of speech (lowercase lemmas).
    index: [HashMap<String, Vec<usize>>; 4],
    /// `inflected form -> base forms`, per part of speech.
    exceptions: [HashMap<String, Vec<String>>; 4],
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| AugmentError::WordNet {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl WordNet {
    /// Reads the database files in `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut synsets = Vec::new();
        let mut index: [HashMap<String, Vec<usize>>; 4] = Default::default();
        let mut exceptions: [HashMap<String, Vec<String>>; 4] = Default::default();
        for (pos, (name, file)) in PARTS.iter().enumerate() {
            let path = dir.join(file);
            let text = read(&path)?;
            for (n, line) in text.lines().enumerate() {
                // The licence header lines start with two spaces.
                if line.starts_with("  ") || line.is_empty() {
                    continue;
                }
                let bad = |message: &str| AugmentError::Parse {
                    path: path.clone(),
                    line: n + 1,
                    message: message.to_string(),
                };
                // offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id ...] ...
                let fields: Vec<&str> = line.split_ascii_whitespace().collect();
                let count = fields
                    .get(3)
                    .and_then(|c| usize::from_str_radix(c, 16).ok())
                    .ok_or_else(|| bad("no word count"))?;
                if fields.len() < 4 + 2 * count {
                    return Err(bad("fewer words than the word count says"));
                }
                let members: Vec<String> = (0..count)
                    .map(|i| {
                        let word = fields[4 + 2 * i];
                        // Adjective markers: `word(a)`, `word(p)`, `word(ip)`.
                        let word = word.split('(').next().unwrap_or(word);
                        word.replace('_', " ")
                    })
                    .collect();
                let id = synsets.len();
                for member in &members {
                    let entry = index[pos].entry(member.to_lowercase()).or_default();
                    if entry.last() != Some(&id) {
                        entry.push(id);
                    }
                }
                synsets.push(members);
            }
            let exc = dir.join(format!("{name}.exc"));
            for line in read(&exc)?.lines() {
                let mut words = line.split_ascii_whitespace();
                if let Some(inflected) = words.next() {
                    exceptions[pos]
                        .entry(inflected.replace('_', " "))
                        .or_default()
                        .extend(words.map(|w| w.replace('_', " ")));
                }
            }
        }
        if synsets.is_empty() {
            return Err(AugmentError::WordNet {
                path: dir.to_path_buf(),
                message: "no synsets found".into(),
            });
        }
        Ok(Self {
            synsets,
            index,
            exceptions,
        })
    }

    /// Number of synsets (117,659 in WordNet 3.0).
    pub fn num_synsets(&self) -> usize {
        self.synsets.len()
    }

    /// The base forms of `word` that WordNet knows, per WordNet's morphy: the word itself, its
    /// exception-list bases, and the detachment rules' results, for every part of speech.
    pub fn lemmas(&self, word: &str) -> Vec<String> {
        let word = word.to_lowercase();
        let mut out: Vec<String> = Vec::new();
        let push = |lemma: String, out: &mut Vec<String>| {
            if !out.contains(&lemma) {
                out.push(lemma);
            }
        };
        for (pos, rules) in RULES.iter().enumerate() {
            if self.index[pos].contains_key(&word) {
                push(word.clone(), &mut out);
            }
            if let Some(bases) = self.exceptions[pos].get(&word) {
                for base in bases.iter().filter(|b| self.index[pos].contains_key(*b)) {
                    push(base.clone(), &mut out);
                }
            }
            for (suffix, replacement) in rules.iter() {
                if let Some(stem) = word.strip_suffix(suffix) {
                    let base = format!("{stem}{replacement}");
                    if !stem.is_empty() && self.index[pos].contains_key(&base) {
                        push(base, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Synonyms of `word`: every lemma of every synset of its base forms, other than the word
    /// itself, in WordNet's order (first synset first), without duplicates. Multi-word lemmas
    /// come with spaces.
    pub fn synonyms(&self, word: &str) -> Vec<String> {
        let lower = word.to_lowercase();
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for lemma in self.lemmas(&lower) {
            for pos in 0..4 {
                for &id in self.index[pos].get(&lemma).into_iter().flatten() {
                    for member in &self.synsets[id] {
                        let m = member.to_lowercase();
                        if m != lower && seen.insert(m.clone()) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }
}
