//! Which files the endpoint may open: artifacts inside the artifact stores it serves, nothing
//! else. The endpoint often runs as root; a registration naming `/etc/shadow`, or a symbolic
//! link in a store leading there, must not make it read (or hash) that file.
//!
//! A path is first checked as written — absolute, no `..`, under a store root — without
//! touching the file system, so a refusal says nothing about files outside the stores. Only
//! then is it resolved, and the resolved path (symbolic links followed) must still be inside a
//! store and be a regular file. The resolved path is what the endpoint later reads.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The roots of the artifact stores registrations may point into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactStores {
    roots: Vec<PathBuf>,
}

/// Why a path is not an artifact the endpoint may open.
#[derive(Debug)]
pub enum Confinement {
    /// Not an absolute path, or one with `..` in it.
    NotPlain,
    /// Not under any store root as written.
    Outside,
    /// Under a store root as written, but resolves (through a symbolic link) outside every store.
    LeadsOutside,
    /// Under a store root, but cannot be resolved (missing, unreadable directory).
    Unresolvable(io::Error),
    /// Inside a store, but not a regular file.
    NotAFile,
}

impl ArtifactStores {
    /// Stores rooted at `roots` (which need not exist yet: a store made later counts then).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> ArtifactStores {
        ArtifactStores {
            roots: roots.into_iter().collect(),
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The resolved path of `path` when it is a regular file inside one of the stores.
    pub fn confine(&self, path: &Path) -> Result<PathBuf, Confinement> {
        if !is_plain(path) {
            return Err(Confinement::NotPlain);
        }
        // Roots are resolved on every check: a store created after the endpoint started, or
        // reached through a symbolic link (a linked `$SANDPIT_HOME`), counts like the others.
        let roots: Vec<(&Path, Option<PathBuf>)> = self
            .roots
            .iter()
            .filter(|root| is_plain(root))
            .map(|root| (root.as_path(), fs::canonicalize(root).ok()))
            .collect();
        let written_inside = roots.iter().any(|(given, resolved)| {
            path.starts_with(given) || resolved.as_ref().is_some_and(|r| path.starts_with(r))
        });
        if !written_inside {
            return Err(Confinement::Outside);
        }
        let resolved = fs::canonicalize(path).map_err(Confinement::Unresolvable)?;
        let resolved_inside = roots
            .iter()
            .any(|(_, root)| root.as_ref().is_some_and(|root| resolved.starts_with(root)));
        if !resolved_inside {
            return Err(Confinement::LeadsOutside);
        }
        match fs::metadata(&resolved) {
            Ok(metadata) if metadata.is_file() => Ok(resolved),
            Ok(_) => Err(Confinement::NotAFile),
            Err(e) => Err(Confinement::Unresolvable(e)),
        }
    }
}

/// Absolute and free of `..`, so what it names can be judged from how it is written.
fn is_plain(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_a_store_are_confined() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(store.join("files")).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(store.join("files/model.zip"), b"inside").unwrap();
        fs::write(elsewhere.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("secret"), store.join("files/link-out")).unwrap();
        std::os::unix::fs::symlink(store.join("files/model.zip"), store.join("files/link-in"))
            .unwrap();
        let stores = ArtifactStores::new([store.clone(), dir.path().join("not-yet")]);

        let inside = fs::canonicalize(store.join("files/model.zip")).unwrap();
        // (path, expected: Ok(resolved) or the refusal's name)
        let cases: Vec<(PathBuf, Result<PathBuf, &str>)> = vec![
            (store.join("files/model.zip"), Ok(inside.clone())),
            (store.join("files/link-in"), Ok(inside.clone())),
            (store.join("files/link-out"), Err("LeadsOutside")),
            (elsewhere.join("secret"), Err("Outside")),
            (PathBuf::from("/etc/passwd"), Err("Outside")),
            (store.join("files/../../elsewhere/secret"), Err("NotPlain")),
            (PathBuf::from("files/model.zip"), Err("NotPlain")),
            (store.join("files/missing.zip"), Err("Unresolvable")),
            (store.join("files"), Err("NotAFile")),
            (store.clone(), Err("NotAFile")),
            // A store root that does not exist yet confines nothing.
            (dir.path().join("not-yet/x"), Err("Unresolvable")),
        ];
        for (path, expected) in cases {
            let got = stores.confine(&path).map_err(|refusal| match refusal {
                Confinement::NotPlain => "NotPlain",
                Confinement::Outside => "Outside",
                Confinement::LeadsOutside => "LeadsOutside",
                Confinement::Unresolvable(_) => "Unresolvable",
                Confinement::NotAFile => "NotAFile",
            });
            assert_eq!(got, expected, "{}", path.display());
        }
        assert!(matches!(
            ArtifactStores::default().confine(&inside),
            Err(Confinement::Outside)
        ));
    }
}
