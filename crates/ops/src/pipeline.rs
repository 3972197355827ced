//! Pipelines: a pushed commit fetched, built, deployed to the first environment and promoted
//! onward as `auto_promote` asks, recorded stage by stage with a log.
//!
//! [`request`] checks everything that can be checked at once (the role, the project, that the
//! commit is pushed and its `sandpit.toml` valid) and records the pipeline as queued, so a bad
//! request is refused and never queued. [`run_queue`] runs queued pipelines one after another,
//! superseding older queued pipelines of a branch that has a newer one ([`plan::next_in_queue`]);
//! [`recover`] marks pipelines whose server stopped while they ran as failed, to be retried.
//! The builds a pipeline runs block their thread: a server runs the queue on a thread of its own.

pub mod plan;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sandpit_build::execute::{BuildProgress, ComponentOutcome, Outcome as BuildOutcomeKind};
use sandpit_domain::{CommitId, Name};
use sandpit_state::{
    DeploymentState, NewPipeline, NewStage, Outcome, Pipeline, PipelineState, PipelineTarget,
    StageKind, Trigger,
};

use crate::deploy::{DeployOptions, DeployOutcome};
use crate::error::{failure, ErrorKind};
use crate::principal::{Identity, Principal, Role};
use crate::projects::Revision;
use crate::source::Source;
use crate::Context;

/// What `sandpit pipeline run` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRequest {
    pub project: String,
    pub revision: Revision,
    pub trigger: Trigger,
    pub target: Target,
}

/// What a pipeline acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Deploy to the first environment, then promote as `auto_promote` asks.
    Environments,
    /// Bring biome `name` up at the commit (a merge request's `mr-<iid>`).
    Biome { name: String },
    /// Take biome `name` down.
    BiomeDown { name: String },
    /// Put the commit into environment `env` alone: promoted from the environment it
    /// `promote_from`s (which must run this commit), or deployed when it promotes from none
    /// (a tag's `[pipelines] tag_promotes_to`).
    Environment { env: String },
}

impl Target {
    fn state(&self) -> (PipelineTarget, Option<String>) {
        match self {
            Target::Environments | Target::Environment { .. } => {
                (PipelineTarget::Environments, None)
            }
            Target::Biome { name } => (PipelineTarget::Biome, Some(name.clone())),
            Target::BiomeDown { name } => (PipelineTarget::BiomeDown, Some(name.clone())),
        }
    }
}

/// A pipeline to record at once, before anything is fetched ([`enqueue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub project: String,
    /// The commit, 40 hex digits; whether the repository has it is found out by the fetch.
    pub sha: String,
    /// For superseding and display.
    pub branch: Option<String>,
    pub target: Target,
    pub trigger: Trigger,
    /// Who asked, e.g. `gitlab:alice`.
    pub requested_by: String,
}

/// Records a queued pipeline without fetching or reading `sandpit.toml` (a webhook is answered
/// before any of that): its fetch stage fetches the mirror, checks the commit is there and its
/// definition valid, and plans the stages after it. A [`Target::Environment`] is planned now,
/// from the project's definition at its last fetch.
pub fn enqueue(context: &Context, request: &Enqueue) -> anyhow::Result<Pipeline> {
    enqueue_in(
        context,
        &mut crate::deployment::state_store(context)?,
        request,
    )
}

/// [`enqueue`] into an open state store (a webhook's delivery records more in the same one).
pub fn enqueue_in(
    context: &Context,
    store: &mut sandpit_state::StateStore,
    request: &Enqueue,
) -> anyhow::Result<Pipeline> {
    if request.sha.len() != 40 || !request.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        crate::fail!(
            InvalidInput,
            "{} is not a commit's 40 hex digits",
            sandpit_domain::quoted(&request.sha)
        );
    }
    let fetch = NewStage {
        kind: StageKind::Fetch,
        env: None,
    };
    let stages = match &request.target {
        Target::Environment { env } => {
            let spec = crate::projects::at_last_fetch(context, &request.project)?.spec()?;
            let mut stages = vec![fetch];
            stages.extend(plan::into_environment(&spec, env)?);
            stages
        }
        _ => vec![fetch],
    };
    let (target, biome) = request.target.state();
    let pipeline = store.create_pipeline(&NewPipeline {
        project: request.project.clone(),
        trigger: request.trigger,
        requested_by: request.requested_by.clone(),
        branch: request.branch.clone(),
        sha: request.sha.to_ascii_lowercase(),
        stages,
        retry_of: None,
        target,
        biome,
    })?;
    crate::report::pipeline_changed(context, &pipeline);
    Ok(pipeline)
}

/// The reason recorded for a pipeline whose server stopped while it ran.
pub const INTERRUPTED: &str =
    "the server stopped while this pipeline ran; `sandpit pipeline retry ID` runs it again";

/// Where pipeline logs are kept.
pub fn logs_dir(context: &Context) -> PathBuf {
    context.home.join("server").join("pipelines")
}

/// The log of pipeline `id`.
pub fn log_path(context: &Context, id: i64) -> PathBuf {
    logs_dir(context).join(format!("{id}.log"))
}

fn principal_name(principal: &Principal) -> anyhow::Result<String> {
    match &principal.identity {
        Identity::Named(name) => Ok(name.clone()),
        Identity::LocalGitUser => Err(failure(
            ErrorKind::InvalidInput,
            "a pipeline is requested by a named user\nhint: use a server token, or set SANDPIT_USER",
        )),
    }
}

fn require(principal: &Principal, role: Role, what: &str) -> anyhow::Result<()> {
    if principal.may(role) {
        return Ok(());
    }
    let held: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    Err(failure(
        ErrorKind::Forbidden,
        format!(
            "{what} needs the `{}` role; this token has {}",
            role.as_str(),
            if held.is_empty() {
                "none".to_owned()
            } else {
                held.join(", ")
            }
        ),
    ))
}

/// Fetches, checks and records a pipeline for `request`; it is queued until [`run_queue`] runs it.
pub fn request(
    context: &Context,
    principal: &Principal,
    request: &PipelineRequest,
) -> anyhow::Result<Pipeline> {
    require(principal, Role::Deployer, "running a pipeline")?;
    let requested_by = principal_name(principal)?;
    let project = crate::projects::show(context, principal, &request.project)?;
    let (repo, commit) =
        crate::projects::commit(context, &request.project, request.revision.clone())?;
    let branch = match &request.revision {
        Revision::Branch(branch) => Some(branch.clone()),
        Revision::Default => Some(project.branch.clone()),
        Revision::Sha(_) => None,
    };
    if let Target::Biome { name } | Target::BiomeDown { name } = &request.target {
        crate::up::parse_biome_name(name)?;
    }
    record(
        context,
        &Source::Commit { repo, commit },
        NewPipelineFacts {
            project: request.project.clone(),
            trigger: request.trigger,
            requested_by,
            branch,
            retry_of: None,
            target: request.target.clone(),
        },
    )
}

/// Records a new pipeline that runs pipeline `id`'s commit again (once it has finished).
pub fn retry(context: &Context, principal: &Principal, id: i64) -> anyhow::Result<Pipeline> {
    require(principal, Role::Deployer, "retrying a pipeline")?;
    let requested_by = principal_name(principal)?;
    let store = crate::deployment::state_store(context)?;
    let earlier = store
        .pipeline(id)?
        .ok_or(sandpit_state::StateError::PipelineNotFound { id })?;
    drop(store);
    if !earlier.state.is_finished() {
        crate::fail!(
            Conflict,
            "pipeline #{id} is {}; only a finished pipeline can be retried\nhint: `sandpit pipeline {id} -f` follows it",
            earlier.state
        );
    }
    let (repo, commit) = crate::projects::commit(
        context,
        &earlier.project,
        Revision::Sha(earlier.sha.clone()),
    )?;
    record(
        context,
        &Source::Commit { repo, commit },
        NewPipelineFacts {
            project: earlier.project.clone(),
            trigger: Trigger::Manual,
            requested_by,
            branch: earlier.branch.clone(),
            retry_of: Some(id),
            target: match (earlier.target, earlier.biome.clone()) {
                (PipelineTarget::Biome, Some(name)) => Target::Biome { name },
                (PipelineTarget::BiomeDown, Some(name)) => Target::BiomeDown { name },
                _ => Target::Environments,
            },
        },
    )
}

struct NewPipelineFacts {
    project: String,
    trigger: Trigger,
    requested_by: String,
    branch: Option<String>,
    retry_of: Option<i64>,
    target: Target,
}

fn record(context: &Context, source: &Source, facts: NewPipelineFacts) -> anyhow::Result<Pipeline> {
    let spec = source.spec()?;
    let mut stages = vec![NewStage {
        kind: StageKind::Fetch,
        env: None,
    }];
    stages.extend(plan_after_fetch(&spec, &facts.target)?);
    let (target, biome) = facts.target.state();
    let commit = source.commit().map(CommitId::to_string).unwrap_or_default();
    let mut store = crate::deployment::state_store(context)?;
    let pipeline = store.create_pipeline(&NewPipeline {
        project: facts.project,
        trigger: facts.trigger,
        requested_by: facts.requested_by,
        branch: facts.branch,
        sha: commit,
        stages,
        retry_of: facts.retry_of,
        target,
        biome,
    })?;
    drop(store);
    crate::report::pipeline_changed(context, &pipeline);
    Ok(pipeline)
}

/// The stages after the fetch, for `target`, by the commit's definition.
fn plan_after_fetch(spec: &sandpit_spec::Spec, target: &Target) -> anyhow::Result<Vec<NewStage>> {
    Ok(match target {
        Target::Environments => plan::stages(spec)?.split_off(1),
        Target::Biome { name } => {
            let env = crate::project::biome_environment(spec, None)?;
            refuse_environment_name(spec, name)?;
            vec![
                NewStage {
                    kind: StageKind::Build,
                    env: None,
                },
                NewStage {
                    kind: StageKind::Up,
                    env: Some(env.to_string()),
                },
            ]
        }
        Target::BiomeDown { .. } => {
            let env = crate::project::biome_environment(spec, None)?;
            vec![NewStage {
                kind: StageKind::Down,
                env: Some(env.to_string()),
            }]
        }
        Target::Environment { env } => plan::into_environment(spec, env)?,
    })
}

fn refuse_environment_name(spec: &sandpit_spec::Spec, biome: &str) -> anyhow::Result<()> {
    if Name::parse(biome).is_ok_and(|name| spec.environments.contains_key(&name)) {
        crate::fail!(
            InvalidInput,
            "`{biome}` is the name of an environment, so it cannot name a biome"
        );
    }
    Ok(())
}

/// Pipelines newest first, of one project or all (at most `limit`).
pub fn list(
    context: &Context,
    project: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<Pipeline>> {
    Ok(crate::deployment::state_store(context)?.pipelines(project, limit)?)
}

/// Pipeline `id`.
pub fn show(context: &Context, id: i64) -> anyhow::Result<Pipeline> {
    let store = crate::deployment::state_store(context)?;
    Ok(store
        .pipeline(id)?
        .ok_or(sandpit_state::StateError::PipelineNotFound { id })?)
}

/// Marks pipelines that were running when their server stopped as failed; returns their ids.
pub fn recover(context: &Context) -> anyhow::Result<Vec<i64>> {
    let mut store = crate::deployment::state_store(context)?;
    let failed = store.fail_interrupted_pipelines(INTERRUPTED)?;
    for id in &failed {
        let _ = append_log(context, *id, INTERRUPTED);
        if let Some(pipeline) = store.pipeline(*id)? {
            crate::report::pipeline_changed(context, &pipeline);
        }
    }
    Ok(failed)
}

/// Runs queued pipelines until none is left; returns the ids it ran, in order.
pub async fn run_queue(context: &Context) -> anyhow::Result<Vec<i64>> {
    let mut ran = Vec::new();
    loop {
        let mut store = crate::deployment::state_store(context)?;
        let queued = store.pipelines_in_state(PipelineState::Queued)?;
        let mut by_project: BTreeMap<&str, Vec<plan::Queued>> = BTreeMap::new();
        for pipeline in &queued {
            by_project
                .entry(pipeline.project.as_str())
                .or_default()
                .push(plan::Queued {
                    id: pipeline.id,
                    key: plan::supersede_key(pipeline.biome.as_deref(), pipeline.branch.as_deref()),
                });
        }
        let mut next: Option<i64> = None;
        for pipelines in by_project.values() {
            let decision = plan::next_in_queue(pipelines);
            for (superseded, by) in decision.supersede {
                let pipeline = match store.supersede_pipeline(superseded, by) {
                    Ok(pipeline) => pipeline,
                    // Another server sharing the state store got to it first.
                    Err(sandpit_state::StateError::PipelineTransition { .. }) => continue,
                    Err(error) => return Err(error.into()),
                };
                crate::report::pipeline_changed(context, &pipeline);
                let _ = append_log(
                    context,
                    superseded,
                    &format!(
                        "superseded by pipeline #{by}, a newer one for the same branch or biome"
                    ),
                );
            }
            // The oldest pipeline of any project goes first.
            next = match (next, decision.run) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        drop(store);
        let Some(id) = next else {
            return Ok(ran);
        };
        // Servers sharing one state store race for the same queue: the one whose `started`
        // is recorded first runs it (the store refuses the others' in the same transaction),
        // and the others look again.
        let Some(pipeline) = claim(context, id)? else {
            continue;
        };
        drive(context, pipeline).await?;
        ran.push(id);
    }
}

/// Marks queued pipeline `id` as run by this process; `None` when another process (a server
/// sharing the state store) started or superseded it first.
fn claim(context: &Context, id: i64) -> anyhow::Result<Option<Pipeline>> {
    match crate::deployment::state_store(context)?.start_pipeline(id) {
        Ok(pipeline) => Ok(Some(pipeline)),
        Err(sandpit_state::StateError::PipelineTransition { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Runs queued pipeline `id` to its end (succeeded, failed, or pending an approval).
pub async fn run(context: &Context, id: i64) -> anyhow::Result<Pipeline> {
    let pipeline = crate::deployment::state_store(context)?.start_pipeline(id)?;
    drive(context, pipeline).await
}

/// Runs pipeline `pipeline`, just started by this process, to its end.
async fn drive(context: &Context, pipeline: Pipeline) -> anyhow::Result<Pipeline> {
    let id = pipeline.id;
    crate::report::pipeline_changed(context, &pipeline);
    let mut log = PipelineLog::open(context, id)?;
    log.line(&format!(
        "pipeline #{id}: {} at {} ({}), requested by {}",
        pipeline.project,
        pipeline.sha,
        pipeline
            .branch
            .as_deref()
            .map_or("a named commit".to_owned(), |b| format!("branch {b}")),
        pipeline.requested_by
    ));
    let mut outcome = Outcome::Succeeded;
    let mut source: Option<Source> = None;
    let mut previous_env: Option<String> = None;
    let mut pipeline = pipeline;
    let mut position = 0;
    // The stages are read again after each one: the fetch may plan those after it.
    while let Some(stage) = pipeline.stages.get(position).cloned() {
        position += 1;
        let stage = &stage;
        if !matches!(outcome, Outcome::Succeeded) {
            let reason = match &outcome {
                Outcome::Pending(_) => "an earlier stage waits for approval",
                _ => "an earlier stage failed",
            };
            pipeline =
                crate::deployment::state_store(context)?.skip_stage(id, stage.position, reason)?;
            log.line(&format!("{}: skipped ({reason})", stage.label()));
            continue;
        }
        crate::deployment::state_store(context)?.start_stage(id, stage.position)?;
        log.line(&format!("{}: started", stage.label()));
        let result = run_stage(
            context,
            &pipeline,
            stage,
            &mut source,
            &mut previous_env,
            &mut log,
        )
        .await;
        let (stage_outcome, deployment) = match result {
            Ok(StageResult::Done(deployment)) => (Outcome::Succeeded, deployment),
            Ok(StageResult::Pending(deployment, message)) => {
                (Outcome::Pending(message), Some(deployment))
            }
            Err(error) => (Outcome::Failed(format!("{error:#}")), None),
        };
        match &stage_outcome {
            Outcome::Succeeded => log.line(&format!("{}: succeeded", stage.label())),
            Outcome::Pending(message) => {
                log.line(&format!("{}: pending: {message}", stage.label()))
            }
            Outcome::Failed(message) => log.line(&format!("{}: failed: {message}", stage.label())),
        }
        pipeline = crate::deployment::state_store(context)?.finish_stage(
            id,
            stage.position,
            &stage_outcome,
            deployment,
        )?;
        outcome = match stage_outcome {
            Outcome::Failed(message) => {
                Outcome::Failed(format!("stage `{}` failed: {message}", stage.label()))
            }
            other => other,
        };
    }
    log.line(&match &outcome {
        Outcome::Succeeded => format!("pipeline #{id}: succeeded"),
        Outcome::Pending(message) => format!("pipeline #{id}: pending: {message}"),
        Outcome::Failed(message) => format!("pipeline #{id}: failed: {message}"),
    });
    let finished = crate::deployment::state_store(context)?.finish_pipeline(id, &outcome)?;
    crate::report::pipeline_changed(context, &finished);
    crate::report::biome_pipeline_finished(context, &finished).await;
    Ok(finished)
}

/// Finishes the pipeline stage (and the pipeline) that waited for `deployment`, once its
/// approvals ran it or it was rejected; nothing when no pipeline waits for it or it has not
/// finished.
pub fn deployment_decided(context: &Context, deployment: i64) -> anyhow::Result<Option<Pipeline>> {
    let mut store = crate::deployment::state_store(context)?;
    let Some(decided) = store.get(deployment)? else {
        return Ok(None);
    };
    if !decided.is_finished() {
        return Ok(None);
    }
    let Some((id, position)) = store.pipeline_waiting_on(deployment)? else {
        return Ok(None);
    };
    let outcome = match decided.state {
        DeploymentState::Succeeded => Outcome::Succeeded,
        other => Outcome::Failed(format!(
            "deployment #{deployment} ended {other}{}",
            decided
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
    };
    store.finish_stage(id, position, &outcome, None)?;
    let pipeline = store.finish_pipeline(id, &outcome)?;
    drop(store);
    crate::report::pipeline_changed(context, &pipeline);
    let _ = append_log(
        context,
        id,
        &match &outcome {
            Outcome::Failed(message) => format!("pipeline #{id}: failed: {message}"),
            _ => format!(
                "deployment #{deployment} was approved and succeeded; pipeline #{id}: succeeded"
            ),
        },
    );
    Ok(Some(pipeline))
}

enum StageResult {
    /// Done; the deployment it made, if any.
    Done(Option<i64>),
    /// Its deployment waits for approval.
    Pending(i64, String),
}

async fn run_stage(
    context: &Context,
    pipeline: &Pipeline,
    stage: &sandpit_state::Stage,
    source: &mut Option<Source>,
    previous_env: &mut Option<String>,
    log: &mut PipelineLog,
) -> anyhow::Result<StageResult> {
    let as_requester = |source: &Source| Context {
        source: source.clone(),
        principal: Principal::named(&pipeline.requested_by, [Role::Deployer]),
        ..context.clone()
    };
    match stage.kind {
        StageKind::Fetch => {
            let fetched = if pipeline.target == PipelineTarget::BiomeDown {
                // Taking a biome down needs the definition, not the commit it ran (whose
                // branch a merge may have deleted): the project branch's head gives it.
                crate::projects::commit(context, &pipeline.project, Revision::Default)
            } else {
                crate::projects::commit(
                    context,
                    &pipeline.project,
                    Revision::Sha(pipeline.sha.clone()),
                )
            };
            let (repo, commit) = fetched.map_err(|error| {
                if crate::error::kind_of(&error) == ErrorKind::NotFound {
                    failure(
                        ErrorKind::NotFound,
                        format!(
                            "commit {} is not in the project's repository: {error:#}\nhint: push it, then run the pipeline again",
                            pipeline.sha
                        ),
                    )
                } else {
                    error
                }
            })?;
            log.line(&format!("fetched; {commit} is in the project's repository"));
            let fetched = Source::Commit { repo, commit };
            if pipeline.stages.len() == 1 {
                let target = match (pipeline.target, pipeline.biome.clone()) {
                    (PipelineTarget::Biome, Some(name)) => Target::Biome { name },
                    (PipelineTarget::BiomeDown, Some(name)) => Target::BiomeDown { name },
                    _ => Target::Environments,
                };
                let planned = plan_after_fetch(&fetched.spec()?, &target)?;
                let pipeline =
                    crate::deployment::state_store(context)?.plan_stages(pipeline.id, &planned)?;
                log.line(&format!(
                    "planned: {}",
                    pipeline
                        .stages
                        .iter()
                        .map(sandpit_state::Stage::label)
                        .collect::<Vec<_>>()
                        .join(" → ")
                ));
            }
            *source = Some(fetched);
            Ok(StageResult::Done(None))
        }
        StageKind::Up => {
            let source = fetched(source)?;
            let biome = pipeline_biome(pipeline)?;
            let outcome = crate::up::up(
                &as_requester(source),
                &crate::up::UpOptions {
                    biome: Some(biome.clone()),
                    env: stage.env.clone(),
                    build: crate::build::BuildOptions::default(),
                    reset_db: false,
                    overlay: None,
                },
                log,
                |_, _| {},
            )
            .await?;
            log.line(&format!(
                "biome {biome} is {} at {}",
                outcome.status.state, outcome.status.sha
            ));
            Ok(StageResult::Done(None))
        }
        StageKind::Down => {
            let source = fetched(source)?;
            let biome = pipeline_biome(pipeline)?;
            match crate::down::down(&as_requester(source), Some(&biome), |_, _| {}).await {
                Ok(outcome) => {
                    log.line(&format!(
                        "biome {biome} is down: its processes stopped, its database dropped, its models unregistered (deployment #{})",
                        outcome.deployment
                    ));
                    Ok(StageResult::Done(Some(outcome.deployment)))
                }
                Err(error) if crate::error::kind_of(&error) == ErrorKind::NotFound => {
                    log.line(&format!("biome {biome} is not there; nothing to take down"));
                    Ok(StageResult::Done(None))
                }
                Err(error) => Err(error),
            }
        }
        StageKind::Build => {
            let source = fetched(source)?;
            let built = crate::build::build(
                &as_requester(source),
                &crate::build::BuildOptions::default(),
                log,
            )?;
            log.line(&format!(
                "built {} component(s) at {}",
                built.report.components.len(),
                built.report.version
            ));
            Ok(StageResult::Done(None))
        }
        StageKind::Deploy => {
            let env = stage_env(stage)?;
            let source = fetched(source)?;
            let (_, deployed) = crate::deploy::deploy(
                &as_requester(source),
                &DeployOptions {
                    env: env.clone(),
                    rev: None,
                    allow_older: false,
                },
                log,
                &mut |biome: Option<&Name>, event: &str| log_event(biome, event),
            )
            .await?;
            *previous_env = Some(env);
            settle(deployed)
        }
        StageKind::Promote => {
            let env = stage_env(stage)?;
            let source = fetched(source)?;
            let from = match (promote_source(source, &env), previous_env.clone()) {
                (Some(from), Some(_)) => from,
                (None, Some(previous)) => previous,
                // The pipeline's first rollout: what it promotes must be its own commit.
                (Some(from), None) => {
                    check_runs_commit(context, source, &from, &pipeline.sha).await?;
                    from
                }
                (None, None) => {
                    return Err(failure(
                        ErrorKind::Internal,
                        "a promotion stage with nothing deployed before it",
                    ))
                }
            };
            let promoted = crate::promote::promote(
                &as_requester(source),
                &from,
                &env,
                &mut |biome: Option<&Name>, event: &str| log_event(biome, event),
            )
            .await?;
            *previous_env = Some(env);
            settle(promoted)
        }
    }
}

fn pipeline_biome(pipeline: &Pipeline) -> anyhow::Result<String> {
    pipeline.biome.clone().ok_or_else(|| {
        failure(
            ErrorKind::Internal,
            format!("pipeline #{} targets no biome", pipeline.id),
        )
    })
}

/// Refuses to promote out of `from` unless it runs `sha`: a pipeline for a commit (a tag's)
/// promotes that commit or nothing.
async fn check_runs_commit(
    context: &Context,
    source: &Source,
    from: &str,
    sha: &str,
) -> anyhow::Result<()> {
    let project = source.spec()?.project.name;
    let from_name = Name::parse(from)?;
    let running = crate::daemon_connection::status_if_running(context, &project, &from_name).await;
    match running {
        Some(status) if status.sha == sha => Ok(()),
        Some(status) => crate::fail!(
            Conflict,
            "`{from}` runs {}, not {sha}: a promotion moves what runs there, so this commit is not promoted\nhint: deploy {sha} to `{from}` first (push it to the project's branch), then push the tag again or `sandpit promote`",
            status.sha
        ),
        None => crate::fail!(
            Conflict,
            "nothing runs in `{from}`, so {sha} cannot be promoted out of it\nhint: deploy it to `{from}` first"
        ),
    }
}

/// Events of a rollout are not kept per line (the deployment records its steps).
fn log_event(_biome: Option<&Name>, _event: &str) {}

fn fetched(source: &Option<Source>) -> anyhow::Result<&Source> {
    source
        .as_ref()
        .ok_or_else(|| failure(ErrorKind::Internal, "a stage ran before the fetch stage"))
}

fn stage_env(stage: &sandpit_state::Stage) -> anyhow::Result<String> {
    stage.env.clone().ok_or_else(|| {
        failure(
            ErrorKind::Internal,
            format!("stage {} names no environment", stage.position),
        )
    })
}

/// Where `env` promotes from, by the commit's `sandpit.toml` (a chain may branch).
fn promote_source(source: &Source, env: &str) -> Option<String> {
    let spec = source.spec().ok()?;
    let name = Name::parse(env).ok()?;
    spec.environments
        .get(&name)?
        .promote_from
        .as_ref()
        .map(Name::to_string)
}

fn settle(outcome: DeployOutcome) -> anyhow::Result<StageResult> {
    let deployment = outcome.deployment;
    match deployment.state {
        DeploymentState::Pending => Ok(StageResult::Pending(
            deployment.id,
            format!(
                "deployment #{} into `{}` waits for {} approval(s): `sandpit approve {}`",
                deployment.id,
                deployment.target,
                deployment.approvals_missing(),
                deployment.id
            ),
        )),
        DeploymentState::Succeeded => Ok(StageResult::Done(Some(deployment.id))),
        other => Err(failure(
            ErrorKind::Conflict,
            format!(
                "deployment #{} into `{}` ended {other}{}",
                deployment.id,
                deployment.target,
                deployment
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        )),
    }
}

/// The log of one pipeline: every line timestamped, appended to its file, build output included.
struct PipelineLog {
    file: std::fs::File,
}

impl PipelineLog {
    fn open(context: &Context, id: i64) -> anyhow::Result<PipelineLog> {
        let dir = logs_dir(context);
        create_private_dir(&dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(context, id))?;
        Ok(PipelineLog { file })
    }

    fn line(&mut self, text: &str) {
        let now = humantime_now();
        for line in text.lines() {
            // A log that cannot be written must not fail the deployment it describes.
            let _ = writeln!(self.file, "{now} {line}");
        }
    }
}

impl BuildProgress for PipelineLog {
    fn started(&mut self, component: &Name, _log: &Path) {
        self.line(&format!("build {component}: started"));
    }

    fn output_line(&mut self, component: &Name, line: &str) {
        self.line(&format!("build {component}: {line}"));
    }

    fn finished(&mut self, component: &Name, outcome: &ComponentOutcome) {
        let how = match outcome.outcome {
            BuildOutcomeKind::Built => "built",
            BuildOutcomeKind::Reused => "reused",
        };
        self.line(&format!(
            "build {component}: {how} {} ({})",
            outcome.artifact.name.file_name(),
            outcome.artifact.digest
        ));
    }
}

/// Appends `text` to pipeline `id`'s log; a log that cannot be written is let go (it describes
/// the pipeline, it is not part of it).
pub fn note_in_log(context: &Context, id: i64, text: &str) {
    let _ = append_log(context, id, text);
}

fn append_log(context: &Context, id: i64, text: &str) -> anyhow::Result<()> {
    let mut log = PipelineLog::open(context, id)?;
    log.line(text);
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    Ok(())
}

fn humantime_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
