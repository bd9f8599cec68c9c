//! Translations saved across runs: back-translation is the slow part of building augmented
//! views (Apertium runs at a few hundred lines a second; embedding a view is cheaper), and a
//! rule-based translator gives the same translation of a text every time, so each text is
//! translated once per direction and kept.
//!
//! [`TranslationCache`] is itself a [`Translator`]: it wraps another, answers what it holds and
//! sends only new texts on. With a directory it reads and writes
//! `translations-<hash of the key>.json` there (the key names the translator, e.g.
//! `Apertium 3.8.3`; a file made with another key is an error).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_augment::translate::Translator;
use kiln_augment::AugmentError;
use serde::{Deserialize, Serialize};

use crate::error::{ClassifyError, Result};

/// The file: the key and, per direction (`eng>spa`), each text's translation.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    kiln_translation_cache: String,
    translations: BTreeMap<String, BTreeMap<String, String>>,
}

/// A [`Translator`] that remembers: see the module's documentation.
pub struct TranslationCache<'a> {
    translator: &'a dyn Translator,
    path: Option<PathBuf>,
    file: RefCell<CacheFile>,
    looked_up: Cell<usize>,
    translated: Cell<usize>,
}

impl<'a> TranslationCache<'a> {
    /// A cache in front of `translator`, keyed by `key`: read from `dir` if given and the file
    /// exists, else empty (and in memory only without `dir`).
    pub fn open(dir: Option<&Path>, key: &str, translator: &'a dyn Translator) -> Result<Self> {
        let path = dir.map(|dir| crate::features::keyed_file(dir, "translations", key, "json"));
        let mut file = CacheFile {
            kiln_translation_cache: key.to_string(),
            translations: BTreeMap::new(),
        };
        if let Some(path) = path.as_ref().filter(|p| p.exists()) {
            let corrupt = |m: String| {
                ClassifyError::Invalid(format!(
                    "translation cache {}: {m} (delete it to start afresh)",
                    path.display()
                ))
            };
            let bytes = std::fs::read(path).map_err(|e| ClassifyError::io(path, e))?;
            let read: CacheFile =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if read.kiln_translation_cache != key {
                return Err(corrupt(format!(
                    "made with {}, not {key}",
                    read.kiln_translation_cache
                )));
            }
            file = read;
        }
        Ok(Self {
            translator,
            path,
            file: RefCell::new(file),
            looked_up: Cell::new(0),
            translated: Cell::new(0),
        })
    }

    /// The file, when the cache has a directory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Texts asked for since [`Self::open`], in all directions.
    pub fn looked_up(&self) -> usize {
        self.looked_up.get()
    }

    /// Texts the wrapped translator was asked to translate since [`Self::open`] (the others
    /// came from the cache).
    pub fn translated(&self) -> usize {
        self.translated.get()
    }

    /// Writes the file (atomically) if the cache has a directory and texts were translated
    /// since it was read.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.translated.get() == 0 {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ClassifyError::io(dir, e))?;
        }
        let bytes = serde_json::to_vec(&*self.file.borrow())
            .map_err(|e| ClassifyError::Invalid(format!("translation cache: {e}")))?;
        kiln::weights::write_atomic(path, &bytes)?;
        Ok(())
    }
}

impl Translator for TranslationCache<'_> {
    fn translate(
        &self,
        texts: &[String],
        from: &str,
        to: &str,
    ) -> kiln_augment::Result<Vec<String>> {
        let direction = format!("{from}>{to}");
        // Each line is translated on its own, so only the texts not held yet are sent, once
        // each, in sorted order.
        let mut missing: Vec<String> = {
            let file = self.file.borrow();
            let known = file.translations.get(&direction);
            texts
                .iter()
                .filter(|t| known.is_none_or(|k| !k.contains_key(*t)))
                .cloned()
                .collect()
        };
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            let translated = self.translator.translate(&missing, from, to)?;
            if translated.len() != missing.len() {
                return Err(AugmentError::Translation(format!(
                    "{} texts in, {} out",
                    missing.len(),
                    translated.len()
                )));
            }
            self.translated.set(self.translated.get() + missing.len());
            let mut file = self.file.borrow_mut();
            let known = file.translations.entry(direction.clone()).or_default();
            known.extend(missing.into_iter().zip(translated));
        }
        self.looked_up.set(self.looked_up.get() + texts.len());
        let file = self.file.borrow();
        let known = file.translations.get(&direction);
        texts
            .iter()
            .map(|t| {
                known.and_then(|k| k.get(t)).cloned().ok_or_else(|| {
                    AugmentError::Translation(format!("no translation of {t:?} ({direction})"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases, counting the texts it is asked for.
    struct Upper(Cell<usize>);

    impl Translator for Upper {
        fn translate(
            &self,
            texts: &[String],
            _from: &str,
            _to: &str,
        ) -> kiln_augment::Result<Vec<String>> {
            self.0.set(self.0.get() + texts.len());
            Ok(texts.iter().map(|t| t.to_uppercase()).collect())
        }
    }

    #[test]
    fn only_new_texts_reach_the_translator_and_the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let upper = Upper(Cell::new(0));
        let texts: Vec<String> = ["a", "b", "a", ""].iter().map(|t| t.to_string()).collect();
        let cache = TranslationCache::open(Some(dir.path()), "upper 1", &upper).unwrap();
        assert_eq!(
            cache.translate(&texts, "en", "xx").unwrap(),
            ["A", "B", "A", ""]
        );
        assert_eq!(upper.0.get(), 3, "each distinct text once");
        assert_eq!(
            cache.translate(&texts[..2], "en", "xx").unwrap(),
            ["A", "B"]
        );
        assert_eq!(upper.0.get(), 3, "held");
        assert_eq!(cache.translate(&texts[..1], "xx", "en").unwrap(), ["A"]);
        assert_eq!(upper.0.get(), 4, "directions are kept apart");
        assert_eq!((cache.looked_up(), cache.translated()), (7, 4));
        cache.save().unwrap();

        let again = TranslationCache::open(Some(dir.path()), "upper 1", &upper).unwrap();
        assert_eq!(
            again.translate(&texts, "en", "xx").unwrap(),
            ["A", "B", "A", ""]
        );
        assert_eq!(
            (upper.0.get(), again.translated()),
            (4, 0),
            "read from the file"
        );
        // Another translator (key) has its own file.
        let other = TranslationCache::open(Some(dir.path()), "upper 2", &upper).unwrap();
        assert_ne!(other.path(), again.path());
        other.translate(&texts[..1], "en", "xx").unwrap();
        assert_eq!(other.translated(), 1);
        std::fs::write(again.path().unwrap(), b"{").unwrap();
        let err = match TranslationCache::open(Some(dir.path()), "upper 1", &upper) {
            Ok(_) => panic!("a corrupt file is refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("delete it"), "{err}");
    }
}
