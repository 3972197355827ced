//! `sandpit up [BIOME]`: build at a commit, then hand the biome's desired state to the daemon and
//! wait until it has converged.

use sandpit_build::execute::BuildProgress;
use sandpit_domain::Name;
use std::time::Instant;

use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::DeploymentKind;

use crate::build::{BuildOptions, BuildOutcome};
use crate::deployment::DatabaseSource;
use crate::project::biome_environment;
use crate::release::{Chosen, Release};
use crate::timings::{Phase, PhaseTimings};
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
    /// Run only what differs from the environment's base, borrowing the rest (`ops::overlay`);
    /// `None`: as `[biomes] overlay` says.
    pub overlay: Option<bool>,
}

#[derive(Debug)]
pub struct UpOutcome {
    pub build: BuildOutcome,
    pub status: BiomeStatus,
    /// `false` when the biome already ran exactly this (same version, artifacts and
    /// configuration, healthy): nothing was recorded or restarted.
    pub changed: bool,
    /// Where the time went (see [`Phase`]).
    pub timings: PhaseTimings,
    /// The biome's terraform states after it (empty without terraform components).
    pub terraform: Vec<crate::terraform::StateOverview>,
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
        crate::error::failure(
            crate::error::ErrorKind::InvalidInput,
            format!(
                "the biome name {} {}\nhint: {}",
                sandpit_domain::quoted(raw),
                e.problem(),
                e.hint()
            ),
        )
    })
}

/// Biomes may not be named like environments: a bare environment name means its base.
fn refuse_environment_name(spec: &sandpit_spec::Spec, biome: &Name) -> anyhow::Result<()> {
    if spec.environments.contains_key(biome) {
        crate::fail!(
            InvalidInput,
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
    let started = Instant::now();
    let mut timings = PhaseTimings::default();
    let biome = match &options.biome {
        Some(raw) => parse_biome_name(raw)?,
        None => context
            .source
            .default_biome_name(&context.base_env, "name it: `sandpit up NAME`")?,
    };
    // The name and the environment are checked against the source's current `sandpit.toml`
    // before spending time on a build, and against the built commit's after it.
    // (A current file that does not parse is left to the build to report, at its commit.)
    if let Ok(current_spec) = context.source.spec() {
        refuse_environment_name(&current_spec, &biome)?;
        biome_environment(&current_spec, options.env.as_deref())?;
    }
    timings.add(Phase::Spec, started.elapsed());
    let build = crate::build::build(context, &options.build, progress)?;
    timings.extend(&build.timings);
    let spec = &build.spec;
    refuse_environment_name(spec, &biome)?;
    let env = biome_environment(spec, options.env.as_deref())?;
    let repo = &build.repo;
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
    let mut release = Release {
        spec,
        env: env.clone(),
        biome: biome.clone(),
        version: build.report.version.to_string(),
        store: &build.store_root,
        artifacts,
        database: None,
        extra_env: Default::default(),
        models: None,
        config: Default::default(),
        borrowed: Default::default(),
        shared_models: Default::default(),
        terraform: Default::default(),
    };
    if options.overlay.unwrap_or(spec.biomes.overlay) {
        crate::overlay::plan(context, &mut release, &mut on_event).await?;
    }
    if !options.reset_db {
        if let Some(status) = already_up(context, &release, &mut timings).await? {
            // Still an `up`: the biome is in use, so its time to live starts again.
            crate::expiry::record_up(context, spec, &env, &biome, repo, &build.treeish)?;
            let terraform = crate::terraform::overview(context, &spec.project.name, &env, &biome);
            return Ok(UpOutcome {
                build,
                status,
                changed: false,
                timings,
                terraform,
            });
        }
    }
    let source = DatabaseSource {
        sql: crate::sql_files::SqlSource::Git {
            repo,
            treeish: &build.treeish,
        },
        reset: options.reset_db,
    };
    let status = crate::deployment::record_and_apply(
        context,
        release,
        &source,
        DeploymentKind::Up,
        &mut timings,
        &mut on_event,
    )
    .await?;
    crate::expiry::record_up(context, spec, &env, &biome, repo, &build.treeish)?;
    let terraform = crate::terraform::overview(context, &spec.project.name, &env, &biome);
    Ok(UpOutcome {
        build,
        status,
        changed: true,
        timings,
        terraform,
    })
}

/// The biome's status when it already runs exactly `release` and nothing about it changed, so
/// `up` has nothing to do (Terraform's "No changes"): the newest deployment of the biome
/// succeeded with the same version and artifacts, its configuration was not changed since, and
/// the daemon (already running: this never starts one) reports every component healthy at that
/// version, and (with a database) its password is still kept. Anything else, or anything that
/// cannot be told, means a real `up`.
async fn already_up(
    context: &Context,
    release: &Release<'_>,
    timings: &mut PhaseTimings,
) -> anyhow::Result<Option<BiomeStatus>> {
    let project = &release.spec.project.name;
    let recorded = timings.time(Phase::Record, || -> anyhow::Result<bool> {
        let target = crate::deployment::target_label(&release.env, &release.biome);
        let state = crate::deployment::state_store(context)?;
        let Some(latest) = state.latest(project.as_str(), &target)? else {
            return Ok(false);
        };
        let current = state.current(project.as_str(), &target)?;
        if current.as_ref().map(|d| d.id) != Some(latest.id)
            || latest.sha != release.version
            || latest.components != crate::deployment::deployed_components(release)
        {
            return Ok(false);
        }
        crate::config::unchanged_since(context, project, &release.config_target(), latest.id)
    })?;
    if !recorded {
        return Ok(None);
    }
    let asking = Instant::now();
    let reply = crate::daemon_connection::status_if_running(context, project, &release.biome).await;
    timings.add(Phase::Daemon, asking.elapsed());
    // No daemon, no such biome there, or an answer that says nothing: a real `up` sorts it out.
    let Some(status) = reply else {
        return Ok(None);
    };
    if !runs_exactly(&status, release) {
        return Ok(None);
    }
    let kept = crate::database::close_kept_secrets(context, project, &release.env, &release.biome)?;
    // A biome with a database whose password was removed gets a new one from a real `up`.
    if release.spec.database.is_some() && kept == crate::database::KeptSecrets::Missing {
        return Ok(None);
    }
    Ok(Some(status))
}

/// Whether the daemon's `status` is `release`, healthy: the same version, every component that
/// runs as a process healthy (or, for a job, succeeded) with the release's artifact.
fn runs_exactly(status: &BiomeStatus, release: &Release<'_>) -> bool {
    let processes: Vec<(&Name, &Chosen)> = release
        .artifacts
        .iter()
        .filter(|(name, _)| {
            release
                .spec
                .components
                .get(*name)
                .is_some_and(|c| c.kind.runs_as_process())
        })
        .collect();
    status.state == "healthy"
        && status.sha == release.version
        && status.env == release.env
        && status
            .components
            .iter()
            .filter(|c| c.kind.runs_as_process())
            .count()
            == processes.len()
        && processes.iter().all(|(name, chosen)| {
            status.components.iter().any(|c| {
                &c.name == *name
                    && c.digest == chosen.digest
                    && c.state.is_good()
                    && c.borrowed_from.as_ref() == release.borrowed.get(*name)
            })
        })
}
