//! `sandpit build`: resolve a commit (or snapshot a dirty working tree), read `sandpit.toml` as it
//! is at that version, and build or reuse every component's artifact. A commit source builds
//! exactly its commit.

use std::path::PathBuf;

use anyhow::Context as _;
use sandpit_artifact::store::ArtifactStore;
use sandpit_build::execute::{BuildProgress, BuildReport, BuildRequest};
use sandpit_build::git::Repository;
use sandpit_domain::{CommitId, Name, Version};
use sandpit_spec::Spec;

use crate::project::parse_spec;
use crate::source::{spec_path, Source};
use crate::timings::{Phase, PhaseTimings};
use crate::Context;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// A revision (`HEAD`, a branch, a short sha); `None` builds HEAD, minding the working tree.
    pub rev: Option<String>,
    /// Build uncommitted changes as `<sha>-dirty-<hash>` instead of refusing them.
    pub allow_dirty: bool,
}

/// A build of HEAD refused because the working tree has uncommitted changes. Its hint depends on
/// the command: `build` and `up` take `--allow-dirty`, `deploy` never deploys uncommitted changes.
#[derive(Debug)]
pub struct UncommittedChanges {
    pub commit: CommitId,
    /// The changed files, as git names them.
    pub files: Vec<String>,
    /// The environment, when `deploy` was building.
    pub deploying: Option<Name>,
}

impl UncommittedChanges {
    /// `error` with the hint of `deploy ENV` when it is an [`UncommittedChanges`].
    pub fn when_deploying(error: anyhow::Error, env: &Name) -> anyhow::Error {
        match error.downcast::<UncommittedChanges>() {
            Ok(mut refused) => {
                refused.deploying = Some(env.clone());
                refused.into()
            }
            Err(other) => other,
        }
    }
}

impl std::fmt::Display for UncommittedChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the working tree has uncommitted changes, and sandpit builds only from commits:"
        )?;
        for file in self.files.iter().take(20) {
            writeln!(f, "  {file}")?;
        }
        if self.files.len() > 20 {
            writeln!(f, "  … and {} more", self.files.len() - 20)?;
        }
        match &self.deploying {
            None => write!(
                f,
                "hint: commit them, or pass --allow-dirty to build them as `{}-dirty-<hash>`",
                self.commit
            ),
            // `deploy` has no --allow-dirty: what runs in an environment is always a commit.
            Some(env) => write!(
                f,
                "hint: an environment runs only commits: commit them and deploy again, or `sandpit deploy {env} --sha HEAD` deploys the last commit without them"
            ),
        }
    }
}

impl std::error::Error for UncommittedChanges {}

/// A finished build and the definition it was built from.
#[derive(Debug)]
pub struct BuildOutcome {
    pub spec: Spec,
    pub report: BuildReport,
    pub store_root: PathBuf,
    /// What was built: the commit id, or the snapshot tree of a dirty working tree.
    pub treeish: String,
    /// `spec` (resolving the version, reading `sandpit.toml` at it) and `plan` (input keys, and
    /// building what was not reused).
    pub timings: PhaseTimings,
    /// The repository it was built from.
    pub repo: Repository,
}

pub fn build(
    context: &Context,
    options: &BuildOptions,
    progress: &mut dyn BuildProgress,
) -> anyhow::Result<BuildOutcome> {
    let started = std::time::Instant::now();
    let mut timings = PhaseTimings::default();
    let repo = context.source.repository(&context.base_env)?;
    let (version, treeish) = match (&context.source, &options.rev) {
        (Source::Commit { commit, .. }, rev) => {
            // A commit source builds exactly its commit, which must be in its repository.
            let built = repo.resolve(commit.as_str())?;
            // (No revision is looked up for a build refused anyway.)
            let asked = match rev {
                Some(rev) if !options.allow_dirty => Some((rev.as_str(), repo.resolve(rev)?)),
                _ => None,
            };
            refuse_other_than_commit(
                &built,
                options.allow_dirty,
                asked.as_ref().map(|(rev, id)| (*rev, id)),
            )?;
            (Version::clean(built.clone()), built.to_string())
        }
        (Source::Checkout { .. }, Some(rev)) => {
            if options.allow_dirty {
                crate::fail!(
                    InvalidInput,
                    "--allow-dirty applies to the working tree; it cannot be combined with --sha\nhint: drop --sha to build the working tree, or drop --allow-dirty to build {rev}"
                );
            }
            let commit = repo.resolve(rev)?;
            (Version::clean(commit.clone()), commit.to_string())
        }
        (Source::Checkout { .. }, None) => {
            let commit = repo.resolve("HEAD")?;
            let dirty = repo.dirty_files()?;
            if dirty.is_empty() {
                (Version::clean(commit.clone()), commit.to_string())
            } else if options.allow_dirty {
                let snapshot = repo.snapshot_working_tree()?;
                (Version::dirty(commit, &snapshot.diff_hash), snapshot.tree)
            } else {
                return Err(UncommittedChanges {
                    commit,
                    files: dirty.iter().map(|f| f.to_string()).collect(),
                    deploying: None,
                }
                .into());
            }
        }
    };
    let spec_path = spec_path(repo.prefix());
    let Some(text) = repo.read_file(&treeish, &spec_path)? else {
        crate::fail!(
            NotFound,
            "{spec_path} does not exist at {version}\nhint: commit sandpit.toml first"
        );
    };
    let spec =
        parse_spec(&text).with_context(|| format!("sandpit.toml at {version} is invalid"))?;
    timings.add(Phase::Spec, started.elapsed());
    let planning = std::time::Instant::now();
    let store_root = context.artifact_store_root(spec.project.name.as_str());
    let store = ArtifactStore::open(&store_root)?;
    let models = crate::models::inspector(context, &spec)?;
    let terraform = crate::terraform::validator(context, &spec);
    let report = sandpit_build::execute::build(
        BuildRequest {
            repo: &repo,
            version,
            treeish: treeish.clone(),
            spec: &spec,
            store: &store,
            log_dir: context.build_log_dir(spec.project.name.as_str()),
            sandpit_version: &context.version,
            base_env: context.base_env.clone(),
            project_prefix: repo.prefix().to_owned(),
            models: models
                .as_ref()
                .map(|m| m as &dyn sandpit_build::execute::ModelInspector),
            terraform: terraform
                .as_ref()
                .map(|v| v as &dyn sandpit_build::execute::ModuleValidator),
        },
        progress,
    )?;
    timings.add(Phase::Plan, planning.elapsed());
    Ok(BuildOutcome {
        spec,
        report,
        store_root,
        treeish,
        timings,
        repo,
    })
}

/// A commit source builds its commit and nothing else: not another revision (`asked`: the
/// revision given and the commit it names), not uncommitted changes (it has no working tree).
fn refuse_other_than_commit(
    commit: &CommitId,
    allow_dirty: bool,
    asked: Option<(&str, &CommitId)>,
) -> anyhow::Result<()> {
    if allow_dirty {
        crate::fail!(
            InvalidInput,
            "--allow-dirty builds a working tree's uncommitted changes, and this project is read from commit {commit}, which has none\nhint: drop --allow-dirty"
        );
    }
    if let Some((rev, asked)) = asked {
        if asked != commit {
            crate::fail!(
                InvalidInput,
                "`{rev}` is {asked}, and this project is read from commit {commit}, the only one it builds\nhint: drop --sha, or ask for a build of {asked} itself"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_source_builds_its_commit_and_refuses_anything_else() {
        let commit = CommitId::parse(&"a".repeat(40)).unwrap();
        let other = CommitId::parse(&"b".repeat(40)).unwrap();
        // (allow_dirty, asked, Ok or Err(words))
        type Case<'a> = (bool, Option<(&'a str, &'a CommitId)>, Result<(), &'a str>);
        let table: Vec<Case> = vec![
            (false, None, Ok(())),
            (false, Some(("HEAD", &commit)), Ok(())),
            (false, Some(("main", &other)), Err("`main` is bbbb")),
            (true, None, Err("--allow-dirty")),
            (true, Some(("HEAD", &commit)), Err("--allow-dirty")),
        ];
        for (allow_dirty, asked, expected) in table {
            let refused = refuse_other_than_commit(&commit, allow_dirty, asked);
            match (refused, expected) {
                (Ok(()), Ok(())) => {}
                (Err(error), Err(words)) => {
                    assert!(error.to_string().contains(words), "{error}");
                    assert!(error.to_string().contains("\nhint: "), "{error}");
                    assert_eq!(
                        crate::error::kind_of(&error),
                        crate::error::ErrorKind::InvalidInput
                    );
                }
                (refused, expected) => {
                    panic!("{allow_dirty} {asked:?}: {refused:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn the_dirty_tree_hint_offers_only_what_the_command_takes() {
        let commit = CommitId::parse(&"a".repeat(40)).unwrap();
        let refused = |deploying: Option<&str>, files: usize| {
            UncommittedChanges {
                commit: commit.clone(),
                files: (0..files).map(|i| format!("src/{i}.py")).collect(),
                deploying: deploying.map(|env| Name::parse(env).unwrap()),
            }
            .to_string()
        };
        let building = refused(None, 1);
        assert!(building.contains("\n  src/0.py\n"), "{building}");
        assert!(building.contains("pass --allow-dirty"), "{building}");
        let deploying = refused(Some("dev"), 1);
        assert!(!deploying.contains("--allow-dirty"), "{deploying}");
        assert!(
            deploying.contains("`sandpit deploy dev --sha HEAD`"),
            "{deploying}"
        );
        let many = refused(None, 25);
        assert!(
            many.contains("src/19.py") && !many.contains("src/20.py"),
            "{many}"
        );
        assert!(many.contains("… and 5 more"), "{many}");
        // Only a refusal of uncommitted changes gets the deploy hint.
        let other = UncommittedChanges::when_deploying(
            anyhow::anyhow!("boom"),
            &Name::parse("dev").unwrap(),
        );
        assert_eq!(other.to_string(), "boom");
        let error: anyhow::Error = UncommittedChanges {
            commit: commit.clone(),
            files: vec!["x".into()],
            deploying: None,
        }
        .into();
        let redone = UncommittedChanges::when_deploying(error, &Name::parse("prod").unwrap());
        assert!(
            redone
                .to_string()
                .contains("sandpit deploy prod --sha HEAD"),
            "{redone}"
        );
    }
}
