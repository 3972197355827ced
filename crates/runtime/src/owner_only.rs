//! Files and directories only their owner may read, for secrets (passwords, URLs carrying them).
//!
//! Each is created with its final mode (a file 0600, a directory 0700), so there is no moment at
//! which another user could open it; [`repair`] takes away what an older sandpit left open. The
//! embedded PostgreSQL's own state (`sandpit_database::cluster`) follows the same rules with
//! helpers of its own, since that crate does not depend on this one.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode of a file holding a secret.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a directory holding secrets.
pub const DIR_MODE: u32 = 0o700;

/// Makes `path` a directory only its owner can list or enter. Its parents are created with the
/// default mode when missing: they may have to stay traversable (PostgreSQL running as `postgres`
/// passes through `$SANDPIT_HOME/projects/<p>/`), and hold nothing secret themselves.
pub fn create_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(error) => return Err(error),
    }
    repair(path, DIR_MODE)
}

/// Writes `contents` to `path` atomically: a 0600 file next to it, renamed over it. A reader
/// sees the old contents or the new ones, never a half-written secret.
pub fn write_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&temporary);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Takes away every permission beyond `allowed` (e.g. an older sandpit's 0644 password file
/// becomes 0600). A missing path is left alone.
pub fn repair(path: &Path, allowed: u32) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if mode & !allowed == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_and_directories_are_created_owner_only_and_parents_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("projects/geo/databases/dev");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_ne!(
            mode(&root.path().join("projects/geo")) & 0o001,
            0,
            "parents stay traversable"
        );
        let file = dir.join("alice.password");
        write_file(&file, b"first").unwrap();
        assert_eq!(mode(&file), 0o600);
        write_file(&file, b"second").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "second");
        assert_eq!(mode(&file), 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn repair_only_takes_permissions_away() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        fs::write(&path, "x").unwrap();
        for (before, allowed, after) in [
            (0o644, 0o600, 0o600),
            (0o666, 0o600, 0o600),
            (0o400, 0o600, 0o400),
            (0o600, 0o600, 0o600),
            (0o755, 0o711, 0o711),
            (0o750, 0o711, 0o710),
            (0o700, 0o711, 0o700),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(before)).unwrap();
            repair(&path, allowed).unwrap();
            assert_eq!(mode(&path), after, "{before:o} within {allowed:o}");
        }
        repair(&root.path().join("missing"), 0o600).unwrap();
    }

    #[test]
    fn an_existing_open_directory_is_closed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("databases");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }
}
