//! Deployments: recording them (append-only, in the state store), running them in arrival order
//! per target, and rolling back automatically when one fails.
//!
//! Every use case that changes what a target runs (`up`, `deploy`, `promote`, `approve`,
//! `rollback`) goes through here, so each change is a record that says who asked, what ran, and
//! how it ended.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sandpit_artifact::store::{ArtifactStore, ImportMethod, StoreError};
use sandpit_build::git::Repository;
use sandpit_domain::{ArtifactName, Digest, Name};
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::{
    DeployedComponent, Deployment, DeploymentKind, NewDeployment, StateStore, StepKind,
};

use crate::error::{failure, ErrorKind};
use crate::project::parse_spec;
use crate::release::{Chosen, Release};
use crate::timings::{Phase, PhaseTimings};
use crate::{Context, Source};

/// How long a deployment waits for earlier ones on the same target before giving up.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The outcome of running one deployment.
#[derive(Debug)]
pub struct RolloutReport {
    pub deployment: Deployment,
    /// What the target runs now; `None` after a destroy.
    pub status: Option<BiomeStatus>,
}

/// Why a rollout stopped, and whether what runs had been touched by then.
#[derive(Debug)]
enum RolloutFailure {
    /// Before any component or model registration changed (artifacts refused, a rehearsal or a
    /// migration failed): what ran keeps running as it was, so there is nothing to roll back.
    BeforeRollout(anyhow::Error),
    /// While the daemon was replacing components (or the endpoint's models).
    DuringRollout(anyhow::Error),
}

impl RolloutFailure {
    fn into_error(self) -> anyhow::Error {
        match self {
            RolloutFailure::BeforeRollout(error) | RolloutFailure::DuringRollout(error) => error,
        }
    }
}

/// Where a rollout reads the commit's migrations from, and how to treat the database.
pub struct DatabaseSource<'a> {
    /// The commit (or snapshot tree) whose migrations are deployed, or the files a manifest
    /// carried from it.
    pub sql: crate::sql_files::SqlSource<'a>,
    /// Drop the database and clone it again from the template (biomes only).
    pub reset: bool,
}

pub fn state_store(context: &Context) -> anyhow::Result<StateStore> {
    Ok(StateStore::open_at(&context.state)?)
}

/// Where an environment's own artifact store is.
pub fn env_store_root(context: &Context, project: &Name, env: &Name) -> std::path::PathBuf {
    context
        .home
        .join("projects")
        .join(project.as_str())
        .join("envs")
        .join(env.as_str())
        .join("artifacts")
}

/// An environment's own artifact store, visible as `<component>-<sha>.zip` files.
pub fn env_store(context: &Context, project: &Name, env: &Name) -> anyhow::Result<ArtifactStore> {
    Ok(ArtifactStore::open(&env_store_root(context, project, env))?)
}

/// `ENV` for an environment's base, `ENV/BIOME` for a biome.
pub fn target_label(env: &Name, biome: &Name) -> String {
    if env == biome {
        env.to_string()
    } else {
        format!("{env}/{biome}")
    }
}

/// Who is asking, by name: the principal's, or for the local user in a checkout git's
/// `user.email`. A commit source (a server) knows its requesters only by the principal's name:
/// a mirror's git configuration says nothing about who asks.
pub fn requester(context: &Context) -> anyhow::Result<String> {
    if let crate::principal::Identity::Named(name) = &context.principal.identity {
        return Ok(name.clone());
    }
    if let Source::Commit { commit, .. } = &context.source {
        crate::fail!(
            InvalidInput,
            "cannot tell who you are: the project is read from commit {commit}, whose repository does not say who asks\nhint: name the principal (SANDPIT_USER, or a server token's user)"
        );
    }
    let email = context
        .source
        .repository(&context.base_env)
        .ok()
        .and_then(|repo| repo.user_email().ok().flatten());
    email.ok_or_else(|| {
        crate::error::failure(
            crate::error::ErrorKind::InvalidInput,
            "cannot tell who you are\nhint: set SANDPIT_USER, or `git config user.email you@example.com`",
        )
    })
}

pub(crate) fn deployed_components(release: &Release<'_>) -> Vec<DeployedComponent> {
    release
        .artifacts
        .iter()
        .map(|(name, chosen)| DeployedComponent {
            name: name.to_string(),
            artifact: chosen.artifact.clone(),
            digest: chosen.digest.to_string(),
            borrowed_from: release.borrowed_from(name).map(Name::to_string),
        })
        .collect()
}

/// Waits until deployment `id` is the first unfinished one of its target, polling without
/// holding a thread (a server runs many of these at once); `StateError::QueueTimeout` after
/// [`QUEUE_TIMEOUT`].
pub(crate) async fn wait_turn(
    state: &mut StateStore,
    id: i64,
) -> Result<(), sandpit_state::StateError> {
    let started = Instant::now();
    loop {
        match state.blocking(id)? {
            None => return Ok(()),
            Some(blocking_id) if started.elapsed() >= QUEUE_TIMEOUT => {
                return Err(sandpit_state::StateError::QueueTimeout { id, blocking_id })
            }
            Some(_) => tokio::time::sleep(StateStore::TURN_POLL_INTERVAL).await,
        }
    }
}

/// Records an `up` into a biome and applies it at once (biomes need no approvals), after any
/// earlier operation on the same biome has finished. The database is prepared (created, or
/// migrated in place after a rehearsal) inside the recorded deployment, so `history` shows it.
pub async fn record_and_apply(
    context: &Context,
    release: Release<'_>,
    source: &DatabaseSource<'_>,
    kind: DeploymentKind,
    timings: &mut PhaseTimings,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    let recording = Instant::now();
    let mut state = state_store(context)?;
    let deployment = state.create(&NewDeployment {
        project: release.spec.project.name.to_string(),
        target: target_label(&release.env, &release.biome),
        env: release.env.to_string(),
        biome: (release.env != release.biome).then(|| release.biome.to_string()),
        sha: release.version.clone(),
        components: deployed_components(&release),
        requested_by: requester(context)?,
        approvals_required: 0,
        kind,
        rollback_of: None,
        restores: None,
    })?;
    wait_turn(&mut state, deployment.id).await?;
    state.mark_started(deployment.id, std::process::id())?;
    drop(state);
    // Read in its turn, so a `config` change that ran before it is included.
    let layers = crate::config::load_layers(
        context,
        &release.spec.project.name,
        &release.config_target(),
    );
    timings.add(Phase::Record, recording.elapsed());
    let layers = match layers {
        Ok(layers) => layers,
        Err(error) => {
            state_store(context)?.mark_failed(deployment.id, &format!("{error:#}"))?;
            return Err(error);
        }
    };
    match roll_out(
        context,
        release,
        source,
        &layers,
        deployment.id,
        timings,
        on_event,
    )
    .await
    {
        Ok(status) => {
            state_store(context)?.mark_succeeded(deployment.id)?;
            Ok(status)
        }
        Err(failure) => {
            let error = failure.into_error();
            state_store(context)?.mark_failed(deployment.id, &format!("{error:#}"))?;
            Err(error)
        }
    }
}

/// Prepares the database (recording its steps on deployment `id`), writes the configuration's
/// secrets for this release, registers the models, and hands the desired state to the daemon.
async fn roll_out(
    context: &Context,
    mut release: Release<'_>,
    source: &DatabaseSource<'_>,
    layers: &crate::config::Layers,
    id: i64,
    timings: &mut PhaseTimings,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> Result<BiomeStatus, RolloutFailure> {
    let target = release.config_target();
    let project = release.spec.project.name.clone();
    let result =
        roll_out_configured(context, &mut release, source, layers, id, timings, on_event).await;
    match &result {
        Ok(_) => crate::config::released(context, &project, &target, id),
        // What runs still reads the files of an earlier release.
        Err(RolloutFailure::BeforeRollout(_)) => {
            crate::config::unreleased(context, &project, &target, id)
        }
        // What runs may read this release's files or an earlier one's: both stay.
        Err(RolloutFailure::DuringRollout(_)) => {}
    }
    result
}

async fn roll_out_configured(
    context: &Context,
    release: &mut Release<'_>,
    source: &DatabaseSource<'_>,
    layers: &crate::config::Layers,
    id: i64,
    timings: &mut PhaseTimings,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> Result<BiomeStatus, RolloutFailure> {
    let target = &release.config_target();
    // An approved plan that can no longer apply fails the deployment before the database is
    // touched.
    crate::terraform::refuse_moved_plans(context, release, id)
        .map_err(RolloutFailure::BeforeRollout)?;
    let preparing = Instant::now();
    let seed = crate::database::seeds(release.spec, &release.env, &release.biome);
    let mut steps = |step: StepKind, message: &str| -> anyhow::Result<()> {
        Ok(state_store(context)?.record_step(id, step, message)?)
    };
    release.database = crate::database::prepare(
        context,
        release.spec,
        source,
        &release.env,
        &release.biome,
        seed,
        &mut |m| on_event(None, m),
        &mut steps,
    )
    .await
    .map_err(RolloutFailure::BeforeRollout)?;
    timings.add(Phase::Database, preparing.elapsed());
    release.config = crate::config::release(context, release.spec, target, id, layers)
        .map_err(RolloutFailure::BeforeRollout)?;
    // Infrastructure first: what it outputs is what the processes are started with. A failed
    // apply may have changed some of it, so it counts as a failure during the rollout (an
    // environment rolls back to its previous deployment, which applies that one's module) —
    // except an approved plan refused before anything was applied.
    let applying_terraform = Instant::now();
    release.terraform = crate::terraform::apply_release(context, release, id, on_event)
        .await
        .map_err(|error| {
            if error.is::<crate::terraform::PlanRefused>() {
                RolloutFailure::BeforeRollout(error)
            } else {
                RolloutFailure::DuringRollout(error)
            }
        })?;
    timings.add(Phase::Terraform, applying_terraform.elapsed());
    let attaching = Instant::now();
    let store =
        ArtifactStore::open(release.store).map_err(|e| RolloutFailure::BeforeRollout(e.into()))?;
    let attached = crate::models::attach(context, release, &store, &mut |m| on_event(None, m))
        .await
        .map_err(RolloutFailure::DuringRollout)?;
    release.extra_env = attached.env;
    release.models = attached.registration;
    timings.add(Phase::Models, attaching.elapsed());
    let applying = Instant::now();
    let status = release
        .apply(context, |c, m| on_event(c, m))
        .await
        .map_err(RolloutFailure::DuringRollout)?;
    let health_wait = Duration::from_millis(status.ready_wait_ms.unwrap_or(0));
    timings.add(
        Phase::Daemon,
        applying.elapsed().saturating_sub(health_wait),
    );
    timings.add(Phase::HealthWait, health_wait);
    Ok(status)
}

/// Runs a recorded (approved, or needing no approval) deployment into an environment's base.
/// A failure while components were being replaced rolls back automatically to the previous
/// successful deployment, recorded as a deployment of its own; a failure before anything changed
/// (a refused artifact, a failed rehearsal) leaves what runs as it was and needs no rollback.
pub async fn execute(
    context: &Context,
    id: i64,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<RolloutReport> {
    let mut state = state_store(context)?;
    let deployment = state
        .get(id)?
        .ok_or_else(|| failure(ErrorKind::NotFound, format!("there is no deployment #{id}")))?;
    if deployment.approvals_missing() > 0 {
        crate::fail!(
            NeedsApproval,
            "deployment #{id} still needs {} approval(s): `sandpit approve {id}` by someone other than {}",
            deployment.approvals_missing(),
            deployment.requested_by
        );
    }
    on_event(
        None,
        &format!(
            "deployment #{id}: waiting for earlier deployments to {}",
            deployment.target
        ),
    );
    wait_turn(&mut state, id).await?;
    state.mark_started(id, std::process::id())?;
    if deployment.kind == DeploymentKind::Destroy {
        drop(state);
        on_event(
            None,
            &format!("deployment #{id}: destroying {}", deployment.target),
        );
        let result = crate::destroy::tear_down(context, &deployment, on_event).await;
        let mut state = state_store(context)?;
        return match result {
            Ok(()) => {
                state.mark_succeeded(id)?;
                let deployment = state.get(id)?.expect("just recorded");
                Ok(RolloutReport {
                    deployment,
                    status: None,
                })
            }
            Err(error) => {
                state.mark_failed(id, &format!("{error:#}"))?;
                Err(error.context(format!(
                    "destroying `{}` (deployment #{id}) failed",
                    deployment.target
                )))
            }
        };
    }
    let doing = if deployment.kind == DeploymentKind::Config {
        format!("changing the configuration of {}", deployment.target)
    } else {
        format!(
            "deploying {} to {}",
            short(&deployment.sha),
            deployment.target
        )
    };
    on_event(None, &format!("deployment #{id}: {doing}"));
    drop(state);
    let result = apply(context, &deployment, on_event).await;
    let mut state = state_store(context)?;
    match result {
        Ok(status) => {
            state.mark_succeeded(id)?;
            if let Some(undone) = deployment.rollback_of {
                state.mark_rolled_back(undone, id)?;
            }
            let deployment = state.get(id)?.expect("just recorded");
            Ok(RolloutReport {
                deployment,
                status: Some(status),
            })
        }
        Err(RolloutFailure::BeforeRollout(error)) => {
            state.mark_failed(id, &format!("{error:#}"))?;
            Err(error.context(format!(
                "deployment #{id} failed before anything in `{}` was changed; what ran there keeps running",
                deployment.target
            )))
        }
        Err(RolloutFailure::DuringRollout(error)) => {
            state.mark_failed(id, &format!("{error:#}"))?;
            if deployment.kind == DeploymentKind::Rollback {
                return Err(error.context(format!("rollback #{id} failed")));
            }
            let Some(previous) = state.current(&deployment.project, &deployment.target)? else {
                return Err(error.context(format!(
                    "deployment #{id} failed, and there is no earlier deployment to roll back to"
                )));
            };
            on_event(
                None,
                &format!(
                    "deployment #{id} failed; rolling back to deployment #{}",
                    previous.id
                ),
            );
            let rollback = state.create(&NewDeployment {
                project: deployment.project.clone(),
                target: deployment.target.clone(),
                env: deployment.env.clone(),
                biome: deployment.biome.clone(),
                sha: previous.sha.clone(),
                components: previous.components.clone(),
                requested_by: "sandpit (automatic rollback)".to_owned(),
                approvals_required: 0,
                kind: DeploymentKind::Rollback,
                rollback_of: Some(id),
                restores: Some(previous.id),
            })?;
            state.mark_started(rollback.id, std::process::id())?;
            drop(state);
            let restored = apply(context, &rollback, on_event).await;
            let mut state = state_store(context)?;
            match restored {
                Ok(_) => {
                    state.mark_succeeded(rollback.id)?;
                    state.mark_rolled_back(id, rollback.id)?;
                    Err(error.context(format!(
                        "deployment #{id} failed and was rolled back automatically to deployment #{}'s artifacts (as deployment #{})",
                        previous.id, rollback.id
                    )))
                }
                Err(rollback_error) => {
                    let rollback_error = rollback_error.into_error();
                    state.mark_failed(rollback.id, &format!("{rollback_error:#}"))?;
                    Err(error.context(format!(
                        "deployment #{id} failed, and the automatic rollback #{} failed too: {rollback_error:#}",
                        rollback.id
                    )))
                }
            }
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Plans the terraform components of `deployment`, just recorded and waiting for approvals,
/// when it needs it (`terraform::saved_plan::needs_plan`): the approvers see each plan's
/// summary as a step, and the approval applies exactly those plans. A plan that fails fails
/// the deployment: nothing is left pending.
pub(crate) async fn plan_pending(
    context: &Context,
    deployment: Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<Deployment> {
    if !crate::terraform::saved_plan::needs_plan(
        deployment.approvals_required,
        &deployment.kind,
        deployment.biome.is_none(),
    ) {
        return Ok(deployment);
    }
    let id = deployment.id;
    match plan_recorded(context, &deployment, on_event).await {
        Ok(()) => Ok(state_store(context)?.get(id)?.unwrap_or(deployment)),
        Err(error) => {
            state_store(context)?.mark_failed(id, &format!("{error:#}"))?;
            if deployment.kind == DeploymentKind::Config {
                crate::config::discard(context, &deployment);
            }
            Err(error.context(format!(
                "deployment #{id} to `{}` failed: its terraform plan for the approvers could not be made, so nothing waits for approval",
                deployment.target
            )))
        }
    }
}

/// [`plan_pending`]'s work: the release as [`apply`] would make it (artifacts imported and
/// verified, the target's configuration, a `config` deployment's change), planned.
async fn plan_recorded(
    context: &Context,
    deployment: &Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<()> {
    let repo = context.source.repository(&context.base_env)?;
    if spec_at(&repo, deployment)?
        .terraform_components()
        .is_empty()
    {
        return Ok(());
    }
    let (spec, artifacts, env, biome, store) =
        resolve_artifacts(context, &repo, deployment, on_event)?;
    let mut release = Release {
        spec: &spec,
        env,
        biome,
        version: deployment.sha.clone(),
        store: store.root(),
        artifacts,
        database: None,
        extra_env: BTreeMap::new(),
        models: None,
        config: Default::default(),
        borrowed: BTreeMap::new(),
        shared_models: Default::default(),
        terraform: Default::default(),
    };
    let target = release.config_target();
    let layers = if deployment.kind == DeploymentKind::Config {
        crate::config::requested(context, deployment)?.layers
    } else {
        crate::config::load_layers(context, &spec.project.name, &target)?
    };
    release.config = crate::config::release(context, &spec, &target, deployment.id, &layers)?;
    let planned = crate::terraform::plan_release(context, &release, deployment.id, on_event).await;
    // The release's files are written again when it runs, with the configuration of then.
    crate::config::unreleased(context, &spec.project.name, &target, deployment.id);
    planned.map(drop)
}

/// Puts the deployment's artifacts in place (verified) and makes the target run them, with the
/// target's stored configuration — for a `config` deployment, with its change, which is stored
/// only once the target runs with it (and dropped when it fails).
async fn apply(
    context: &Context,
    deployment: &Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> Result<BiomeStatus, RolloutFailure> {
    if deployment.kind != DeploymentKind::Config {
        return apply_with(context, deployment, None, on_event).await;
    }
    let requested = match crate::config::requested(context, deployment) {
        Ok(requested) => requested,
        Err(error) => {
            crate::config::discard(context, deployment);
            return Err(RolloutFailure::BeforeRollout(error));
        }
    };
    let result = apply_with(context, deployment, Some(&requested.layers), on_event)
        .await
        .and_then(|status| {
            crate::config::commit(context, deployment, &requested.change)
                .map(|()| status)
                .map_err(RolloutFailure::DuringRollout)
        });
    if result.is_err() {
        crate::config::discard(context, deployment);
    }
    result.map_err(|failure| match failure {
        RolloutFailure::BeforeRollout(e) => RolloutFailure::BeforeRollout(e.context(format!(
            "the change ({}) was not made",
            requested.change.describe()
        ))),
        RolloutFailure::DuringRollout(e) => RolloutFailure::DuringRollout(e.context(format!(
            "the change ({}) was not kept",
            requested.change.describe()
        ))),
    })
}

/// [`apply`] with `layers` as the configuration (`None`: as stored).
async fn apply_with(
    context: &Context,
    deployment: &Deployment,
    layers: Option<&crate::config::Layers>,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> Result<BiomeStatus, RolloutFailure> {
    let before = RolloutFailure::BeforeRollout;
    let repo = context
        .source
        .repository(&context.base_env)
        .map_err(before)?;
    let (spec, artifacts, env, biome, store) =
        resolve_artifacts(context, &repo, deployment, on_event).map_err(before)?;
    let commit = deployment
        .sha
        .get(..40)
        .unwrap_or(&deployment.sha)
        .to_owned();
    // An overlay biome's later deployments (a `config` change) borrow what its `up` borrowed.
    let (borrowed, shared_models) =
        crate::overlay::recorded_borrowing(&spec, &deployment.components).map_err(before)?;
    let release = Release {
        spec: &spec,
        env,
        biome,
        version: deployment.sha.clone(),
        store: store.root(),
        artifacts,
        database: None,
        extra_env: BTreeMap::new(),
        models: None,
        config: Default::default(),
        borrowed,
        shared_models,
        terraform: Default::default(),
    };
    let source = DatabaseSource {
        sql: crate::sql_files::SqlSource::Git {
            repo: &repo,
            treeish: &commit,
        },
        reset: false,
    };
    let layers = match layers {
        Some(layers) => layers.clone(),
        None => crate::config::load_layers(context, &spec.project.name, &release.config_target())
            .map_err(before)?,
    };
    let mut timings = PhaseTimings::default();
    roll_out(
        context,
        release,
        &source,
        &layers,
        deployment.id,
        &mut timings,
        on_event,
    )
    .await
}

/// `sandpit.toml` as it is at the deployment's commit.
pub(crate) fn spec_at(
    repo: &Repository,
    deployment: &Deployment,
) -> anyhow::Result<sandpit_spec::Spec> {
    let commit = deployment.sha.get(..40).unwrap_or(&deployment.sha);
    let spec_path = crate::source::spec_path(repo.prefix());
    let source = repo
        .read_file(commit, &spec_path)?
        .with_context(|| format!("{spec_path} does not exist at {commit}"))?;
    parse_spec(&source).with_context(|| format!("sandpit.toml at {commit} is invalid"))
}

/// The spec at the deployment's commit and its artifacts, each in the target environment's
/// store (imported from the build store or the promotion's source, verified).
#[allow(clippy::type_complexity)]
fn resolve_artifacts(
    context: &Context,
    repo: &Repository,
    deployment: &Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<(
    sandpit_spec::Spec,
    BTreeMap<Name, Chosen>,
    Name,
    Name,
    ArtifactStore,
)> {
    let project = Name::parse(&deployment.project)?;
    let env = Name::parse(&deployment.env)?;
    let biome = match &deployment.biome {
        Some(biome) => Name::parse(biome)?,
        None => env.clone(),
    };
    let spec = spec_at(repo, deployment)?;

    // A biome runs what its `up` built, from the build store; a base, its environment's copy.
    let store = match &deployment.biome {
        Some(_) => ArtifactStore::open(&context.artifact_store_root(project.as_str()))?,
        None => env_store(context, &project, &env)?,
    };
    let source_store = match &deployment.kind {
        DeploymentKind::Promote { from } => {
            Some(env_store(context, &project, &Name::parse(from)?)?)
        }
        DeploymentKind::Deploy => Some(ArtifactStore::open(
            &context.artifact_store_root(project.as_str()),
        )?),
        // A rollback redeploys only what the environment's own store still holds.
        DeploymentKind::Rollback
        | DeploymentKind::Up
        | DeploymentKind::Destroy
        | DeploymentKind::Down
        | DeploymentKind::Config => None,
    };
    let mut artifacts = BTreeMap::new();
    for component in &deployment.components {
        let name = ArtifactName::parse(&component.artifact)
            .ok_or_else(|| anyhow::anyhow!("`{}` is not an artifact name", component.artifact))?;
        // Every read verifies the digest: a tampered blob stops the deployment here, before
        // anything that runs is touched.
        let found = match store.get(&name) {
            Ok(found) => found,
            // A lost blob is copied again from the source store when there is one.
            Err(StoreError::BlobMissing { .. }) if source_store.is_some() => None,
            Err(error @ StoreError::DigestMismatch { .. }) => {
                let path = match &error {
                    StoreError::DigestMismatch { path, .. } => path.display().to_string(),
                    _ => unreachable!("matched above"),
                };
                return Err(anyhow::Error::new(error).context(format!(
                    "refusing to deploy {name} into `{env}`: its copy in `{env}`'s store at {path} was modified\nhint: `sandpit verify --repair` replaces it with an intact copy from another store (keeping the damaged file in the store's quarantine/)"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let stored = match (found, &source_store) {
            (Some(stored), _) => stored,
            (None, Some(source)) => {
                let imported = store.import(source, &name)?;
                let how = match imported.method {
                    ImportMethod::AlreadyPresent => {
                        format!("named {name} in `{env}`'s store (its bytes were there already)")
                    }
                    ImportMethod::Reflink => {
                        format!("copied {name} into `{env}`'s store (copy-on-write clone)")
                    }
                    ImportMethod::Copy => format!("copied {name} into `{env}`'s store"),
                };
                on_event(Some(&name.component), &how);
                imported.artifact
            }
            (None, None) if deployment.biome.is_some() => bail!(
                "{name} is no longer in the build store, so `{}` cannot run it again\nhint: `sandpit up` builds it again",
                deployment.target
            ),
            (None, None) => bail!(
                "{} is no longer in `{env}`'s artifact store, so it cannot be deployed again\nhint: deploy a commit instead: `sandpit deploy {env} --sha {}`",
                name,
                short(&deployment.sha)
            ),
        };
        let expected = Digest::parse(&component.digest)?;
        if stored.digest != expected {
            bail!(
                "{} in `{env}`'s store is {}, but deployment #{} recorded {}",
                name,
                stored.digest,
                deployment.id,
                expected
            );
        }
        artifacts.insert(
            name.component.clone(),
            Chosen {
                artifact: component.artifact.clone(),
                digest: expected,
            },
        );
    }
    Ok((spec, artifacts, env, biome, store))
}
