//! Pipeline records: a commit fetched, built, deployed to the first environment and promoted
//! onward, one stage after another. The facts (project, trigger, requester, commit, planned
//! stages) are written once; everything that happens later is an appended event, and the states
//! of a pipeline and of its stages are derived from those events, like a deployment's.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sql::{args, Db};
use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// What started a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `sandpit pipeline run`.
    Manual,
    /// A push reported by the forge.
    Webhook,
    /// A schedule.
    Schedule,
    /// `sandpit ci` in a forge's CI job.
    Ci,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Webhook => "webhook",
            Trigger::Schedule => "schedule",
            Trigger::Ci => "ci",
        }
    }

    fn parse(stored: &str) -> Option<Trigger> {
        [
            Trigger::Manual,
            Trigger::Webhook,
            Trigger::Schedule,
            Trigger::Ci,
        ]
        .into_iter()
        .find(|t| t.as_str() == stored)
    }
}

/// What a stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Fetch the repository and resolve the commit.
    Fetch,
    /// Build (or reuse) every component's artifact at the commit.
    Build,
    /// Deploy the built artifacts to the first environment.
    Deploy,
    /// Promote what runs in the previous environment into this one.
    Promote,
    /// Bring the pipeline's biome up at the commit, in the environment that hosts biomes.
    Up,
    /// Take the pipeline's biome down (processes, database, model registrations).
    Down,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Fetch => "fetch",
            StageKind::Build => "build",
            StageKind::Deploy => "deploy",
            StageKind::Promote => "promote",
            StageKind::Up => "up",
            StageKind::Down => "down",
        }
    }

    fn parse(stored: &str) -> Option<StageKind> {
        [
            StageKind::Fetch,
            StageKind::Build,
            StageKind::Deploy,
            StageKind::Promote,
            StageKind::Up,
            StageKind::Down,
        ]
        .into_iter()
        .find(|k| k.as_str() == stored)
    }
}

/// What a pipeline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineTarget {
    /// The environments: deploy to the first, promote onward.
    Environments,
    /// A biome, brought up at the commit (a merge request's `mr-<iid>`).
    Biome,
    /// A biome, taken down.
    BiomeDown,
}

impl PipelineTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineTarget::Environments => "environments",
            PipelineTarget::Biome => "biome",
            PipelineTarget::BiomeDown => "biome_down",
        }
    }

    fn parse(stored: &str) -> Option<PipelineTarget> {
        [
            PipelineTarget::Environments,
            PipelineTarget::Biome,
            PipelineTarget::BiomeDown,
        ]
        .into_iter()
        .find(|t| t.as_str() == stored)
    }
}

/// Where a pipeline stands, derived from its own events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Recorded; waiting for its turn.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Stopped at a promotion into a protected environment, which waits for approval.
    Pending,
    /// A newer pipeline of the same branch was queued before this one started; it never ran.
    Superseded,
}

impl PipelineState {
    pub const ALL: [PipelineState; 6] = [
        PipelineState::Queued,
        PipelineState::Running,
        PipelineState::Succeeded,
        PipelineState::Failed,
        PipelineState::Pending,
        PipelineState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Queued => "queued",
            PipelineState::Running => "running",
            PipelineState::Succeeded => "succeeded",
            PipelineState::Failed => "failed",
            PipelineState::Pending => "pending",
            PipelineState::Superseded => "superseded",
        }
    }

    /// Nothing more will happen to it (a pending one waits for people, not for the server).
    pub fn is_finished(self) -> bool {
        !matches!(self, PipelineState::Queued | PipelineState::Running)
    }
}

impl std::fmt::Display for PipelineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stage stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Not started yet.
    Waiting,
    Running,
    Succeeded,
    Failed,
    /// Its deployment waits for approval.
    Pending,
    /// Not run: an earlier stage failed or stopped at pending.
    Skipped,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Waiting => "waiting",
            StageState::Running => "running",
            StageState::Succeeded => "succeeded",
            StageState::Failed => "failed",
            StageState::Pending => "pending",
            StageState::Skipped => "skipped",
        }
    }
}

/// A stage to be planned into a new pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStage {
    pub kind: StageKind,
    /// The environment deployed or promoted into.
    pub env: Option<String>,
}

/// A pipeline to be recorded by [`StateStore::create_pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPipeline {
    pub project: String,
    pub trigger: Trigger,
    pub requested_by: String,
    /// The branch asked for (pipelines of one branch supersede each other); `None` for a commit.
    pub branch: Option<String>,
    /// The commit: 40 hex digits.
    pub sha: String,
    /// The stages; a pipeline recorded before its commit is read has only its `fetch` stage,
    /// and [`StateStore::plan_stages`] adds the rest once.
    pub stages: Vec<NewStage>,
    /// The pipeline this one runs again.
    pub retry_of: Option<i64>,
    pub target: PipelineTarget,
    /// The biome a biome target acts on; `None` exactly for [`PipelineTarget::Environments`].
    pub biome: Option<String>,
}

/// A recorded stage and its derived state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub position: u32,
    pub kind: StageKind,
    pub env: Option<String>,
    pub state: StageState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed, or what it waits for.
    pub message: Option<String>,
    /// The deployment it made.
    pub deployment: Option<i64>,
}

impl Stage {
    /// `build`, `deploy dev`, `promote prod`.
    pub fn label(&self) -> String {
        match &self.env {
            Some(env) => format!("{} {env}", self.kind.as_str()),
            None => self.kind.as_str().to_owned(),
        }
    }
}

/// A recorded pipeline: its facts and the states derived from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    pub id: i64,
    pub project: String,
    pub trigger: Trigger,
    pub requested_by: String,
    pub branch: Option<String>,
    pub sha: String,
    pub retry_of: Option<i64>,
    pub target: PipelineTarget,
    pub biome: Option<String>,
    pub state: PipelineState,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed, what it waits for, or which pipeline superseded it.
    pub message: Option<String>,
    /// The process that last recorded an event of it (for a running pipeline: the one running it).
    pub pid: Option<u32>,
    /// The host of that process (`None` before hosts were recorded): a pid is only looked at
    /// on its own machine.
    #[serde(skip)]
    pub host: Option<String>,
    pub stages: Vec<Stage>,
}

/// How a pipeline or a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Waiting for approval of the deployment it made.
    Pending(String),
}

impl Outcome {
    fn event(&self) -> (&'static str, Option<&str>) {
        match self {
            Outcome::Succeeded => ("succeeded", None),
            Outcome::Failed(message) => ("failed", Some(message)),
            Outcome::Pending(message) => ("pending", Some(message)),
        }
    }
}

/// What a pipeline's event may follow, by the state it is in.
fn pipeline_allows(state: PipelineState, event: &str) -> bool {
    use PipelineState::*;
    matches!(
        (state, event),
        (Queued, "started" | "superseded" | "failed")
            | (Running, "succeeded" | "failed" | "pending")
            // A pending pipeline finishes when its waiting promotion is approved and done, or not.
            | (Pending, "succeeded" | "failed")
    )
}

/// What a stage's event may follow.
fn stage_allows(state: StageState, event: &str) -> bool {
    use StageState::*;
    matches!(
        (state, event),
        (Waiting, "started" | "skipped")
            | (Running, "succeeded" | "failed" | "pending")
            | (Pending, "succeeded" | "failed")
    )
}

impl StateStore {
    /// Records a new queued pipeline and returns it.
    pub fn create_pipeline(&mut self, new: &NewPipeline) -> Result<Pipeline, StateError> {
        let invalid = |detail: String| Err(StateError::Invalid { detail });
        if new.project.trim().is_empty() || new.requested_by.trim().is_empty() {
            return invalid("a pipeline without a project or requester".into());
        }
        if new.sha.len() != 40 || !new.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return invalid(format!("`{}` is not a full commit id", new.sha));
        }
        if new.stages.is_empty() {
            return invalid("a pipeline with no stages".into());
        }
        if (new.target == PipelineTarget::Environments) != new.biome.is_none() {
            return invalid(format!(
                "a pipeline of target `{}` {} a biome",
                new.target.as_str(),
                if new.biome.is_some() {
                    "with"
                } else {
                    "without"
                }
            ));
        }
        let pid = self.pid;
        let tx = self.conn.write().ctx("starting to record a pipeline")?;
        if let Some(retried) = new.retry_of {
            if load(&tx, retried)?.is_none() {
                return Err(StateError::PipelineNotFound { id: retried });
            }
        }
        let id = tx
            .insert_returning_id(
            "INSERT INTO pipelines (project, trigger, requested_by, branch, sha, retry_of, created_at, target, biome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            args![
                new.project,
                new.trigger.as_str(),
                new.requested_by,
                new.branch,
                new.sha.to_ascii_lowercase(),
                new.retry_of,
                now(),
                new.target.as_str(),
                new.biome,
            ],
        )
        .ctx("recording a pipeline")?;
        for (position, stage) in new.stages.iter().enumerate() {
            tx.execute(
                "INSERT INTO pipeline_stages (pipeline_id, position, kind, env) VALUES (?1, ?2, ?3, ?4)",
                args![id, position as i64, stage.kind.as_str(), stage.env],
            )
            .ctx("recording a pipeline's stages")?;
        }
        insert(&tx, id, None, "queued", None, None, pid)?;
        let pipeline = load(&tx, id)?.ok_or(StateError::PipelineNotFound { id })?;
        tx.commit().ctx("recording a pipeline")?;
        Ok(pipeline)
    }

    /// Adds the stages planned once the commit was read after a pipeline recorded with its
    /// `fetch` stage alone; refused when it has more stages already (they are planned once).
    pub fn plan_stages(&mut self, id: i64, stages: &[NewStage]) -> Result<Pipeline, StateError> {
        let tx = self.conn.write().ctx("planning a pipeline's stages")?;
        let pipeline = load(&tx, id)?.ok_or(StateError::PipelineNotFound { id })?;
        if pipeline.stages.len() != 1 || pipeline.stages[0].kind != StageKind::Fetch {
            return Err(StateError::Invalid {
                detail: format!("pipeline #{id}'s stages are planned already"),
            });
        }
        for (offset, stage) in stages.iter().enumerate() {
            tx.execute(
                "INSERT INTO pipeline_stages (pipeline_id, position, kind, env) VALUES (?1, ?2, ?3, ?4)",
                args![id, offset as i64 + 1, stage.kind.as_str(), stage.env],
            )
            .ctx("planning a pipeline's stages")?;
        }
        let pipeline = load(&tx, id)?.ok_or(StateError::PipelineNotFound { id })?;
        tx.commit().ctx("planning a pipeline's stages")?;
        Ok(pipeline)
    }

    /// The pipeline `id`, if there is one.
    pub fn pipeline(&self, id: i64) -> Result<Option<Pipeline>, StateError> {
        load(&self.conn, id)
    }

    /// The newest `limit` pipelines, of one project or of all, newest first.
    pub fn pipelines(
        &self,
        project: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pipeline>, StateError> {
        let ids: Vec<i64> = self
            .conn
            .query_map(
                "SELECT id FROM pipelines WHERE (CAST(?1 AS TEXT) IS NULL OR project = ?1) ORDER BY id DESC LIMIT ?2",
                args![project, i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )
            .ctx("listing pipelines")?;
        ids.into_iter()
            .map(|id| load(&self.conn, id)?.ok_or(StateError::PipelineNotFound { id }))
            .collect()
    }

    /// Every pipeline in `state`, oldest first (e.g. the queue, or those running when a server stopped).
    pub fn pipelines_in_state(&self, state: PipelineState) -> Result<Vec<Pipeline>, StateError> {
        let event = match state {
            PipelineState::Queued => "queued",
            PipelineState::Running => "started",
            other => other.as_str(),
        };
        let ids: Vec<i64> = self
            .conn
            .query_map(
                "SELECT p.id FROM pipelines p
                 WHERE (SELECT e.event FROM pipeline_events e
                        WHERE e.pipeline_id = p.id AND e.stage IS NULL
                        ORDER BY e.id DESC LIMIT 1) = ?1
                 ORDER BY p.id",
                args![event],
                |row| row.get(0),
            )
            .ctx("listing pipelines by state")?;
        ids.into_iter()
            .map(|id| load(&self.conn, id)?.ok_or(StateError::PipelineNotFound { id }))
            .collect()
    }

    /// How many pipelines are in each state (every state listed, zero included).
    pub fn pipeline_counts(&self) -> Result<BTreeMap<PipelineState, u64>, StateError> {
        let mut counts: BTreeMap<PipelineState, u64> =
            PipelineState::ALL.into_iter().map(|s| (s, 0)).collect();
        let rows = self
            .conn
            .query_map(
                "SELECT (SELECT e.event FROM pipeline_events e
                         WHERE e.pipeline_id = p.id AND e.stage IS NULL
                         ORDER BY e.id DESC LIMIT 1) AS last, COUNT(*)
                 FROM pipelines p GROUP BY last",
                args![],
                |row| Ok((row.get::<Option<String>>(0)?, row.get::<i64>(1)?)),
            )
            .ctx("counting pipelines")?;
        for (last, count) in rows {
            if let Some(state) = last.as_deref().and_then(pipeline_state_after) {
                *counts.entry(state).or_default() += u64::try_from(count).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// Marks a queued pipeline as running (by this process).
    pub fn start_pipeline(&mut self, id: i64) -> Result<Pipeline, StateError> {
        self.append_pipeline(id, None, "started", None, None)
    }

    /// Records how a running (or pending) pipeline ended.
    pub fn finish_pipeline(&mut self, id: i64, outcome: &Outcome) -> Result<Pipeline, StateError> {
        let (event, message) = outcome.event();
        self.append_pipeline(id, None, event, message, None)
    }

    /// Records that a queued pipeline will never run because `by`, newer, replaces it.
    pub fn supersede_pipeline(&mut self, id: i64, by: i64) -> Result<Pipeline, StateError> {
        let message =
            format!("superseded by pipeline #{by}, a newer one for the same branch or biome");
        self.append_pipeline(id, None, "superseded", Some(&message), None)
    }

    /// Marks stage `position` of a pipeline as running.
    pub fn start_stage(&mut self, id: i64, position: u32) -> Result<Pipeline, StateError> {
        self.append_pipeline(id, Some(position), "started", None, None)
    }

    /// Records how a stage ended, and the deployment it made.
    pub fn finish_stage(
        &mut self,
        id: i64,
        position: u32,
        outcome: &Outcome,
        deployment: Option<i64>,
    ) -> Result<Pipeline, StateError> {
        let (event, message) = outcome.event();
        self.append_pipeline(id, Some(position), event, message, deployment)
    }

    /// Records that a stage will not run, and why.
    pub fn skip_stage(
        &mut self,
        id: i64,
        position: u32,
        reason: &str,
    ) -> Result<Pipeline, StateError> {
        self.append_pipeline(id, Some(position), "skipped", Some(reason), None)
    }

    /// The pipeline and stage waiting for deployment `deployment` (pending its approval), if any.
    pub fn pipeline_waiting_on(&self, deployment: i64) -> Result<Option<(i64, u32)>, StateError> {
        let found: Option<(i64, u32)> = self
            .conn
            .query_opt(
                "SELECT pipeline_id, stage FROM pipeline_events
                 WHERE deployment_id = ?1 AND event = 'pending' AND stage IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                args![deployment],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .ctx("finding the pipeline waiting for a deployment")?;
        let Some((id, position)) = found else {
            return Ok(None);
        };
        let waiting = load(&self.conn, id)?.is_some_and(|pipeline| {
            pipeline
                .stages
                .get(position as usize)
                .is_some_and(|stage| stage.state == StageState::Pending)
        });
        Ok(waiting.then_some((id, position)))
    }

    /// Records the events this handle appends from now on as appended by process `pid` (tests
    /// use it to stand for a server that has stopped since).
    #[doc(hidden)]
    pub fn set_pid_for_tests(&mut self, pid: u32) {
        self.pid = pid;
    }

    /// Marks every running pipeline whose process is gone (the server that ran it stopped)
    /// failed with `reason`, and its running stage; returns their ids. Queued ones are left to
    /// run, and one that a live process runs is left to it.
    pub fn fail_interrupted_pipelines(&mut self, reason: &str) -> Result<Vec<i64>, StateError> {
        let running = self.pipelines_in_state(PipelineState::Running)?;
        let mut failed = Vec::new();
        for pipeline in running {
            let recorder =
                crate::process::Recorder::of(pipeline.pid.map(i64::from), pipeline.host.clone());
            if recorder
                .as_ref()
                .is_some_and(crate::process::Recorder::is_alive)
            {
                continue;
            }
            for stage in &pipeline.stages {
                if stage.state == StageState::Running {
                    self.append_pipeline(
                        pipeline.id,
                        Some(stage.position),
                        "failed",
                        Some(reason),
                        None,
                    )?;
                }
            }
            self.append_pipeline(pipeline.id, None, "failed", Some(reason), None)?;
            failed.push(pipeline.id);
        }
        Ok(failed)
    }

    /// Appends one event after checking, in the same transaction, that it may follow the
    /// pipeline's (or the stage's) current state.
    fn append_pipeline(
        &mut self,
        id: i64,
        stage: Option<u32>,
        event: &'static str,
        message: Option<&str>,
        deployment: Option<i64>,
    ) -> Result<Pipeline, StateError> {
        let pid = self.pid;
        let tx = self.conn.write().ctx("recording a pipeline event")?;
        let pipeline = load(&tx, id)?.ok_or(StateError::PipelineNotFound { id })?;
        let allowed = match stage {
            None => pipeline_allows(pipeline.state, event),
            Some(position) => {
                let Some(current) = pipeline.stages.iter().find(|s| s.position == position) else {
                    return Err(StateError::Invalid {
                        detail: format!("pipeline #{id} has no stage {position}"),
                    });
                };
                stage_allows(current.state, event)
            }
        };
        if !allowed {
            let state = match stage {
                None => pipeline.state.as_str().to_owned(),
                Some(position) => format!(
                    "at stage {position} {}",
                    pipeline.stages[position as usize].state.as_str()
                ),
            };
            return Err(StateError::PipelineTransition { id, state, event });
        }
        insert(&tx, id, stage, event, message, deployment, pid)?;
        let pipeline = load(&tx, id)?.ok_or(StateError::PipelineNotFound { id })?;
        tx.commit().ctx("recording a pipeline event")?;
        Ok(pipeline)
    }
}

fn insert(
    conn: &Db,
    id: i64,
    stage: Option<u32>,
    event: &str,
    message: Option<&str>,
    deployment: Option<i64>,
    pid: u32,
) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO pipeline_events (pipeline_id, stage, event, at, message, deployment_id, pid, host)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![id, stage, event, now(), message, deployment, pid, crate::process::this_host()],
    )
    .ctx("recording a pipeline event")?;
    Ok(())
}

/// The pipeline state after its latest own event.
fn pipeline_state_after(event: &str) -> Option<PipelineState> {
    Some(match event {
        "queued" => PipelineState::Queued,
        "started" => PipelineState::Running,
        "succeeded" => PipelineState::Succeeded,
        "failed" => PipelineState::Failed,
        "pending" => PipelineState::Pending,
        "superseded" => PipelineState::Superseded,
        _ => return None,
    })
}

fn stage_state_after(event: &str) -> Option<StageState> {
    Some(match event {
        "started" => StageState::Running,
        "succeeded" => StageState::Succeeded,
        "failed" => StageState::Failed,
        "pending" => StageState::Pending,
        "skipped" => StageState::Skipped,
        _ => return None,
    })
}

fn corrupt(id: i64, what: impl std::fmt::Display) -> StateError {
    StateError::Corrupt {
        detail: format!("pipeline #{id}: {what}"),
    }
}

fn load(conn: &Db, id: i64) -> Result<Option<Pipeline>, StateError> {
    let context = "reading a pipeline";
    let facts = conn
        .query_opt(
            "SELECT project, trigger, requested_by, branch, sha, retry_of, created_at, target, biome
             FROM pipelines WHERE id = ?1",
            args![id],
            |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                    row.get::<Option<String>>(3)?,
                    row.get::<String>(4)?,
                    row.get::<Option<i64>>(5)?,
                    row.get::<String>(6)?,
                    row.get::<String>(7)?,
                    row.get::<Option<String>>(8)?,
                ))
            },
        )
        .ctx(context)?;
    let Some((project, trigger, requested_by, branch, sha, retry_of, created_at, target, biome)) =
        facts
    else {
        return Ok(None);
    };
    let target =
        PipelineTarget::parse(&target).ok_or_else(|| corrupt(id, format!("target `{target}`")))?;
    let trigger =
        Trigger::parse(&trigger).ok_or_else(|| corrupt(id, format!("trigger `{trigger}`")))?;
    let mut stages = Vec::new();
    {
        let rows = conn
            .query_map(
                "SELECT position, kind, env FROM pipeline_stages WHERE pipeline_id = ?1 ORDER BY position",
                args![id],
                |row| {
                    Ok((
                        row.get::<u32>(0)?,
                        row.get::<String>(1)?,
                        row.get::<Option<String>>(2)?,
                    ))
                },
            )
            .ctx(context)?;
        for (position, kind, env) in rows {
            let kind = StageKind::parse(&kind)
                .ok_or_else(|| corrupt(id, format!("stage kind `{kind}`")))?;
            if position as usize != stages.len() {
                return Err(corrupt(id, "stages out of order"));
            }
            stages.push(Stage {
                position,
                kind,
                env,
                state: StageState::Waiting,
                started_at: None,
                finished_at: None,
                message: None,
                deployment: None,
            });
        }
    }
    let mut pipeline = Pipeline {
        id,
        project,
        trigger,
        requested_by,
        branch,
        sha,
        retry_of,
        target,
        biome,
        state: PipelineState::Queued,
        created_at,
        started_at: None,
        finished_at: None,
        message: None,
        pid: None,
        host: None,
        stages,
    };
    let rows = conn
        .query_map(
            "SELECT stage, event, at, message, deployment_id, pid, host FROM pipeline_events
             WHERE pipeline_id = ?1 ORDER BY id",
            args![id],
            |row| {
                Ok((
                    row.get::<Option<u32>>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                    row.get::<Option<String>>(3)?,
                    row.get::<Option<i64>>(4)?,
                    row.get::<Option<u32>>(5)?,
                    row.get::<Option<String>>(6)?,
                ))
            },
        )
        .ctx(context)?;
    for (stage, event, at, message, deployment, pid, host) in rows {
        match stage {
            None => {
                let state = pipeline_state_after(&event)
                    .ok_or_else(|| corrupt(id, format!("event `{event}`")))?;
                match state {
                    PipelineState::Queued => {}
                    PipelineState::Running => pipeline.started_at = Some(at),
                    PipelineState::Pending => pipeline.finished_at = None,
                    _ => pipeline.finished_at = Some(at),
                }
                if message.is_some() {
                    pipeline.message = message;
                }
                pipeline.state = state;
                pipeline.pid = pid;
                pipeline.host = host;
            }
            Some(position) => {
                let stage = pipeline
                    .stages
                    .get_mut(position as usize)
                    .ok_or_else(|| corrupt(id, format!("an event of stage {position}")))?;
                let state = stage_state_after(&event)
                    .ok_or_else(|| corrupt(id, format!("stage event `{event}`")))?;
                match state {
                    StageState::Running => stage.started_at = Some(at),
                    StageState::Pending => {}
                    _ => stage.finished_at = Some(at),
                }
                if message.is_some() {
                    stage.message = message;
                }
                if deployment.is_some() {
                    stage.deployment = deployment;
                }
                stage.state = state;
            }
        }
    }
    Ok(Some(pipeline))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
#[path = "pipelines/tests.rs"]
#[allow(clippy::duplicate_mod)] // on purpose: the same suite, the other backend
mod tests_on_postgres;
