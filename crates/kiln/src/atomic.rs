//! Atomic outputs: the one way kiln writes a file ([`write_atomic`]) or a directory
//! ([`StagedDir`]), and the list of half-written paths a signal handler removes
//! ([`remove_pending`]).
//!
//! A file is written to a temporary file created with a random name and `O_EXCL` in the target's
//! own folder (so a symlink planted under a predictable name is never followed), synced, then
//! renamed over the target: a reader sees the old file or the new one, never a part. A directory
//! is built as a hidden temporary directory beside the target and renamed into place at the end.
//! Both are registered while they exist, so a process killed by SIGINT / SIGTERM can remove them
//! (`kiln`'s signal handler calls [`remove_pending`]); an error or a panic removes them through
//! `Drop`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{KilnError, Result};

/// Temporary files and directories being written now.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file and directory still being written. For a signal handler that
/// is about to end the process: what is half-written must not outlive it.
pub fn remove_pending() {
    let paths = std::mem::take(&mut *pending());
    for path in paths {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Keeps `path` in the pending list while alive.
struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Self {
        pending().insert(path.to_path_buf());
        Self(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        pending().remove(&self.0);
    }
}

/// The folder a path lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `.NAME.` : the prefix of the temporary sibling of `path`.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    format!(".{name}.")
}

/// Writes `bytes` to `path` through a new temporary file in the same folder (random name,
/// created exclusively), an fsync and a rename: a reader never sees a partial file, a failed
/// write leaves nothing behind, and nothing but `path` itself is ever replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    let mut file = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| KilnError::io(path, e))?;
    let _registered = Registered::new(file.path());
    file.write_all(bytes)
        .and_then(|_| file.as_file().sync_all())
        .map_err(|e| KilnError::io(path, e))?;
    file.persist(path)
        .map_err(|e| KilnError::io(path, e.error))?;
    Ok(())
}

/// A file written as a stream, atomically: the bytes go to a new temporary file beside `path`
/// (as in [`write_atomic`]), and [`AtomicFile::commit`] syncs it and renames it over `path`.
/// Dropped without a commit (an error, a panic), it is removed.
pub struct AtomicFile {
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
    target: PathBuf,
    _registered: Registered,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(&temp_prefix(path))
            .suffix(".tmp")
            .tempfile_in(parent_of(path))
            .map_err(|e| KilnError::io(path, e))?;
        let registered = Registered::new(file.path());
        Ok(Self {
            writer: std::io::BufWriter::new(file),
            target: path.to_path_buf(),
            _registered: registered,
        })
    }

    /// Moves the complete file into place.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| KilnError::io(&target, e.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(|e| KilnError::io(&target, e))?;
        file.persist(&target)
            .map_err(|e| KilnError::io(&target, e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// An output directory built out of sight: files go to [`StagedDir::path`], a hidden temporary
/// directory beside the target, and [`StagedDir::commit`] renames it into place. Dropped without
/// a commit (an error, a panic), it is removed.
#[derive(Debug)]
pub struct StagedDir {
    staging: Option<tempfile::TempDir>,
    target: PathBuf,
    replace: bool,
}

impl StagedDir {
    /// Stages a new directory `target`. Its parent must exist. `target` must not exist, or be an
    /// empty directory, unless `replace` is set: then an existing directory is replaced whole at
    /// the commit (never merged with).
    pub fn new(target: &Path, replace: bool) -> Result<Self> {
        check_new_dir(target, replace)?;
        let staging = tempfile::Builder::new()
            .prefix(&temp_prefix(target))
            .suffix(".tmp")
            .tempdir_in(parent_of(target))
            .map_err(|e| KilnError::io(target, e))?;
        pending().insert(staging.path().to_path_buf());
        Ok(Self {
            staging: Some(staging),
            target: target.to_path_buf(),
            replace,
        })
    }

    /// Where to write the directory's files until [`StagedDir::commit`].
    pub fn path(&self) -> &Path {
        self.staging.as_ref().expect("staged until commit").path()
    }

    /// The directory it becomes.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged directory into place.
    pub fn commit(mut self) -> Result<()> {
        let staging = self.staging.take().expect("committed once");
        let staged = staging.keep();
        let target = &self.target;
        let result = (|| {
            if target.symlink_metadata().is_ok() {
                // Checked in `new`: an empty directory, or `replace` was asked for.
                check_new_dir(target, self.replace)?;
                let old = tempfile::Builder::new()
                    .prefix(&temp_prefix(target))
                    .suffix(".old")
                    .tempdir_in(parent_of(target))
                    .map_err(|e| KilnError::io(target, e))?
                    .keep();
                std::fs::rename(target, &old).map_err(|e| KilnError::io(target, e))?;
                std::fs::rename(&staged, target).map_err(|e| KilnError::io(target, e))?;
                let _ = std::fs::remove_dir_all(&old);
                Ok(())
            } else {
                std::fs::rename(&staged, target).map_err(|e| KilnError::io(target, e))
            }
        })();
        pending().remove(&staged);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        result
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(staging) = &self.staging {
            pending().remove(staging.path());
        }
    }
}

/// Whether `target` may become a new output directory: its parent exists, is a directory and
/// can be written in; `target` is absent, an empty directory, or (with `replace`) any directory.
pub fn check_new_dir(target: &Path, replace: bool) -> Result<()> {
    let parent = parent_of(target);
    if !parent.is_dir() {
        return Err(KilnError::io(
            target,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", parent.display()),
            ),
        ));
    }
    tempfile::Builder::new()
        .prefix(".kiln-probe.")
        .tempdir_in(parent)
        .map_err(|e| KilnError::io(target, e))?;
    let Ok(meta) = target.symlink_metadata() else {
        return Ok(());
    };
    let invalid = |reason: &str| {
        Err(KilnError::io(
            target,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, reason.to_string()),
        ))
    };
    if !meta.is_dir() {
        return invalid("exists and is not a directory");
    }
    let empty = std::fs::read_dir(target)
        .map_err(|e| KilnError::io(target, e))?
        .next()
        .is_none();
    if !empty && !replace {
        return invalid(
            "exists and is not empty (kiln writes a new directory; --force replaces it)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `remove_pending` is process-wide: the tests that write take turns.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn a_file_replaces_the_target_and_leaves_no_temporary() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.npy");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // The old predictable name, and a symlink named as the target itself.
        let planted = dir
            .path()
            .join(format!(".y.npy.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let target = dir.path().join("y.npy");
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_staged_dir_appears_only_at_the_commit_and_a_signal_removes_it() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("q");
        let staged = StagedDir::new(&target, false).unwrap();
        std::fs::write(staged.path().join("a"), b"1").unwrap();
        assert!(!target.exists());
        assert!(pending().contains(staged.path()));
        remove_pending();
        assert!(!staged.path().exists(), "the signal path removes it");
        drop(staged);

        let staged = StagedDir::new(&target, false).unwrap();
        std::fs::write(staged.path().join("a"), b"1").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let other = tempfile::tempdir().unwrap();
        let staged = StagedDir::new(&other.path().join("q"), false).unwrap();
        std::fs::write(staged.path().join("a"), b"1").unwrap();
        drop(staged);
        assert_eq!(
            std::fs::read_dir(other.path()).unwrap().count(),
            0,
            "a dropped stage leaves nothing"
        );
    }

    #[test]
    fn a_streamed_file_appears_only_at_the_commit() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"line\n").unwrap();
        assert!(!path.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"line\n");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"line\n",
            "a dropped stream leaves the old file"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_non_empty_target_is_refused_unless_replaced() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("q");
        std::fs::create_dir(&target).unwrap();
        // Empty: fine.
        StagedDir::new(&target, false).unwrap();
        std::fs::write(target.join("stale"), b"old").unwrap();
        let err = StagedDir::new(&target, false).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        let staged = StagedDir::new(&target, true).unwrap();
        std::fs::write(staged.path().join("new"), b"1").unwrap();
        staged.commit().unwrap();
        assert!(
            !target.join("stale").exists(),
            "replaced whole, never merged"
        );
        assert!(target.join("new").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing_parent = dir.path().join("no/such/q");
        assert!(StagedDir::new(&missing_parent, false).is_err());
    }
}
