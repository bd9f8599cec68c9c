//! Frozen-encoder features: every text (and every augmentation of it) embedded once.
//!
//! With the encoder frozen, a text's embedding never changes during training, so the
//! training set is a table of embeddings and each example points at its rows: the original
//! text's and its augmentations'. Augmented views are drawn before training (EDA, `per_text`
//! per text, one generator per text from the seed and the text's position, as `kiln augment`
//! does) and embedded with the originals in one length-sorted pass.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use kiln_augment::eda::{eda, EdaConfig};
use kiln_augment::wordnet::WordNet;
use kiln_text::TextEncoder;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{ClassifyError, Result};

/// EDA settings for the augmented views.
#[derive(Debug, Clone, Copy)]
pub struct EdaViews<'a> {
    /// The WordNet database (synonyms).
    pub wordnet: &'a WordNet,
    /// EDA's rates.
    pub config: EdaConfig,
    /// Augmented views per text.
    pub per_text: usize,
    /// Seed: the same seed and texts give the same views.
    pub seed: u64,
}

impl EdaViews<'_> {
    /// `per_text` EDA views of each text; text `i` uses its own generator, seeded from the
    /// seed and `i + offset` (so labelled and unlabelled texts get distinct streams).
    pub fn views(&self, texts: &[String], offset: usize) -> Result<Vec<Vec<String>>> {
        if self.per_text == 0 {
            return Err(ClassifyError::Invalid(
                "augmented views per text must be at least 1".into(),
            ));
        }
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let stream = (i + offset) as u64;
                let mut rng =
                    StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut views = eda(text, &self.config, self.per_text, self.wordnet, &mut rng)?;
                // EDA can leave a one-word text with nothing to change: keep the text itself.
                views.retain(|v| !v.trim().is_empty());
                if views.is_empty() {
                    views.push(text.clone());
                }
                Ok(views)
            })
            .collect()
    }
}

/// Distinct texts, each with a row number, in first-seen order.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    texts: Vec<String>,
    rows: HashMap<String, usize>,
}

impl TextTable {
    /// The row of `text`, adding it if new.
    pub fn row(&mut self, text: &str) -> usize {
        if let Some(&row) = self.rows.get(text) {
            return row;
        }
        self.texts.push(text.to_string());
        self.rows.insert(text.to_string(), self.texts.len() - 1);
        self.texts.len() - 1
    }

    /// The texts, by row.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Embeds every text with `encoder` (through `cache` when given: only texts it lacks),
    /// telling `on_new(n)` how many texts will be embedded and `progress(n)` after each batch.
    pub fn embed<B: Backend>(
        &self,
        encoder: &TextEncoder<B>,
        cache: Option<&mut FeatureCache>,
        on_new: impl FnOnce(usize),
        progress: impl FnMut(usize),
    ) -> Result<Features> {
        match cache {
            Some(cache) => cache.features(encoder, &self.texts, on_new, progress),
            None => {
                on_new(self.texts.len());
                let rows = encoder.embed_with_progress(&self.texts, progress)?;
                Ok(Features::new(encoder.dim(), rows.concat()))
            }
        }
    }
}

/// A table of feature rows, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    dim: usize,
    values: Vec<f32>,
}

impl Features {
    /// `values.len() / dim` rows of width `dim`.
    ///
    /// # Panics
    /// If `dim` is 0 or does not divide `values.len()`.
    pub fn new(dim: usize, values: Vec<f32>) -> Self {
        assert!(
            dim > 0 && values.len().is_multiple_of(dim),
            "rows of width {dim}"
        );
        Self { dim, values }
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Row-major values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Fails if any value is NaN or infinite.
    pub fn check_finite(&self) -> Result<()> {
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(ClassifyError::Invalid(format!(
                "feature row {} holds a non-finite value",
                i / self.dim
            )));
        }
        Ok(())
    }
}

/// Embeddings saved across runs: a safetensors file per encoder configuration, holding the
/// feature rows (`features`, `[N, D]` f32) and, in its metadata, the texts in row order and the
/// encoder key they were computed with. Runs on the same texts (other seeds, other methods, the
/// same evaluation set) then embed only what is new.
pub struct FeatureCache {
    path: std::path::PathBuf,
    key: String,
    dim: usize,
    texts: Vec<String>,
    values: Vec<f32>,
    rows: HashMap<String, usize>,
    added: bool,
}

/// `dir/<stem>-<hash of key>.<extension>`: a cache file per key (the file holds its key too,
/// checked when read).
pub(crate) fn keyed_file(
    dir: &std::path::Path,
    stem: &str,
    key: &str,
    extension: &str,
) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    dir.join(format!("{stem}-{:016x}.{extension}", hasher.finish()))
}

impl FeatureCache {
    /// The cache for `key` (an encoder's [`crate::EncoderRef::cache_key`]) in `dir`: read if
    /// the file exists (it must hold this key and width), else empty.
    pub fn open(dir: &std::path::Path, key: &str, dim: usize) -> Result<Self> {
        let path = keyed_file(dir, "features", key, "safetensors");
        let mut cache = Self {
            path,
            key: key.to_string(),
            dim,
            texts: Vec::new(),
            values: Vec::new(),
            rows: HashMap::new(),
            added: false,
        };
        if cache.path.exists() {
            cache.read()?;
        }
        Ok(cache)
    }

    fn read(&mut self) -> Result<()> {
        let corrupt = |m: String| {
            ClassifyError::Invalid(format!(
                "feature cache {}: {m} (delete it to start afresh)",
                self.path.display()
            ))
        };
        let bytes = std::fs::read(&self.path).map_err(|e| ClassifyError::io(&self.path, e))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("kiln_feature_cache").map(String::as_str) != Some(self.key.as_str()) {
            return Err(corrupt("made with another encoder configuration".into()));
        }
        let texts: Vec<String> = serde_json::from_str(meta.get("texts").map_or("", String::as_str))
            .map_err(|e| corrupt(format!("texts: {e}")))?;
        let file =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let view = file
            .tensor("features")
            .map_err(|e| corrupt(e.to_string()))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != [texts.len(), self.dim] {
            return Err(corrupt(format!(
                "features are {:?} {:?}, expected F32 [{}, {}]",
                view.dtype(),
                view.shape(),
                texts.len(),
                self.dim
            )));
        }
        self.values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        self.rows = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        self.texts = texts;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Texts held.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether the cache holds no text.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The features of `texts`, embedding with `encoder` only those not cached yet
    /// (`on_new(n)` is told how many, `progress(n)` after each batch).
    pub fn features<B: Backend>(
        &mut self,
        encoder: &TextEncoder<B>,
        texts: &[String],
        on_new: impl FnOnce(usize),
        progress: impl FnMut(usize),
    ) -> Result<Features> {
        if encoder.dim() != self.dim {
            return Err(ClassifyError::Invalid(format!(
                "feature cache holds {}-dimensional rows, the encoder makes {}",
                self.dim,
                encoder.dim()
            )));
        }
        let mut new: Vec<String> = texts
            .iter()
            .filter(|t| !self.rows.contains_key(*t))
            .cloned()
            .collect();
        new.sort();
        new.dedup();
        on_new(new.len());
        if !new.is_empty() {
            let rows = encoder.embed_with_progress(&new, progress)?;
            for (text, row) in new.into_iter().zip(rows) {
                self.rows.insert(text.clone(), self.texts.len());
                self.texts.push(text);
                self.values.extend(row);
            }
            self.added = true;
        }
        let mut values = Vec::with_capacity(texts.len() * self.dim);
        for text in texts {
            let r = self.rows[text];
            values.extend_from_slice(&self.values[r * self.dim..(r + 1) * self.dim]);
        }
        Ok(Features::new(self.dim, values))
    }

    /// Writes the file (atomically) if texts were added since it was read.
    pub fn save(&self) -> Result<()> {
        if !self.added {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ClassifyError::io(dir, e))?;
        }
        let bytes: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![self.texts.len(), self.dim],
            &bytes,
        )
        .map_err(|e| ClassifyError::Invalid(format!("feature cache: {e}")))?;
        let texts = serde_json::to_string(&self.texts)
            .map_err(|e| ClassifyError::Invalid(format!("feature cache: {e}")))?;
        let meta = HashMap::from([
            ("kiln_feature_cache".to_string(), self.key.clone()),
            ("texts".to_string(), texts),
        ]);
        let out = safetensors::serialize([("features", view)], Some(meta))
            .map_err(|e| ClassifyError::Invalid(format!("feature cache: {e}")))?;
        kiln::weights::write_atomic(&self.path, &out)?;
        Ok(())
    }
}
