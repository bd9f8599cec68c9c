//! Labelled and unlabelled text files, and the label set.
//!
//! A labelled file holds one example per line, `label<TAB>text` (the first tab splits; the text
//! may hold further tabs). Blank lines are skipped. An unlabelled file holds one text per line.

use std::path::Path;

use crate::error::{ClassifyError, Result};

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledText {
    /// The label's name.
    pub label: String,
    /// The text.
    pub text: String,
}

/// A regular file's text; invalid UTF-8 is an error naming the line.
fn read_text_file(path: &Path) -> Result<String> {
    let bytes = kiln::input_file::read_regular(path, u64::MAX)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ClassifyError::Parse {
            path: path.to_path_buf(),
            line,
            message: "invalid UTF-8".into(),
        }
    })
}

/// Reads a `label<TAB>text` file; an error names the file and line.
pub fn read_labeled(path: impl AsRef<Path>) -> Result<Vec<LabeledText>> {
    let path = path.as_ref();
    let content = read_text_file(path)?;
    parse_labeled(&content, path)
}

/// Parses `label<TAB>text` lines; `path` is only used in error messages.
pub fn parse_labeled(content: &str, path: &Path) -> Result<Vec<LabeledText>> {
    let mut examples = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: &str| ClassifyError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: message.to_string(),
        };
        let (label, text) = line
            .split_once('\t')
            .ok_or_else(|| error("expected `label<TAB>text`, found no tab"))?;
        let (label, text) = (label.trim(), text.trim());
        if label.is_empty() {
            return Err(error("empty label"));
        }
        if text.is_empty() {
            return Err(error("empty text"));
        }
        examples.push(LabeledText {
            label: label.to_string(),
            text: text.to_string(),
        });
    }
    if examples.is_empty() {
        return Err(ClassifyError::Invalid(format!(
            "{}: no labelled examples (expected `label<TAB>text` lines)",
            path.display()
        )));
    }
    Ok(examples)
}

/// Reads one text per line, skipping blank lines.
pub fn read_texts(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let content = read_text_file(path)?;
    Ok(content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The classes, in a fixed order (sorted by name): class `i` is output `i` of the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    names: Vec<String>,
}

impl LabelSet {
    /// The sorted distinct labels of `examples`; at least two are needed to classify.
    pub fn from_examples(examples: &[LabeledText]) -> Result<Self> {
        let mut names: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
        names.sort();
        names.dedup();
        Self::new(names)
    }

    /// The given labels, in order; they must be distinct and at least two.
    pub fn new(names: Vec<String>) -> Result<Self> {
        if names.len() < 2 {
            return Err(ClassifyError::Invalid(format!(
                "need at least two classes, found {} ({})",
                names.len(),
                names.join(", ")
            )));
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != names.len() {
            return Err(ClassifyError::Invalid("labels must be distinct".into()));
        }
        Ok(Self { names })
    }

    /// The labels, class index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true (a label set has at least two classes).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of `label`, if it is one of the classes.
    pub fn index(&self, label: &str) -> Option<usize> {
        self.names.iter().position(|n| n == label)
    }

    /// The class indices of `examples`; an error names the first label that is not a class.
    pub fn indices(&self, examples: &[LabeledText]) -> Result<Vec<usize>> {
        examples
            .iter()
            .map(|e| {
                self.index(&e.label).ok_or_else(|| {
                    ClassifyError::Invalid(format!(
                        "label `{}` is not one of the classifier's classes ({})",
                        e.label,
                        self.names.join(", ")
                    ))
                })
            })
            .collect()
    }
}
