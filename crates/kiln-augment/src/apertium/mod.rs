//! [`Apertium`]: a [`Translator`] over Apertium, the rule-based machine translation system
//! Debian packages (`apt-get install apertium apertium-eng-spa`), which runs offline.
//!
//! Each batch of lines is one `apertium -f none -z MODE` process: the lines go in as
//! null-flushed chunks of Apertium's stream format and come out one chunk per line
//! ([`stream`]), so lines stay aligned whatever characters they hold, and each line is
//! translated on its own (the same line gives the same translation in any batch). Unknown-word
//! markers (`*word`, `@word`, `#word`) are removed; the word stays as it was.

pub mod languages;
pub mod stream;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{AugmentError, Result};
use crate::translate::Translator;

/// Lines per Apertium process unless set with [`Apertium::with_batch_lines`].
pub const DEFAULT_BATCH_LINES: usize = 1_000;

/// Apertium through its `apertium` command.
#[derive(Debug)]
pub struct Apertium {
    program: PathBuf,
    data_dir: Option<PathBuf>,
    batch_lines: usize,
    modes: Mutex<Option<Vec<String>>>,
}

impl Default for Apertium {
    fn default() -> Self {
        Self::new()
    }
}

impl Apertium {
    /// The `apertium` on `PATH`, with its own data directory (`/usr/share/apertium`).
    pub fn new() -> Self {
        Self {
            program: PathBuf::from("apertium"),
            data_dir: None,
            batch_lines: DEFAULT_BATCH_LINES,
            modes: Mutex::new(None),
        }
    }

    /// Runs this program instead of `apertium` on `PATH`.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        *self.modes.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        self
    }

    /// Reads the pairs' modes from `dir/modes` (`apertium -d dir`).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        *self.modes.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        self
    }

    /// At most `lines` lines per Apertium process (at least 1). Each process loads the pair's
    /// dictionaries (about 0.3 s), so larger batches amortise that; the output does not depend
    /// on the batch size.
    pub fn with_batch_lines(mut self, lines: usize) -> Self {
        self.batch_lines = lines.max(1);
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if let Some(dir) = &self.data_dir {
            command.arg("-d").arg(dir);
        }
        command
    }

    /// The error for a program that cannot be started, naming what to install.
    fn not_started(&self, e: std::io::Error, package: &str) -> AugmentError {
        if e.kind() == std::io::ErrorKind::NotFound {
            AugmentError::Unavailable(format!(
                "apertium is not installed ({} not found): apt-get install apertium {package}",
                self.program.display()
            ))
        } else {
            AugmentError::Translation(format!("cannot run {}: {e}", self.program.display()))
        }
    }

    /// The translation directions (modes) installed, as `apertium -l` lists them; `package`
    /// is named if Apertium itself is missing.
    fn modes(&self, package: &str) -> Result<Vec<String>> {
        let mut known = self.modes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(modes) = known.as_ref() {
            return Ok(modes.clone());
        }
        let out = self
            .command()
            .arg("-l")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.not_started(e, package))?;
        if !out.status.success() {
            return Err(AugmentError::Translation(format!(
                "`{} -l` failed: {}",
                self.program.display(),
                one_line(&out.stdout, &out.stderr)
            )));
        }
        // An empty mode folder lists the unexpanded glob (`*`).
        let modes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|m| !m.is_empty() && !m.contains('*'))
            .map(String::from)
            .collect();
        *known = Some(modes.clone());
        Ok(modes)
    }

    /// The installed mode that translates `from` to `to` (ISO 639-3 or 639-1 codes: `eng`,
    /// `spa`, `en`, `es`), or an error naming the package to install.
    pub fn mode(&self, from: &str, to: &str) -> Result<String> {
        let package = languages::package(from, to);
        let modes = self.modes(&package)?;
        let names = languages::mode_names(from, to);
        if let Some(mode) = names.iter().find(|n| modes.contains(*n)) {
            return Ok(mode.clone());
        }
        let (from_name, to_name) = (languages::name(from), languages::name(to));
        let reverse = languages::mode_names(to, from);
        if let Some(reverse) = reverse.iter().find(|n| modes.contains(*n)) {
            return Err(AugmentError::Unavailable(format!(
                "Apertium has no {from_name} -> {to_name} mode ({}): the installed pair has only {reverse} ({to_name} -> {from_name}), as Debian's {package} does",
                names.join(" or ")
            )));
        }
        Err(AugmentError::Unavailable(format!(
            "the Apertium pair for {from_name} -> {to_name} is not installed (no {} mode): apt-get install {package}",
            names.join(" or ")
        )))
    }

    /// `apertium -V` (e.g. `Apertium 3.8.3`), with the data directory when one was set: what
    /// a cache of translations is keyed by.
    pub fn version(&self) -> Result<String> {
        let out = self
            .command()
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.not_started(e, "apertium-eng-spa"))?;
        if !out.status.success() {
            return Err(AugmentError::Translation(format!(
                "`{} -V` failed: {}",
                self.program.display(),
                one_line(&out.stdout, &out.stderr)
            )));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(match &self.data_dir {
            Some(dir) => format!("{version} ({})", dir.display()),
            None => version,
        })
    }

    /// One Apertium process over `lines` with `mode`.
    fn translate_batch(&self, mode: &str, package: &str, lines: &[String]) -> Result<Vec<String>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = Vec::new();
        for line in lines {
            stream::encode_line(line, &mut input);
        }
        let mut child = self
            .command()
            .args(["-f", "none", "-z", mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.not_started(e, package))?;
        // Written from a thread while this one reads: a batch larger than the pipes' buffers
        // would otherwise block both processes.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| AugmentError::Translation(format!("apertium {mode}: {e}")))?;
        let written = writer.join();
        let failed = |what: String| {
            AugmentError::Translation(format!(
                "apertium {mode} {what}: {}",
                one_line(&[], &out.stderr)
            ))
        };
        if !out.status.success() {
            return Err(failed(format!("exited with {}", out.status)));
        }
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(format!("stopped reading its input ({e})"))),
            Err(_) => return Err(failed("input writer panicked".into())),
        }
        // Apertium's pipeline can fail without a failing status (its stages run in a process
        // substitution): a short or misaligned output is the sign.
        stream::decode_output(&out.stdout, lines.len()).ok_or_else(|| {
            let got = out
                .stdout
                .iter()
                .filter(|&&b| b == 0)
                .count()
                .min(lines.len());
            failed(format!("returned {got} of {} lines", lines.len()))
        })
    }
}

/// A failed process's output on one line (stderr, else stdout), shortened.
fn one_line(stdout: &[u8], stderr: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    };
    let text = String::from_utf8_lossy(text);
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        line = "no message".into();
    }
    if line.chars().count() > 300 {
        line = line.chars().take(300).collect::<String>() + "...";
    }
    line
}

impl Translator for Apertium {
    /// Translates `texts` from `from` to `to` (ISO 639-3 or 639-1 codes), one Apertium process
    /// per batch of lines.
    fn translate(&self, texts: &[String], from: &str, to: &str) -> Result<Vec<String>> {
        let mode = self.mode(from, to)?;
        let package = languages::package(from, to);
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_lines) {
            out.extend(self.translate_batch(&mode, &package, batch)?);
        }
        Ok(out)
    }
}
