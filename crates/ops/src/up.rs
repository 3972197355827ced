//! `sandpit up [BIOME]`: build at a commit, then hand the biome's desired state to the daemon and
//! wait until it has converged.

use anyhow::bail;
use sandpit_build::execute::BuildProgress;
use sandpit_build::git::Repository;
use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::DeploymentKind;

use crate::build::{BuildOptions, BuildOutcome};
use crate::deployment::DatabaseSource;
use crate::project::{biome_environment, ProjectDir};
use crate::release::{Chosen, Release};
use crate::Context;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// The biome; `None` names it after the current branch.
    pub biome: Option<String>,
    /// The environment it lives in; `None` picks the first that hosts biomes.
    pub env: Option<String>,
    pub build: BuildOptions,
    /// Re-clone the biome's database when its migrations changed (its data is lost).
    pub reset_db: bool,
}

#[derive(Debug)]
pub struct UpOutcome {
    pub build: BuildOutcome,
    pub status: BiomeStatus,
}

/// A biome name given on the command line: as given when valid, else sanitised the way a branch
/// name is (`feature/Better_Model` → `feature-better-model`).
pub fn parse_biome_name(raw: &str) -> anyhow::Result<Name> {
    if let Ok(name) = Name::parse(raw) {
        return Ok(name);
    }
    if let Some(name) = Name::sanitize(raw) {
        return Ok(name);
    }
    Name::parse(raw).map_err(|e| {
        anyhow::anyhow!(
            "the biome name {} {}\nhint: {}",
            sandpit_domain::quoted(raw),
            e.problem(),
            e.hint()
        )
    })
}

/// Biomes may not be named like environments: a bare environment name means its base.
fn refuse_environment_name(spec: &sandpit_spec::Spec, biome: &Name) -> anyhow::Result<()> {
    if spec.environments.contains_key(biome) {
        bail!(
            "`{biome}` is the name of an environment, so it cannot name a biome\nhint: pick another name, e.g. `{biome}-mine`"
        );
    }
    Ok(())
}

pub async fn up(
    context: &Context,
    options: &UpOptions,
    progress: &mut dyn BuildProgress,
    mut on_event: impl FnMut(Option<&Name>, &str),
) -> anyhow::Result<UpOutcome> {
    let project = ProjectDir::locate(&context.project_dir)?;
    let biome = match &options.biome {
        Some(raw) => parse_biome_name(raw)?,
        None => {
            let repo = Repository::discover_with_env(&project.root, context.base_env.clone())?;
            match repo.current_branch()? {
                Some(branch) => Name::sanitize(&branch).ok_or_else(|| {
                    anyhow::anyhow!("cannot make a biome name out of branch `{branch}`\nhint: name it: `sandpit up NAME`")
                })?,
                None => bail!("HEAD is detached, so there is no branch to name the biome after\nhint: name it: `sandpit up NAME`"),
            }
        }
    };
    // The name and the environment are checked against the working tree's `sandpit.toml` before
    // spending time on a build, and against the commit's after it.
    // (A working tree whose file does not parse is left to the build to report, at its commit.)
    if let Ok(current_spec) = project.load_spec() {
        refuse_environment_name(&current_spec, &biome)?;
        biome_environment(&current_spec, options.env.as_deref())?;
    }
    let build = crate::build::build(context, &options.build, progress)?;
    let spec = &build.spec;
    refuse_environment_name(spec, &biome)?;
    let env = biome_environment(spec, options.env.as_deref())?;
    let repo = Repository::discover_with_env(&project.root, context.base_env.clone())?;
    let artifacts: std::collections::BTreeMap<Name, Chosen> = build
        .report
        .components
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                Chosen {
                    artifact: c.artifact.name.file_name(),
                    digest: c.artifact.digest.clone(),
                },
            )
        })
        .collect();
    let release = Release {
        spec,
        env: env.clone(),
        biome: biome.clone(),
        version: build.report.version.to_string(),
        store: &build.store_root,
        artifacts,
        database: None,
        extra_env: Default::default(),
        config: Default::default(),
    };
    let source = DatabaseSource {
        repo: &repo,
        treeish: &build.treeish,
        reset: options.reset_db,
    };
    let status = crate::deployment::record_and_apply(
        context,
        release,
        &source,
        DeploymentKind::Up,
        &mut on_event,
    )
    .await?;
    Ok(UpOutcome { build, status })
}
