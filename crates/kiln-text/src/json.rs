//! Reading the JSON files of a model directory, with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Result, TextError};

/// Reads and parses the JSON file at `path` (I/O errors and parse errors name it).
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = kiln::input_file::read_regular_text(path, kiln::input_file::MAX_JSON_BYTES)?;
    serde_json::from_str(&text).map_err(|e| TextError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
