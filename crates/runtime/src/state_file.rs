//! The supervisor's state file on disk: written atomically (a temporary file in the same
//! directory, fsynced, renamed over the old one, the directory fsynced) so a failure at any point
//! leaves the previous state intact; private to its user (the directory 0700, the file 0600);
//! and set aside, never overwritten, when it cannot be read back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why the state could not be saved. Each message names the path and, for a full disk, says so
/// in words; the underlying error is part of the message, never repeated after it.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{}", io_failure(Doing::Create, path, source))]
    CreateDirectory { path: PathBuf, source: io::Error },
    #[error("{}", io_failure(Doing::Write, path, source))]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot replace {} with {}: {source}", path.display(), temporary.display())]
    Replace {
        path: PathBuf,
        temporary: PathBuf,
        source: io::Error,
    },
    #[error("cannot encode the supervisor state: {0}")]
    Encode(serde_json::Error),
}

impl StateFileError {
    /// The directory whose file system failed, for hints ("free some space on …").
    pub fn directory(&self) -> Option<&Path> {
        match self {
            StateFileError::CreateDirectory { path, .. } => Some(path),
            StateFileError::Write { path, .. } | StateFileError::Replace { path, .. } => {
                path.parent()
            }
            StateFileError::Encode(_) => None,
        }
    }

    /// What a person can do about it, for a `hint:` line.
    pub fn remedy(&self) -> String {
        let source = match self {
            StateFileError::CreateDirectory { source, .. }
            | StateFileError::Write { source, .. }
            | StateFileError::Replace { source, .. } => source,
            StateFileError::Encode(_) => {
                return "this is a bug in sandpit; the daemon's log has details".into()
            }
        };
        let dir = self
            .directory()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                format!("free some space on the file system holding {dir}")
            }
            _ => format!("make sure {dir} is a directory this user can write"),
        }
    }
}

/// What was being done to a path when it failed.
#[derive(Debug, Clone, Copy)]
pub enum Doing {
    Create,
    Write,
}

/// "no space left on device writing <path>" for a full disk (and the like for a quota or a
/// read-only file system), "cannot write <path>: <error>" otherwise.
pub fn io_failure(doing: Doing, path: &Path, error: &io::Error) -> String {
    let (verb, gerund) = match doing {
        Doing::Create => ("create", "creating"),
        Doing::Write => ("write", "writing"),
    };
    let path = path.display();
    match error.kind() {
        io::ErrorKind::StorageFull => format!("no space left on device {gerund} {path}"),
        io::ErrorKind::QuotaExceeded => format!("disk quota exceeded {gerund} {path}"),
        io::ErrorKind::ReadOnlyFilesystem => {
            format!("cannot {verb} {path}: the file system is read-only")
        }
        _ => format!("cannot {verb} {path}: {error}"),
    }
}

/// Creates `dir` (and its parents) 0700 if missing, and makes it 0700 if it exists.
pub fn create_private_dir(dir: &Path) -> Result<(), StateFileError> {
    let failed = |source| StateFileError::CreateDirectory {
        path: dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(failed)
}

/// Replaces `path` by `bytes` atomically: afterwards it holds either the old bytes or the new
/// ones, never a mixture, and the new ones have reached the disk before this returns `Ok`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let temporary = temporary_path(path);
    let written = (|| {
        let write_failed = |source| StateFileError::Write {
            path: path.to_owned(),
            source,
        };
        // A temporary file left by a crash of an earlier write is debris.
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(write_failed)?;
        file.write_all(bytes).map_err(write_failed)?;
        // Some file systems report a full disk only when the data is flushed.
        file.sync_all().map_err(write_failed)?;
        drop(file);
        fs::rename(&temporary, path).map_err(|source| StateFileError::Replace {
            path: path.to_owned(),
            temporary: temporary.clone(),
            source,
        })
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
        return written;
    }
    // The rename is durable once the directory entry is.
    if let Ok(directory) = File::open(&dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The bytes of `path`, `None` when it does not exist.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Renames an unreadable state file to `<name>.corrupt-<time>` beside it (never over another
/// one) and returns the new path, so nothing that could explain what happened is overwritten.
pub fn keep_aside(path: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for attempt in 0u32.. {
        let suffix = if attempt == 0 {
            String::new()
        } else {
            format!("-{attempt}")
        };
        let kept = path.with_file_name(format!("{name}.corrupt-{stamp}{suffix}"));
        if fs::symlink_metadata(&kept).is_err() {
            fs::rename(path, &kept)?;
            return Ok(kept);
        }
    }
    unreachable!("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_a_private_file_in_a_private_directory() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("runtime/state.json");
        write_atomically(&path, b"{\"biomes\":[]}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"biomes\":[]}");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!temporary_path(&path).exists(), "no temporary file is left");
    }

    #[test]
    fn an_existing_open_directory_is_made_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("runtime");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        write_atomically(&dir.join("state.json"), b"{}").unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_failed_rename_keeps_the_old_state_and_removes_the_temporary_file() {
        let root = tempfile::tempdir().unwrap();
        // A non-empty directory where the state file should be: the rename over it fails.
        let path = root.path().join("state.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "old").unwrap();
        let error = write_atomically(&path, b"new").unwrap_err();
        assert!(matches!(error, StateFileError::Replace { .. }), "{error:?}");
        assert!(error.to_string().starts_with("cannot replace"), "{error}");
        assert_eq!(fs::read_to_string(path.join("keep")).unwrap(), "old");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_state() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state.json");
        fs::write(&path, "old state").unwrap();
        // A directory where the temporary file goes: it cannot be written.
        fs::create_dir(temporary_path(&path)).unwrap();
        fs::write(temporary_path(&path).join("x"), "").unwrap();
        let error = write_atomically(&path, b"new state").unwrap_err();
        assert!(matches!(error, StateFileError::Write { .. }), "{error:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old state");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_reported_with_its_path() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("runtime"), "not a directory").unwrap();
        let path = root.path().join("runtime/state.json");
        let error = write_atomically(&path, b"{}").unwrap_err();
        assert!(
            matches!(error, StateFileError::CreateDirectory { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.directory(),
            Some(root.path().join("runtime").as_path())
        );
        assert!(
            error.remedy().starts_with("make sure"),
            "{}",
            error.remedy()
        );
        assert!(
            error
                .to_string()
                .contains(&root.path().join("runtime").display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_full_disk_is_named_once() {
        let path = Path::new("/home/runtime/state.json");
        let cases = [
            (
                28,
                "no space left on device writing /home/runtime/state.json",
            ),
            (122, "disk quota exceeded writing /home/runtime/state.json"),
            (
                30,
                "cannot write /home/runtime/state.json: the file system is read-only",
            ),
            (
                13,
                "cannot write /home/runtime/state.json: Permission denied (os error 13)",
            ),
        ];
        for (errno, expected) in cases {
            let error = StateFileError::Write {
                path: path.to_owned(),
                source: io::Error::from_raw_os_error(errno),
            };
            assert_eq!(error.to_string(), expected, "errno {errno}");
        }
        let full = StateFileError::Write {
            path: path.to_owned(),
            source: io::Error::from_raw_os_error(28),
        };
        assert_eq!(
            full.remedy(),
            "free some space on the file system holding /home/runtime"
        );
    }

    #[test]
    fn a_full_device_fails_the_write_with_its_name() {
        // /dev/full answers every write with ENOSPC: the real error path, no disk filled.
        let mut file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let source = file
            .write_all(b"x")
            .and_then(|_| file.sync_all())
            .unwrap_err();
        assert_eq!(
            io_failure(Doing::Write, Path::new("/dev/full"), &source),
            "no space left on device writing /dev/full"
        );
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_under_a_new_name_each_time() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state.json");
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        fs::write(&path, "{ broken").unwrap();
        let first = keep_aside(&path, now).unwrap();
        assert_eq!(
            first.file_name().unwrap(),
            "state.json.corrupt-2023-11-14T22:13:20Z"
        );
        fs::write(&path, "{ broken again").unwrap();
        let second = keep_aside(&path, now).unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(first).unwrap(), "{ broken");
        assert_eq!(fs::read_to_string(second).unwrap(), "{ broken again");
        assert!(!path.exists());
    }
}
