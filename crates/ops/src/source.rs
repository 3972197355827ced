//! Where a use case reads the project from: a checkout on this machine (the CLI's `-C DIR` or the
//! current directory), or one commit of a repository (a server's mirror, which may be bare).
//!
//! Every use case goes through [`Source`] for the project's definition, its repository and the
//! biome a command means when none is named, so the same use case runs in both modes; what only
//! makes sense in a checkout (uncommitted changes, the current branch, running a command in the
//! user's directory) is refused for a commit with an `invalid_input` error.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sandpit_build::git::Repository;
use sandpit_domain::{CommitId, Name};
use sandpit_spec::Spec;

use crate::error::{failure, ErrorKind};
use crate::project::{parse_spec, ProjectDir};

/// What the project is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A checkout on this machine (local mode): `sandpit.toml` is looked for from `dir` upwards;
    /// builds read its repository; no revision means HEAD minding the working tree (`--allow-dirty`
    /// snapshots); the current branch names a biome when none is given.
    Checkout { dir: PathBuf },
    /// One commit of a repository (a server's mirror, possibly bare): nothing but that commit is
    /// read; `sandpit.toml` is where the repository's project sits (its root for a mirror) at that
    /// commit; there is no working tree and no current branch.
    Commit { repo: Repository, commit: CommitId },
}

/// The text of the project's `sandpit.toml` and what to call it in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    /// The file's path for a checkout, `sandpit.toml at <commit>` for a commit.
    pub label: String,
    pub text: String,
}

impl Source {
    /// The project's current definition: the working tree's `sandpit.toml` for a checkout, the
    /// commit's for a commit.
    pub fn spec(&self) -> anyhow::Result<Spec> {
        match self {
            Source::Checkout { dir } => ProjectDir::locate(dir)?.load_spec(),
            Source::Commit { commit, .. } => {
                let file = self.spec_file()?;
                parse_spec(&file.text)
                    .with_context(|| format!("sandpit.toml at {commit} is invalid"))
            }
        }
    }

    /// The text of [`Source::spec`]'s file, unparsed (for `doctor`, which reports its problems).
    pub fn spec_file(&self) -> anyhow::Result<SpecFile> {
        match self {
            Source::Checkout { dir } => {
                let path = ProjectDir::locate(dir)?.root.join(sandpit_spec::FILE_NAME);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Ok(SpecFile {
                    label: path.display().to_string(),
                    text,
                })
            }
            Source::Commit { repo, commit } => {
                let path = spec_path(repo.prefix());
                let Some(text) = repo.read_file(commit.as_str(), &path)? else {
                    return Err(failure(
                        ErrorKind::NotFound,
                        format!("{path} does not exist at {commit}\nhint: commit a sandpit.toml at the repository root"),
                    ));
                };
                Ok(SpecFile {
                    label: format!("{path} at {commit}"),
                    text,
                })
            }
        }
    }

    /// The repository builds read: the one around the checkout (git sees only `base_env`), or
    /// the commit's.
    pub fn repository(&self, base_env: &[(String, String)]) -> anyhow::Result<Repository> {
        match self {
            Source::Checkout { dir } => {
                let project = ProjectDir::locate(dir)?;
                Ok(Repository::discover_with_env(
                    &project.root,
                    base_env.to_vec(),
                )?)
            }
            Source::Commit { repo, .. } => Ok(repo.clone()),
        }
    }

    /// The commit a commit source is; `None` for a checkout.
    pub fn commit(&self) -> Option<&CommitId> {
        match self {
            Source::Checkout { .. } => None,
            Source::Commit { commit, .. } => Some(commit),
        }
    }

    /// The biome a command means when none is named: the current branch's, sanitised the way
    /// `up` names it. A commit has no current branch, so it must be named; `hint` says how.
    pub fn default_biome_name(
        &self,
        base_env: &[(String, String)],
        hint: &str,
    ) -> anyhow::Result<Name> {
        match self {
            Source::Checkout { .. } => {
                let branch = self.repository(base_env)?.current_branch()?;
                biome_named_after(BranchOf::Checkout(branch.as_deref()), hint)
            }
            Source::Commit { commit, .. } => biome_named_after(BranchOf::Commit(commit), hint),
        }
    }

    /// The directory of a checkout, for what runs on this machine in the user's directory
    /// (`exec`, `psql`, `init`); a commit has none, so `command` is refused for it.
    pub fn checkout_dir(&self, command: &str) -> anyhow::Result<&Path> {
        match self {
            Source::Checkout { dir } => Ok(dir),
            Source::Commit { commit, .. } => Err(failure(
                ErrorKind::InvalidInput,
                format!("`sandpit {command}` works in a checkout on this machine, and this project is read from commit {commit} of a repository\nhint: run `sandpit {command}` in a checkout of the project"),
            )),
        }
    }
}

/// Where `sandpit.toml` is in a repository whose project sits at `prefix`.
pub(crate) fn spec_path(prefix: &str) -> String {
    if prefix.is_empty() {
        sandpit_spec::FILE_NAME.to_owned()
    } else {
        format!("{prefix}/{}", sandpit_spec::FILE_NAME)
    }
}

/// What there is to name a biome after.
#[derive(Debug, Clone, Copy)]
enum BranchOf<'a> {
    /// A checkout's current branch; `None` when HEAD is detached.
    Checkout(Option<&'a str>),
    /// A commit, which is on no branch.
    Commit(&'a CommitId),
}

/// The biome name a branch gives (pure).
fn biome_named_after(branch: BranchOf<'_>, hint: &str) -> anyhow::Result<Name> {
    let refuse = |message: String| {
        Err(failure(
            ErrorKind::InvalidInput,
            format!("{message}\nhint: {hint}"),
        ))
    };
    match branch {
        BranchOf::Checkout(Some(branch)) => match Name::sanitize(branch) {
            Some(name) => Ok(name),
            None => refuse(format!("cannot make a biome name out of branch `{branch}`")),
        },
        BranchOf::Checkout(None) => refuse(
            "HEAD is detached, so there is no branch to name the biome after".to_owned(),
        ),
        BranchOf::Commit(commit) => refuse(format!(
            "the project is read from commit {commit}, which is on no branch to name the biome after: name the biome"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    #[test]
    fn a_biome_is_named_after_the_checkouts_branch_and_never_after_a_commit() {
        let commit = CommitId::parse(&"c".repeat(40)).unwrap();
        // (branch, Ok(name) or Err(words of the message))
        let table: &[(BranchOf, Result<&str, &str>)] = &[
            (BranchOf::Checkout(Some("alice")), Ok("alice")),
            (
                BranchOf::Checkout(Some("feature/Better_Model")),
                Ok("feature-better-model"),
            ),
            (BranchOf::Checkout(Some("///")), Err("out of branch `///`")),
            (BranchOf::Checkout(None), Err("HEAD is detached")),
            (BranchOf::Commit(&commit), Err("name the biome")),
        ];
        for (branch, expected) in table {
            let named = biome_named_after(*branch, "name it: `sandpit up NAME`");
            match (named, expected) {
                (Ok(name), Ok(expected)) => assert_eq!(name.as_str(), *expected, "{branch:?}"),
                (Err(error), Err(words)) => {
                    let message = error.to_string();
                    assert!(message.contains(words), "{branch:?}: {message}");
                    assert!(
                        message.ends_with("hint: name it: `sandpit up NAME`"),
                        "{message}"
                    );
                    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{branch:?}");
                }
                (named, expected) => panic!("{branch:?}: {named:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn spec_paths_follow_the_project_prefix() {
        assert_eq!(spec_path(""), "sandpit.toml");
        assert_eq!(spec_path("app"), "app/sandpit.toml");
        assert_eq!(spec_path("a/b"), "a/b/sandpit.toml");
    }
}
