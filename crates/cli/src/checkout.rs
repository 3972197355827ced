//! What the user's checkout says when a change is sent to a control plane: the biome named
//! after its branch and the commit at HEAD (with a warning when the working tree has changes
//! that are not part of it). The server never sees the working tree, so these defaults are
//! resolved here and sent explicitly.

use std::path::{Path, PathBuf};

use sandpit_build::git::Repository;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::Source;

/// A checkout of the project on this machine.
pub struct Checkout {
    source: Source,
    base_env: Vec<(String, String)>,
    repository: Repository,
}

impl Checkout {
    /// The checkout around `directory` (or the current directory); `None` outside one (no
    /// `sandpit.toml` above, or not in a git repository).
    pub fn find(directory: Option<&Path>) -> Option<Checkout> {
        let dir = match directory {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_dir().ok()?,
        };
        let base_env = crate::settings::base_env();
        let source = Source::Checkout {
            dir: PathBuf::from(&dir),
        };
        let repository = source.repository(&base_env).ok()?;
        Some(Checkout {
            source,
            base_env,
            repository,
        })
    }

    /// The biome a command means when none is named: the current branch's, as `up` names it.
    pub fn default_biome(&self, hint: &str) -> anyhow::Result<String> {
        Ok(self
            .source
            .default_biome_name(&self.base_env, hint)?
            .to_string())
    }

    /// The commit `rev` names here (a branch, `HEAD~1`, a short sha), in full; `None` when this
    /// checkout does not know it (the server may: it is then sent as given).
    pub fn resolve(&self, rev: &str) -> Option<String> {
        self.repository.resolve(rev).ok().map(|id| id.to_string())
    }

    /// The HEAD commit, warning on stderr when uncommitted changes are not part of it.
    pub fn head(&self) -> anyhow::Result<String> {
        let head = self.repository.resolve("HEAD")?.to_string();
        let dirty = self.repository.dirty_files().unwrap_or_default();
        if !dirty.is_empty() {
            eprintln!(
                "warning: {} uncommitted change(s) are not part of {}: the server builds only the pushed commit",
                dirty.len(),
                &head[..12]
            );
        }
        Ok(head)
    }
}

/// The commit a remote `up` or `deploy` asks for: `--sha REV` (resolved here when the checkout
/// knows it), `--branch B`, else the checkout's HEAD, else (outside a checkout) nothing: the
/// project's branch. Returns `(sha, branch)` as the request carries them.
pub fn requested_commit(
    checkout: Option<&Checkout>,
    sha: Option<&str>,
    branch: Option<&str>,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    match (sha, branch, checkout) {
        (Some(rev), branch, checkout) => Ok((
            Some(
                checkout
                    .and_then(|c| c.resolve(rev))
                    .unwrap_or_else(|| rev.to_owned()),
            ),
            branch.map(str::to_owned),
        )),
        (None, Some(branch), _) => Ok((None, Some(branch.to_owned()))),
        (None, None, Some(checkout)) => Ok((Some(checkout.head()?), None)),
        (None, None, None) => Ok((None, None)),
    }
}

/// The biome named, else the one named after the branch of the checkout at `directory` (or the
/// current directory): a control plane is sent this name, it never sees the working tree.
pub fn biome_or_branch(named: Option<String>, directory: Option<&Path>) -> anyhow::Result<String> {
    match (named, Checkout::find(directory)) {
        (Some(biome), _) => Ok(biome),
        (None, Some(checkout)) => checkout.default_biome("name the biome"),
        (None, None) => Err(failure(
            ErrorKind::InvalidInput,
            "there is no checkout here to name the biome after its branch\nhint: name the biome",
        )),
    }
}
