//! Helpers the commands share: reading text lines, checking that outputs stay clear of inputs,
//! progress bars, and where WordNet lives.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::usage::usage;

/// Lines of a text file: one text per line (`\n` or `\r\n`), a final newline ending the last one.
/// Invalid UTF-8 is an error naming the line; so is a file with no lines.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let name = path.display();
    if bytes.is_empty() {
        return Err(usage(format!("{name} is empty: no lines of text")));
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8(line.to_vec())
                .map_err(|e| usage(format!("{name} line {}: invalid UTF-8 ({e})", i + 1)))
        })
        .collect()
}

/// Whether `path` (which may not exist yet, nor its parents) is `dir` or lies inside it: the
/// nearest existing ancestor is resolved (symlinks, `..`) and the rest appended.
pub fn inside(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let absolute = match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => return false,
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return false,
        }
    }
    let Ok(mut resolved) = existing.canonicalize() else {
        return false;
    };
    resolved.extend(rest.into_iter().rev());
    resolved.starts_with(dir)
}

/// Whether two paths name the same file (also when the second does not exist yet).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = p
            .parent()
            .filter(|x| !x.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(parent.canonicalize().ok()?.join(p.file_name()?))
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `--wordnet`, else `$KILN_WORDNET`, else `.cache/wordnet`.
pub fn wordnet_dir(given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .or_else(|| std::env::var_os("KILN_WORDNET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".cache/wordnet"))
}

/// A progress bar on stderr with indicatif's `template` (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}
