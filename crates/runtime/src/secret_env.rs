//! A component's secret variables (`DATABASE_URL`, which carries its role's password): the
//! desired state names the owner-only file each value is kept in, never the value, and the
//! supervisor reads the files when it builds the environment of a process it starts.
//!
//! So neither the daemon socket nor `runtime/state.json` ever carries a secret, and a restarted
//! daemon still starts every component with the right values. A secret file holds exactly the
//! value; one trailing newline is dropped (written with [`crate::owner_only::write_file`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

/// Why a secret variable could not be given to a component.
#[derive(Debug, thiserror::Error)]
pub enum SecretEnvError {
    #[error("cannot read `{variable}` from {}: {source}\nhint: `sandpit up` (or `sandpit deploy`) writes it again", path.display())]
    Unreadable {
        variable: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("`{variable}` is empty in {}\nhint: `sandpit up` (or `sandpit deploy`) writes it again", path.display())]
    Empty { variable: String, path: PathBuf },
}

/// The values of a component's secret variables, read from their files. Printing it shows the
/// variable names only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ResolvedSecrets {
    values: BTreeMap<String, String>,
}

impl ResolvedSecrets {
    /// `(variable, value)` pairs, in name order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Each variable with the sha256 of its value: what a component's fingerprint includes, so a
    /// changed value restarts it and an unchanged one does not, while the fingerprint (which is
    /// persisted) never holds the value. The values are random passwords (192 bits) inside URLs,
    /// so a hash of one reveals nothing.
    pub fn content_hashes(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(name, value)| (name.clone(), hex::encode(Sha256::digest(value.as_bytes()))))
            .collect()
    }
}

impl fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// Reads every secret variable of a component from its file.
pub fn resolve(secret_env: &BTreeMap<String, PathBuf>) -> Result<ResolvedSecrets, SecretEnvError> {
    let mut values = BTreeMap::new();
    for (variable, path) in secret_env {
        let text = std::fs::read_to_string(path).map_err(|source| SecretEnvError::Unreadable {
            variable: variable.clone(),
            path: path.clone(),
            source,
        })?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        if value.is_empty() {
            return Err(SecretEnvError::Empty {
                variable: variable.clone(),
                path: path.clone(),
            });
        }
        values.insert(variable.clone(), value.to_owned());
    }
    Ok(ResolvedSecrets { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_from_their_files_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("alice.database-url");
        let shared = dir.path().join("alice.shared-database-url");
        crate::owner_only::write_file(&url, b"postgres://alice:hunter2@127.0.0.1:5432/geo_alice")
            .unwrap();
        std::fs::write(
            &shared,
            "postgres://alice:hunter2@127.0.0.1:5432/geo_shared\n",
        )
        .unwrap();
        let secrets = resolve(&BTreeMap::from([
            ("DATABASE_URL".to_owned(), url),
            ("SHARED_DATABASE_URL".to_owned(), shared),
        ]))
        .unwrap();
        assert_eq!(
            secrets.values().collect::<Vec<_>>(),
            [
                (
                    "DATABASE_URL",
                    "postgres://alice:hunter2@127.0.0.1:5432/geo_alice"
                ),
                (
                    "SHARED_DATABASE_URL",
                    "postgres://alice:hunter2@127.0.0.1:5432/geo_shared"
                ),
            ],
            "one trailing newline is dropped"
        );
        let shown = format!("{secrets:?}");
        assert_eq!(shown, r#"{"DATABASE_URL", "SHARED_DATABASE_URL"}"#);
        let hashes = format!("{:?}", secrets.content_hashes());
        assert!(!hashes.contains("hunter2"), "{hashes}");
    }

    #[test]
    fn a_missing_or_empty_file_names_the_variable_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.database-url");
        let empty = dir.path().join("empty.database-url");
        std::fs::write(&empty, "\n").unwrap();
        for (path, expected) in [
            (missing, "cannot read `DATABASE_URL` from"),
            (empty, "`DATABASE_URL` is empty in"),
        ] {
            let error = resolve(&BTreeMap::from([("DATABASE_URL".to_owned(), path.clone())]))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.contains("\nhint: `sandpit up`"), "{error}");
        }
    }

    #[test]
    fn content_hashes_change_with_the_value_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.database-url");
        let hashes = |value: &str| {
            crate::owner_only::write_file(&path, value.as_bytes()).unwrap();
            resolve(&BTreeMap::from([("DATABASE_URL".to_owned(), path.clone())]))
                .unwrap()
                .content_hashes()
        };
        assert_eq!(
            hashes("postgres://a:one@h/db"),
            hashes("postgres://a:one@h/db")
        );
        assert_ne!(
            hashes("postgres://a:one@h/db"),
            hashes("postgres://a:two@h/db")
        );
        assert!(resolve(&BTreeMap::new())
            .unwrap()
            .content_hashes()
            .is_empty());
    }
}
