//! The API's JSON shapes, in one place: what handlers answer and accept, with their OpenAPI
//! schemas derived here. They are converted by hand from the use cases' types, so a change in
//! `sandpit-ops` never changes the wire by accident.

pub mod artifacts;
pub mod biome;
pub mod biomes;
pub mod changes;
pub mod config;
pub mod deployments;
pub mod hooks;
pub mod logs;
pub mod reap;

pub mod trace;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::projects::{ProjectView, RemovedProject as OpsRemovedProject};
use sandpit_ops::tokens::{CreatedToken as OpsCreatedToken, TokenRecord};
use sandpit_state::Pipeline as OpsPipeline;

/// Every failure: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `invalid_input`, `needs_approval`, `unavailable` or `internal`.
    pub code: String,
    pub message: String,
    /// What to do about it, when there is something to say.
    pub hint: Option<String>,
}

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /api/v1/whoami`: who the token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub user: String,
    /// Role names: `viewer`, `developer`, `deployer`, `approver`, `admin`.
    pub roles: Vec<String>,
    pub token_id: String,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Who the token speaks for, e.g. `alice@example.com`.
    pub user: String,
    /// At least one of `viewer`, `developer`, `deployer`, `approver`, `admin`.
    pub roles: Vec<String>,
    /// How long it is valid, e.g. `30d`, `12h`, `90m`; `null` or absent: it does not expire.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// `POST /api/v1/tokens` → 201: the token, with the only copy of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// `tok_` and 12 hex digits.
    pub id: String,
    pub user: String,
    pub roles: Vec<String>,
    /// RFC 3339 UTC, like every time here.
    pub created_at: String,
    pub expires_at: Option<String>,
    /// `spt_` and 43 base64url characters. Shown once: only its sha256 is stored.
    pub secret: String,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub created_by: String,
    pub revoked_at: Option<String>,
}

/// `GET /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

fn role_names(record: &TokenRecord) -> Vec<String> {
    record
        .roles
        .iter()
        .map(|role| role.as_str().to_owned())
        .collect()
}

impl From<&TokenRecord> for Token {
    fn from(record: &TokenRecord) -> Token {
        Token {
            id: record.id.clone(),
            user: record.user.clone(),
            roles: role_names(record),
            created_at: record.created_at.clone(),
            expires_at: record.expires_at.clone(),
            created_by: record.created_by.clone(),
            revoked_at: record.revoked_at.clone(),
        }
    }
}

impl From<&OpsCreatedToken> for CreatedToken {
    fn from(created: &OpsCreatedToken) -> CreatedToken {
        CreatedToken {
            id: created.record.id.clone(),
            user: created.record.user.clone(),
            roles: role_names(&created.record),
            created_at: created.record.created_at.clone(),
            expires_at: created.record.expires_at.clone(),
            secret: created.secret.expose().to_owned(),
        }
    }
}

/// `POST /api/v1/projects`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddProjectRequest {
    /// The project's name, as its `sandpit.toml` `[project] name` says.
    pub name: String,
    /// Where to fetch it from: a git URL (`https://…`, `ssh://…`, `file://…` or a path).
    pub git: String,
    /// The branch pipelines build by default (absent: `main`).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The secret its webhooks carry (GitLab's `X-Gitlab-Token`) or sign with (GitHub):
    /// 16 to 256 printable characters. Absent: one is generated and answered once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Run merge requests from forks (their code on the team's machines). Absent: no.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_forks: bool,
}

fn default_branch() -> String {
    "main".to_owned()
}

/// A registered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub name: String,
    /// The git URL, credentials replaced by `***`.
    pub git: String,
    pub branch: String,
    /// The branch head at the last fetch.
    pub head: Option<String>,
    pub fetched_at: Option<String>,
    pub added_by: String,
    pub added_at: String,
    /// Whether merge requests from forks run.
    pub allow_forks: bool,
    /// Where its webhooks go, relative to the server's URL.
    pub hooks: ProjectHooks,
    /// The webhook secret: only in the answer of `POST /api/v1/projects`, never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// A project's webhook paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectHooks {
    /// `/hooks/gitlab/<name>`: the URL to give GitLab (Settings → Webhooks).
    pub gitlab: String,
    /// `/hooks/github/<name>`.
    pub github: String,
}

/// `GET /api/v1/projects`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}

/// `DELETE /api/v1/projects/{name}`: the project as it was, and what was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemovedProject {
    pub name: String,
    pub git: String,
    pub branch: String,
    pub head: Option<String>,
    pub fetched_at: Option<String>,
    pub added_by: String,
    pub added_at: String,
    pub removed_at: String,
    pub removed_by: String,
    /// Where its artifacts and deployment history stay, relative to `$SANDPIT_HOME`.
    pub kept: String,
    pub message: String,
}

impl From<&ProjectView> for Project {
    fn from(view: &ProjectView) -> Project {
        Project {
            name: view.name.clone(),
            git: view.git.clone(),
            branch: view.branch.clone(),
            head: view.head.clone(),
            fetched_at: view.fetched_at.clone(),
            added_by: view.added_by.clone(),
            added_at: view.added_at.clone(),
            allow_forks: view.allow_forks,
            hooks: ProjectHooks {
                gitlab: view.hooks.gitlab.clone(),
                github: view.hooks.github.clone(),
            },
            webhook_secret: view.webhook_secret.clone(),
        }
    }
}

impl From<&OpsRemovedProject> for RemovedProject {
    fn from(removed: &OpsRemovedProject) -> RemovedProject {
        let project = Project::from(&removed.project);
        RemovedProject {
            name: project.name,
            git: project.git,
            branch: project.branch,
            head: project.head,
            fetched_at: project.fetched_at,
            added_by: project.added_by,
            added_at: project.added_at,
            removed_at: removed.removed_at.clone(),
            removed_by: removed.removed_by.clone(),
            kept: removed.kept.clone(),
            message: removed.message.clone(),
        }
    }
}

/// `POST /api/v1/projects/{project}/pipelines`: which commit (neither: the project's branch head).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunPipelineRequest {
    /// A pushed commit: its full sha, or at least 7 hex digits of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The head of this branch of the project's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Bring this biome up at the commit instead of deploying to the environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biome: Option<String>,
    /// With `biome`: take it down instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

/// A pipeline: a commit fetched, built, deployed and promoted, stage by stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    pub id: i64,
    pub project: String,
    /// `manual`, `webhook`, `schedule` or `ci`.
    pub trigger: String,
    /// `environments` (deploy, then promote), `biome` (bring `biome` up) or `biome_down`.
    pub target: String,
    /// The biome a `biome` or `biome_down` pipeline acts on.
    pub biome: Option<String>,
    pub requested_by: String,
    /// The branch asked for; `null` for a commit asked for by its sha.
    pub branch: Option<String>,
    /// The commit, 40 hex digits.
    pub sha: String,
    /// The pipeline this one runs again.
    pub retry_of: Option<i64>,
    /// `queued`, `running`, `succeeded`, `failed`, `pending` (a promotion waits for approval)
    /// or `superseded`.
    pub state: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed, what it waits for, or which pipeline superseded it.
    pub message: Option<String>,
    pub stages: Vec<PipelineStage>,
    /// How its reports to GitLab stand (`GET /api/v1/pipelines/{id}` only; absent when it
    /// reports nowhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<PipelineReports>,
}

/// How a pipeline's reports to GitLab (commit statuses, the merge request's note) stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineReports {
    /// Not delivered yet: to be sent, or retried after a failure.
    pub waiting: u64,
    pub delivered: u64,
    /// Given up: refused by GitLab, or out of attempts.
    pub failed: u64,
    /// Replaced by a newer note before they were sent.
    pub superseded: u64,
    /// The newest error of a waiting or failed one (never a token).
    pub last_error: Option<String>,
}

impl From<sandpit_state::ReportCounts> for PipelineReports {
    fn from(counts: sandpit_state::ReportCounts) -> PipelineReports {
        PipelineReports {
            waiting: counts.waiting,
            delivered: counts.delivered,
            failed: counts.failed,
            superseded: counts.superseded,
            last_error: counts.last_error,
        }
    }
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineStage {
    pub position: u32,
    /// `fetch`, `build`, `deploy`, `promote`, `up` or `down`.
    pub kind: String,
    /// The environment deployed or promoted into.
    pub env: Option<String>,
    /// `waiting`, `running`, `succeeded`, `failed`, `pending` or `skipped`.
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
    /// The deployment it made (`sandpit approve ID` takes a pending one's).
    pub deployment: Option<i64>,
}

/// `GET /api/v1/pipelines`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    pub pipelines: Vec<Pipeline>,
}

/// `GET /api/v1/pipelines/{id}/log?offset=N`: the log from byte `offset` on, in chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineLogChunk {
    /// The log's text from `offset` (at most 256 KiB of it, whole characters only).
    pub text: String,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// The pipeline is finished (or waits for an approval) and `text` reaches the log's end:
    /// nothing more will be written.
    pub finished: bool,
}

impl From<&OpsPipeline> for Pipeline {
    fn from(pipeline: &OpsPipeline) -> Pipeline {
        Pipeline {
            id: pipeline.id,
            project: pipeline.project.clone(),
            trigger: pipeline.trigger.as_str().to_owned(),
            target: pipeline.target.as_str().to_owned(),
            biome: pipeline.biome.clone(),
            requested_by: pipeline.requested_by.clone(),
            branch: pipeline.branch.clone(),
            sha: pipeline.sha.clone(),
            retry_of: pipeline.retry_of,
            state: pipeline.state.as_str().to_owned(),
            created_at: pipeline.created_at.clone(),
            started_at: pipeline.started_at.clone(),
            finished_at: pipeline.finished_at.clone(),
            message: pipeline.message.clone(),
            stages: pipeline
                .stages
                .iter()
                .map(|stage| PipelineStage {
                    position: stage.position,
                    kind: stage.kind.as_str().to_owned(),
                    env: stage.env.clone(),
                    state: stage.state.as_str().to_owned(),
                    started_at: stage.started_at.clone(),
                    finished_at: stage.finished_at.clone(),
                    message: stage.message.clone(),
                    deployment: stage.deployment,
                })
                .collect(),
            reports: None,
        }
    }
}

/// `POST /api/v1/deployments/{id}/reject`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// Deployments (`history --json`, and what `approve`, `reject` and the changes answer) are in
// `deployments`; a biome as it runs (`status --json`) is in `biome`.
