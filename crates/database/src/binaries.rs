//! Finding PostgreSQL's server programs: in the directory `SANDPIT_PG_BIN` names when it is set,
//! else on `PATH` first, then under the Debian/Ubuntu layout `/usr/lib/postgresql/<version>/bin`,
//! newest version first.

use std::path::{Path, PathBuf};

use crate::error::DatabaseError;

/// Where Debian and Ubuntu install the server binaries, one directory per major version.
pub const DEFAULT_VERSIONED_ROOT: &str = "/usr/lib/postgresql";

/// The server programs sandpit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

impl PgBinaries {
    /// Looks on `path_env` (the value of `PATH`, handed down by the caller) and then under
    /// `/usr/lib/postgresql/*/bin`.
    pub fn locate(path_env: Option<&str>) -> Result<PgBinaries, DatabaseError> {
        PgBinaries::locate_in(path_env, &[Path::new(DEFAULT_VERSIONED_ROOT)])
    }

    /// The programs in `configured_dir` (the caller's `SANDPIT_PG_BIN`) when given, and nowhere
    /// else, so a wrong setting is reported rather than passed over; else [`PgBinaries::locate`].
    pub fn locate_configured(
        configured_dir: Option<&Path>,
        path_env: Option<&str>,
    ) -> Result<PgBinaries, DatabaseError> {
        match configured_dir {
            Some(dir) => in_dir(dir).ok_or_else(|| DatabaseError::BinariesMissingIn {
                dir: dir.to_path_buf(),
            }),
            None => PgBinaries::locate(path_env),
        }
    }

    /// [`PgBinaries::locate`] with the versioned roots given explicitly (each holds
    /// `<version>/bin`), so tests can point it at empty or fake directories.
    pub fn locate_in(
        path_env: Option<&str>,
        versioned_roots: &[&Path],
    ) -> Result<PgBinaries, DatabaseError> {
        let mut candidates: Vec<PathBuf> = path_env
            .map(|path| {
                path.split(':')
                    .filter(|entry| !entry.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        for root in versioned_roots {
            candidates.extend(versioned_bin_dirs(root));
        }
        candidates
            .iter()
            .find_map(|dir| in_dir(dir))
            .ok_or(DatabaseError::BinariesMissing)
    }

    /// The directory holding the programs, e.g. `/usr/lib/postgresql/15/bin`.
    pub fn bin_dir(&self) -> &Path {
        self.postgres.parent().unwrap_or(Path::new("/"))
    }
}

/// Both programs in `dir`, when both are there and executable.
fn in_dir(dir: &Path) -> Option<PgBinaries> {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    (is_executable(&initdb) && is_executable(&postgres)).then_some(PgBinaries { initdb, postgres })
}

/// `<root>/<version>/bin` for every numeric version directory, newest first (`15` before `9.6`).
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|left, right| right.0.cmp(&left.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn fake_bin(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for program in ["initdb", "postgres"] {
            let path = dir.join(program);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn newest_numeric_version_wins_and_path_comes_first() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "15", "12", "not-a-version"] {
            fake_bin(&root.path().join(version).join("bin"));
        }
        let found = PgBinaries::locate_in(None, &[root.path()]).unwrap();
        assert_eq!(found.bin_dir(), root.path().join("15/bin"));

        let on_path = root.path().join("on-path");
        fake_bin(&on_path);
        let path_env = format!("/nonexistent:{}", on_path.display());
        let found = PgBinaries::locate_in(Some(&path_env), &[root.path()]).unwrap();
        assert_eq!(found.initdb, on_path.join("initdb"));
    }

    #[test]
    fn missing_binaries_say_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let error = PgBinaries::locate_in(Some(""), &[empty.path()]).unwrap_err();
        assert!(matches!(error, DatabaseError::BinariesMissing));
        assert_eq!(
            error.to_string(),
            "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under \
             /usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql` (or set \
             SANDPIT_PG_BIN to the directory holding them)\nhint: run `sandpit doctor` to check \
             every prerequisite"
        );
    }

    #[test]
    fn a_configured_directory_is_the_only_place_looked_at() {
        let root = tempfile::tempdir().unwrap();
        let configured = root.path().join("pg/bin");
        fake_bin(&configured);
        let on_path = root.path().join("on-path");
        fake_bin(&on_path);
        let path_env = on_path.display().to_string();

        let found = PgBinaries::locate_configured(Some(&configured), Some(&path_env)).unwrap();
        assert_eq!(found.bin_dir(), configured);
        let found = PgBinaries::locate_configured(None, Some(&path_env)).unwrap();
        assert_eq!(found.bin_dir(), on_path);

        // A directory without them is an error even though PATH has them: the setting is wrong.
        let empty = root.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let error = PgBinaries::locate_configured(Some(&empty), Some(&path_env)).unwrap_err();
        assert!(
            matches!(error, DatabaseError::BinariesMissingIn { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "SANDPIT_PG_BIN is {}, which does not hold PostgreSQL's server binaries",
                empty.display()
            )),
            "{message}"
        );
        assert!(message.contains("run `sandpit doctor`"), "{message}");
    }
}
