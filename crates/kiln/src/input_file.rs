//! Reading an input file: only regular files, each kind with a size limit, so a FIFO never
//! hangs a load and `/dev/zero` or a huge file given by mistake is refused before it is read.

use std::io::Read;
use std::path::Path;

use crate::error::{KilnError, Result};

/// The most a JSON file (a config, a tokenizer's side files) may hold: 64 MiB. Real ones are
/// kilobytes; a tokenizer.json is a few MiB.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Reads the whole regular file at `path`, refusing anything else (a directory, a FIFO, a
/// device) and a file over `max_bytes` (then also the memory budget, [`crate::memory`]).
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let invalid = |reason: String| {
        KilnError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, reason),
        )
    };
    let len = check_regular(path)?;
    if len > max_bytes {
        return Err(invalid(format!(
            "is {}, over the {} this kind of file may hold",
            crate::memory::human_bytes(len as u128),
            crate::memory::human_bytes(max_bytes as u128)
        )));
    }
    crate::memory::check_fits(&format!("reading {}", path.display()), len as u128)?;
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|e| KilnError::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(invalid("grew while being read".into()));
    }
    Ok(bytes)
}

/// The length of the regular file at `path`, found without opening it (opening a FIFO blocks);
/// a directory, FIFO, socket or device is an error.
pub fn check_regular(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| KilnError::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(KilnError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("is {kind}, expected a file"),
            ),
        ));
    }
    Ok(meta.len())
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> Result<String> {
    let bytes = read_regular(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        KilnError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text ({e})"),
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"{}").unwrap();
        assert_eq!(read_regular(&file, 2).unwrap(), b"{}");
        let err = read_regular(&file, 1).unwrap_err().to_string();
        assert!(err.contains("over the"), "{err}");
        let err = read_regular(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        #[cfg(unix)]
        {
            let err = read_regular(Path::new("/dev/zero"), u64::MAX)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}
