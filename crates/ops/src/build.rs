//! `sandpit build`: resolve a commit (or snapshot a dirty working tree), read `sandpit.toml` as it
//! is at that version, and build or reuse every component's artifact.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use sandpit_artifact::store::ArtifactStore;
use sandpit_build::execute::{BuildProgress, BuildReport, BuildRequest};
use sandpit_build::git::Repository;
use sandpit_domain::Version;
use sandpit_spec::Spec;

use crate::project::{parse_spec, ProjectDir};
use crate::Context;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// A revision (`HEAD`, a branch, a short sha); `None` builds HEAD, minding the working tree.
    pub rev: Option<String>,
    /// Build uncommitted changes as `<sha>-dirty-<hash>` instead of refusing them.
    pub allow_dirty: bool,
}

/// A finished build and the definition it was built from.
#[derive(Debug)]
pub struct BuildOutcome {
    pub spec: Spec,
    pub report: BuildReport,
    pub store_root: PathBuf,
    /// What was built: the commit id, or the snapshot tree of a dirty working tree.
    pub treeish: String,
}

pub fn build(
    context: &Context,
    options: &BuildOptions,
    progress: &mut dyn BuildProgress,
) -> anyhow::Result<BuildOutcome> {
    let project = ProjectDir::locate(&context.project_dir)?;
    let repo = Repository::discover_with_env(&project.root, context.base_env.clone())?;
    let (version, treeish) = match &options.rev {
        Some(rev) => {
            if options.allow_dirty {
                bail!("--allow-dirty applies to the working tree; it cannot be combined with --sha\nhint: drop --sha to build the working tree, or drop --allow-dirty to build {rev}");
            }
            let commit = repo.resolve(rev)?;
            (Version::clean(commit.clone()), commit.to_string())
        }
        None => {
            let commit = repo.resolve("HEAD")?;
            let dirty = repo.dirty_files()?;
            if dirty.is_empty() {
                (Version::clean(commit.clone()), commit.to_string())
            } else if options.allow_dirty {
                let snapshot = repo.snapshot_working_tree()?;
                (Version::dirty(commit, &snapshot.diff_hash), snapshot.tree)
            } else {
                let listed: Vec<String> = dirty.iter().take(20).map(|f| format!("  {f}")).collect();
                let more = if dirty.len() > 20 {
                    format!("\n  … and {} more", dirty.len() - 20)
                } else {
                    String::new()
                };
                bail!(
                    "the working tree has uncommitted changes, and sandpit builds only from commits:\n{}{more}\nhint: commit them, or pass --allow-dirty to build them as `{commit}-dirty-<hash>`",
                    listed.join("\n")
                );
            }
        }
    };
    let spec_path = join_prefix(repo.prefix(), sandpit_spec::FILE_NAME);
    let source = repo.read_file(&treeish, &spec_path)?.with_context(|| {
        format!("{spec_path} does not exist at {version}\nhint: commit sandpit.toml first")
    })?;
    let spec =
        parse_spec(&source).with_context(|| format!("sandpit.toml at {version} is invalid"))?;
    let store_root = context.artifact_store_root(spec.project.name.as_str());
    let store = ArtifactStore::open(&store_root)?;
    let models = crate::models::inspector(context, &spec)?;
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
        },
        progress,
    )?;
    Ok(BuildOutcome {
        spec,
        report,
        store_root,
        treeish,
    })
}

fn join_prefix(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{prefix}/{path}")
    }
}
