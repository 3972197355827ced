//! The append-only store of deployment records: which artifacts (by digest) went into which
//! target, from which commit, requested and approved by whom, when, and with what result.
//!
//! A *target* is `ENV` (an environment's base deployment) or `ENV/BIOME`. The store is one SQLite
//! file shared by every sandpit process of a `$SANDPIT_HOME`; writes run in `BEGIN IMMEDIATE`
//! transactions, so concurrent processes get distinct, ordered ids and approvals never
//! double-count.
//!
//! # Append-only
//!
//! Nothing is ever `UPDATE`d or `DELETE`d. The immutable facts of a deployment are one row of
//! `deployments` (plus its rows of `deployment_components`), written once by
//! [`StateStore::create`]; everything that happens later — approved, rejected, started,
//! succeeded, failed, rolled back — is a row appended to `deployment_events`, and the current
//! [`DeploymentState`] is derived from those events. Triggers in the schema make SQLite itself
//! refuse any `UPDATE` or `DELETE` of these tables.
//!
//! The projects registry (`projects.rs`: which projects a server builds from git) is kept the
//! same way: a row per registration, and `added`/`fetched`/`removed` events on it.
//! The control plane's API tokens live here too, in the same shape ([`Token`]: facts, and
//! revocations as events).
//!
//! One table is not a record: the outbox of reports to a forge ([`Report`]), whose rows change
//! as they are delivered, retried or given up.

mod expiries;
mod hooks;
mod location;
mod pipelines;
mod postgres;
mod postgres_schema;
mod process;
mod projects;
mod reports;
mod schema;
mod sql;
mod store;
mod tokens;

#[cfg(test)]
mod testing;
/// The suite against SQLite, and the same file again against PostgreSQL (its module path tells
/// `testing::Backend::of_module` which).
#[cfg(test)]
mod tests;
#[cfg(test)]
#[path = "tests.rs"]
#[allow(clippy::duplicate_mod)] // on purpose: the same suite, the other backend
mod tests_on_postgres;

use serde::Serialize;

pub use expiries::{BiomeSource, Expiry, ExpiryCause, ExpiryReason, NewExpiry};
pub use hooks::{Delivery, NewDelivery, Recorded};
pub use location::StateLocation;
pub use pipelines::{
    NewPipeline, NewStage, Outcome, Pipeline, PipelineState, PipelineTarget, Stage, StageKind,
    StageState, Trigger,
};
pub use projects::{NewProject, ProjectRecord};
pub use reports::{NewReport, Report, ReportCounts, ReportKind, ReportState};
pub use sql::{DbError, Dialect};
pub use store::StateStore;
pub use tokens::{NewToken, Token};

/// A deployment to be recorded by [`StateStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub project: String,
    /// `ENV` or `ENV/BIOME`; must agree with `env` and `biome`.
    pub target: String,
    pub env: String,
    pub biome: Option<String>,
    /// The version deployed: 40 hex digits, or `<sha>-dirty-<12 hex>`.
    pub sha: String,
    pub components: Vec<DeployedComponent>,
    pub requested_by: String,
    /// How many approvals by users other than `requested_by` it needs before it may start.
    pub approvals_required: u32,
    pub kind: DeploymentKind,
    /// For an automatic or manual rollback: the deployment being undone.
    pub rollback_of: Option<i64>,
    /// For a rollback: the earlier deployment whose digests it redeploys; for a config change,
    /// the deployment that ran when it was requested (whose digests it runs again).
    pub restores: Option<i64>,
}

/// One component of a deployment: its artifact name and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedComponent {
    pub name: String,
    /// `<component>-<sha>.zip`
    pub artifact: String,
    /// `sha256:<64 hex>` (a bare 64-hex digest is stored with the prefix added).
    pub digest: String,
    /// An overlay biome's borrowed component: the biome (the environment's base) whose running
    /// instance serves it, at this digest when the deployment was made. `None`: the target runs
    /// it itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub borrowed_from: Option<String>,
}

/// Why a deployment was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// `sandpit deploy`: a built commit into an environment's base.
    Deploy,
    /// `sandpit promote FROM TO`: the bytes running in `from`'s base.
    Promote { from: String },
    /// `sandpit rollback` or an automatic rollback after failed health checks.
    Rollback,
    /// `sandpit up`: a biome.
    Up,
    /// `sandpit env destroy`: an environment's base removed (its processes and its database).
    /// Nothing runs in the target after it succeeds.
    Destroy,
    /// `sandpit down`: a biome removed (its processes, database and model registrations).
    /// Nothing runs in the target after it succeeds.
    Down,
    /// `sandpit config set|unset`: the same artifacts with changed configuration variables (the
    /// keys are in its `configured` step; secret values never are).
    Config,
}

impl DeploymentKind {
    /// The stored spelling: `deploy|promote|rollback|up|destroy|down|config`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Promote { .. } => "promote",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::Up => "up",
            DeploymentKind::Destroy => "destroy",
            DeploymentKind::Down => "down",
            DeploymentKind::Config => "config",
        }
    }

    /// Whether it removes what ran in the target (`destroy`, `down`) rather than running something.
    pub fn removes(&self) -> bool {
        matches!(self, DeploymentKind::Destroy | DeploymentKind::Down)
    }
}

impl std::fmt::Display for DeploymentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeploymentKind::Promote { from } => write!(f, "promote from {from}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Where a deployment stands, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Recorded; waiting for approvals or for its turn.
    Pending,
    Rejected,
    Running,
    Succeeded,
    Failed,
    /// Undone by a later deployment (even after it had succeeded).
    RolledBack,
}

impl DeploymentState {
    /// `pending|rejected|running|succeeded|failed|rolled_back`
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Pending => "pending",
            DeploymentState::Rejected => "rejected",
            DeploymentState::Running => "running",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::Failed => "failed",
            DeploymentState::RolledBack => "rolled_back",
        }
    }

    /// Succeeded, failed, rejected or rolled back: it will never run (again).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeploymentState::Succeeded
                | DeploymentState::Failed
                | DeploymentState::Rejected
                | DeploymentState::RolledBack
        )
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded deployment: its immutable facts and the state derived from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub project: String,
    pub target: String,
    pub env: String,
    pub biome: Option<String>,
    pub sha: String,
    pub kind: DeploymentKind,
    pub requested_by: String,
    pub approvals_required: u32,
    /// Users who approved it, in order.
    pub approved_by: Vec<String>,
    pub rejected_by: Option<String>,
    pub rollback_of: Option<i64>,
    pub restores: Option<i64>,
    pub state: DeploymentState,
    /// RFC 3339 UTC with milliseconds, like every time below.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The failure message, the rejection reason, or why it was made (a removal by the
    /// reaper says what it found).
    pub message: Option<String>,
    /// The deployment that undid this one.
    pub rolled_back_by: Option<i64>,
    pub components: Vec<DeployedComponent>,
    /// What happened on the way, in order: the rehearsal of new migrations and its result, the
    /// migrations applied in place.
    pub steps: Vec<DeploymentStep>,
}

/// One recorded step of a running deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentStep {
    pub step: StepKind,
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
    pub message: String,
}

/// The steps a deployment records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// New migrations were tried against the target's data and rolled back; they would apply.
    Rehearsed,
    /// New migrations were tried against the target's data and failed; nothing was changed.
    RehearsalFailed,
    /// Migrations were applied in place to the target's database.
    Migrated,
    /// Configuration variables were set or unset (their keys; never secret values).
    Configured,
    /// A terraform component's plan was saved for the approvers, with its summary (what it
    /// adds, changes and destroys). Recorded while the deployment waits for approval.
    Planned,
    /// A terraform component's approved, saved plan was applied.
    Applied,
}

impl StepKind {
    /// `rehearsed|rehearsal_failed|migrated|configured|planned|applied`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Rehearsed => "rehearsed",
            StepKind::RehearsalFailed => "rehearsal_failed",
            StepKind::Migrated => "migrated",
            StepKind::Configured => "configured",
            StepKind::Planned => "planned",
            StepKind::Applied => "applied",
        }
    }

    fn parse(stored: &str) -> Option<StepKind> {
        [
            StepKind::Rehearsed,
            StepKind::RehearsalFailed,
            StepKind::Migrated,
            StepKind::Configured,
            StepKind::Planned,
            StepKind::Applied,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == stored)
    }
}

impl Deployment {
    /// Approvals still needed before it may start.
    pub fn approvals_missing(&self) -> u32 {
        let approved = u32::try_from(self.approved_by.len()).unwrap_or(u32::MAX);
        self.approvals_required.saturating_sub(approved)
    }

    /// Succeeded, failed, rejected or rolled back.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }
}

/// What can go wrong with the state store; each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("there is no deployment #{id}; `sandpit history ENV` lists them")]
    NotFound { id: i64 },
    #[error(
        "deployment #{id} is already {state}; only pending deployments can be approved or rejected"
    )]
    NotPending { id: i64, state: DeploymentState },
    #[error(
        "deployment #{id} does not need approval ({approved} of {required} required approvals given); \
         there is nothing to approve"
    )]
    NoApprovalNeeded {
        id: i64,
        required: u32,
        approved: u32,
    },
    #[error("{user} requested deployment #{id} and cannot approve it; another user must")]
    SelfApproval { id: i64, user: String },
    #[error(
        "{user} has already approved deployment #{id}; each approval must come from a different user"
    )]
    AlreadyApproved { id: i64, user: String },
    #[error(
        "deployment #{id} still needs {missing} approval(s); another user must run `sandpit approve {id}`"
    )]
    ApprovalsMissing { id: i64, missing: u32 },
    #[error("deployment #{id} is {state} and cannot be marked {event}; this is a bug in sandpit")]
    InvalidTransition {
        id: i64,
        state: DeploymentState,
        event: &'static str,
    },
    #[error(
        "deployment #{id} is queued behind deployment #{blocking_id}, which has not finished in time; \
         check it with `sandpit history`, then try again"
    )]
    QueueTimeout { id: i64, blocking_id: i64 },
    #[error(
        "`{needle}` is neither a commit (at least 7 hex digits), a digest (`sha256:<64 hex>`) \
         nor an artifact name (`<component>-<sha>.zip`)"
    )]
    BadQuery { needle: String },
    #[error("there is no pipeline #{id}; `sandpit pipelines` lists them")]
    PipelineNotFound { id: i64 },
    #[error("pipeline #{id} is {state} and cannot be marked {event}")]
    PipelineTransition {
        id: i64,
        state: String,
        event: &'static str,
    },
    #[error("invalid deployment record: {detail}")]
    Invalid { detail: String },
    #[error(
        "project `{name}` is already registered (added by {added_by} at {added_at})\nhint: remove it \
         first to register it again with another URL or branch"
    )]
    ProjectExists {
        name: String,
        added_by: String,
        added_at: String,
    },
    #[error("there is no project `{name}`\nhint: list the projects to see which are registered")]
    ProjectNotFound { name: String },
    #[error(
        "the state database {path} is empty (0 bytes): its contents were lost, perhaps to a full disk \
         or a truncation, and sandpit will not start a new history over it\nhint: restore it from a \
         backup; or, to start with no deployment history, move it aside (`mv {path} {path}.empty`)"
    )]
    Empty { path: String },
    #[error("the state database is corrupt: {detail}; restore it from a backup or move it aside")]
    Corrupt { detail: String },
    #[error(
        "the state database {path} has schema version {found}, newer than this sandpit knows \
         ({known}); upgrade sandpit"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("there is no token {id}; `sandpit tokens list` lists them")]
    TokenNotFound { id: String },
    #[error("token {id} was already revoked at {at}")]
    TokenAlreadyRevoked { id: String, at: String },
    #[error("cannot create the directory {path} for the state database: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("state database: {context}: {source}")]
    Database { context: String, source: DbError },
    #[error(
        "cannot reach the state database {url}: {detail}\nhint: check that PostgreSQL runs there \
         and that the URL's user, password and database are right (`--state` or `SANDPIT_STATE`)"
    )]
    Unreachable { url: String, detail: String },
}
