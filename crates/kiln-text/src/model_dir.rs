//! [`ModelDir`]: what a Hugging Face / sentence-transformers model directory holds.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, TextError};
use crate::json::read_json;
use crate::pooling::PoolingConfig;

/// What a model directory holds, resolved to paths and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The pooling (from `1_Pooling/config.json`, or mean for a plain Hugging Face model).
    pub pooling: PoolingConfig,
    /// Whether `modules.json` lists `Normalize`.
    pub normalize: bool,
    /// `max_seq_length` of `sentence_bert_config.json`, if given.
    pub max_seq_length: Option<usize>,
    /// `do_lower_case` of `sentence_bert_config.json`.
    pub lowercase: bool,
}

fn required(dir: &Path, file: &str, why: &'static str) -> Result<PathBuf> {
    let path = dir.join(file);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        // There, but not a file: say what it is rather than "missing".
        Ok(meta) => Err(TextError::Input(format!(
            "{}: {why} is {}, not a file",
            path.display(),
            if meta.is_dir() {
                "a directory"
            } else {
                "a FIFO, socket or device"
            }
        ))),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TextError::Input(format!(
            "{}: {why} cannot be read ({e})",
            path.display()
        ))),
        Err(_) => Err(TextError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.to_string(),
            why,
        }),
    }
}

/// A module's `path` from `modules.json`, kept inside the model directory: a relative path
/// with no `..`, root or drive (a hostile `../../etc` is refused, never followed).
pub fn module_subdir(modules_json: &Path, sub: &str) -> Result<PathBuf> {
    use std::path::Component;
    let path = Path::new(sub);
    if path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(path.to_path_buf())
    } else {
        Err(TextError::Config {
            path: modules_json.to_path_buf(),
            reason: format!(
                "module path {sub:?} leaves the model directory (expected a folder inside it, like 1_Pooling)"
            ),
        })
    }
}

impl ModelDir {
    /// Inspects a Hugging Face or sentence-transformers model directory.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(TextError::Input(format!(
                "{}: not a model directory",
                dir.display()
            )));
        }
        let mut found = Self {
            dir: dir.to_path_buf(),
            config: required(dir, "config.json", "the architecture")?,
            weights: required(dir, "model.safetensors", "the weights")?,
            tokenizer: required(dir, "tokenizer.json", "the tokenizer")?,
            pooling: PoolingConfig::default(),
            normalize: false,
            max_seq_length: None,
            lowercase: false,
        };
        let modules_path = dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Value = read_json(&modules_path)?;
            let list = modules.as_array().ok_or_else(|| TextError::Config {
                path: modules_path.clone(),
                reason: "expected a list of modules".into(),
            })?;
            for module in list {
                let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
                let sub = module.get("path").and_then(Value::as_str).unwrap_or("");
                match kind.rsplit('.').next().unwrap_or("") {
                    "Transformer" => {}
                    "Pooling" => {
                        let file = module_subdir(&modules_path, sub)?.join("config.json");
                        let path = required(
                            dir,
                            &file.to_string_lossy(),
                            "the pooling listed in modules.json",
                        )?;
                        found.pooling = PoolingConfig::from_json_file(&path)?;
                    }
                    "Normalize" => found.normalize = true,
                    _ => {
                        return Err(TextError::Unsupported {
                            path: modules_path,
                            what: "sentence-transformers module",
                            value: kind.to_string(),
                            supported: "kiln-text runs Transformer, Pooling and Normalize modules",
                        })
                    }
                }
            }
        }
        let st_config = dir.join("sentence_bert_config.json");
        if st_config.is_file() {
            let json: Value = read_json(&st_config)?;
            found.max_seq_length = json
                .get("max_seq_length")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            found.lowercase = json
                .get("do_lower_case")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        Ok(found)
    }
}
