//! Helpers the commands share: reading text lines, checking that outputs stay clear of inputs,
//! progress bars, and where WordNet lives.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

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
        check_whole_input_file(path)?;
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

/// Calls `each(index, line, bytes read)` for every line of `path` (`-`: stdin) as it is read,
/// with [`read_lines`]'s rules (invalid UTF-8 names the line; no lines is an error), for work
/// that streams.
pub fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str, usize) -> Result<()>,
) -> Result<()> {
    use std::io::BufRead;
    let name = path.display();
    let mut reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        check_input_file(path)?;
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot read {name}"))?,
        ))
    };
    let mut buf = Vec::new();
    let mut index = 0;
    loop {
        buf.clear();
        let bytes = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {name}"))?;
        if bytes == 0 {
            break;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line)
            .map_err(|e| usage(format!("{name} line {}: invalid UTF-8 ({e})", index + 1)))?;
        each(index, text, bytes)?;
        index += 1;
    }
    if index == 0 {
        return Err(usage(format!("{name} is empty: no lines of text")));
    }
    Ok(())
}

/// An output file can be written at `path`: its folder exists and `path` is not a directory.
/// Checked before any work, so a typo in an output path costs nothing.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(usage(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(usage(format!("{flag} {}: is a directory", path.display())));
    }
    // Writable: the output is written as a temporary file in this folder and renamed.
    if let Err(e) = tempfile::Builder::new()
        .prefix(".kiln-probe.")
        .tempfile_in(parent)
    {
        return Err(usage(format!(
            "{flag} {}: cannot write in {} ({e})",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// An input path must be a regular file: a FIFO would hang the read and a device (`/dev/zero`)
/// never end it. (`-` is stdin, checked by the callers.)
pub fn check_input_file(path: &Path) -> Result<u64> {
    match kiln::input_file::check_regular(path) {
        Ok(len) => Ok(len),
        // Not found or unreadable: a runtime error; a FIFO, device or directory: a usage error.
        Err(kiln::KilnError::Io { source, .. })
            if source.kind() != std::io::ErrorKind::InvalidInput =>
        {
            Err(anyhow::Error::new(source).context(format!("cannot read {}", path.display())))
        }
        Err(e) => Err(usage(format!("{e} (use - for stdin)"))),
    }
}

/// [`check_input_file`] for a file read whole: it must also fit the memory budget.
pub fn check_whole_input_file(path: &Path) -> Result<()> {
    let len = check_input_file(path)?;
    kiln::memory::check_fits(&format!("reading {}", path.display()), len as u128)?;
    Ok(())
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

/// WordNet from [`wordnet_dir`] (`--wordnet`, else `$KILN_WORDNET`, else `.cache/wordnet`),
/// loaded when `needed`; the error names the folder.
pub fn load_wordnet_if(
    needed: bool,
    given: Option<&PathBuf>,
) -> Result<Option<kiln_augment::wordnet::WordNet>> {
    if !needed {
        return Ok(None);
    }
    let dir = wordnet_dir(given);
    kiln_augment::wordnet::WordNet::load(&dir)
        .map(Some)
        .with_context(|| format!("cannot load WordNet from {}", dir.display()))
}

/// `--wordnet`, else `$KILN_WORDNET`, else `.cache/wordnet`.
pub fn wordnet_dir(given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .or_else(|| std::env::var_os("KILN_WORDNET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".cache/wordnet"))
}

/// A progress bar on stderr with indicatif's `template`: drawn in place on a terminal, and
/// elsewhere (a log file, CI) printed as a `kiln: ` line every [`LOG_EVERY`], so long work
/// shows its progress and ETA either way.
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(PeriodicLines::default()), 1)
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// How often a progress line is printed when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// indicatif's "terminal" for a stderr that is not one: each draw is a line of its own, at most
/// one per [`LOG_EVERY`] (the first after one period: short work prints nothing).
#[derive(Debug)]
struct PeriodicLines {
    last: Mutex<Instant>,
}

impl Default for PeriodicLines {
    fn default() -> Self {
        Self {
            last: Mutex::new(Instant::now()),
        }
    }
}

impl TermLike for PeriodicLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(line)
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            // Only the counts and rates: the bar's blocks mean nothing in a log.
            let text = text.trim_start_matches(['█', '░', '▉', '▊', '▋', '▌', '▍', '▎', '▏', ' ']);
            eprintln!("kiln: {text}");
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}
