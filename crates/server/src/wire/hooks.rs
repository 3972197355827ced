//! Webhook deliveries: what a delivery (`POST /hooks/gitlab|github/{project}`) or a GitLab CI
//! job running `sandpit ci` (`POST /api/v1/projects/{project}/ci`) is answered, the CI job's
//! request (GitLab's predefined variables, as GitLab set them), and the recorded deliveries
//! `sandpit hooks` lists.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// GitLab's predefined CI/CD variables of the job, by their own names, unchanged: the server
/// decides from them what the matching webhook would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CiJobRequest {
    /// `CI_PIPELINE_SOURCE`: `push`, `merge_request_event`, `web`, `schedule`, …
    pub pipeline_source: String,
    /// `CI_COMMIT_SHA`: the commit the job runs for (40 hex digits).
    pub commit_sha: String,
    /// `CI_COMMIT_REF_NAME`: the branch or tag.
    pub commit_ref_name: String,
    /// `CI_DEFAULT_BRANCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// `CI_COMMIT_TAG`, set only in a tag's pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_tag: Option<String>,
    /// `CI_MERGE_REQUEST_IID`, set only in a merge request's pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_request_iid: Option<u64>,
    /// `CI_MERGE_REQUEST_SOURCE_PROJECT_ID`: differs from the target's for a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_request_source_project_id: Option<u64>,
    /// `CI_MERGE_REQUEST_PROJECT_ID`: the merge request's (target) project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_request_project_id: Option<u64>,
    /// `CI_PROJECT_PATH`, e.g. `group/app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_path: Option<String>,
    /// `CI_PIPELINE_ID`: with the job, what makes a retried request the same delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<u64>,
    /// `CI_JOB_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// `GITLAB_USER_LOGIN`: who started the GitLab pipeline (recorded, not trusted for roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_login: Option<String>,
    /// `sandpit ci --stop`: the review environment's stop job — the merge request's biome goes
    /// down.
    #[serde(default)]
    pub stop: bool,
}

/// What a delivery (or a CI job's request) started: the same for every forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookAnswer {
    /// The recorded delivery (`sandpit hooks` lists it).
    pub delivery: i64,
    /// `pipeline`, `biome_up`, `biome_down`, `promotion` or `ignored`.
    pub action: String,
    /// One line: what was started, or why nothing was.
    pub summary: String,
    /// The pipeline queued, which `sandpit ci` follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<i64>,
    /// The biome it acts on (`mr-<iid>`, `pr-<number>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biome: Option<String>,
    /// Why nothing was started (a branch no rule lists, a fork's merge request, an event older
    /// than one that already acted, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// The delivery key was seen before: this is the first delivery's answer, and nothing was
    /// started now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

impl From<&sandpit_state::Delivery> for HookAnswer {
    fn from(delivery: &sandpit_state::Delivery) -> HookAnswer {
        HookAnswer {
            delivery: delivery.id,
            action: delivery.action.clone(),
            summary: delivery.summary.clone(),
            pipeline: delivery.pipeline_id,
            biome: delivery.biome.clone(),
            ignored: (delivery.action == "ignored").then(|| delivery.summary.clone()),
            redelivered: false,
        }
    }
}

/// A recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookDelivery {
    pub id: i64,
    pub project: String,
    /// `gitlab`, `github` or `gitlab_ci`.
    pub forge: String,
    /// The event as the forge named it (`Push Hook`, `pull_request`, `merge_request_event`).
    pub event: String,
    /// `X-Gitlab-Event-UUID`, `X-GitHub-Delivery` or `Idempotency-Key`.
    pub delivery_key: Option<String>,
    pub received_at: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    pub action: String,
    pub summary: String,
    pub pipeline: Option<i64>,
    pub biome: Option<String>,
    pub sha: Option<String>,
    pub merge_request: Option<u64>,
}

impl From<&sandpit_state::Delivery> for HookDelivery {
    fn from(delivery: &sandpit_state::Delivery) -> HookDelivery {
        HookDelivery {
            id: delivery.id,
            project: delivery.project.clone(),
            forge: delivery.forge.clone(),
            event: delivery.event.clone(),
            delivery_key: delivery.delivery_key.clone(),
            received_at: delivery.received_at.clone(),
            status: delivery.status,
            action: delivery.action.clone(),
            summary: delivery.summary.clone(),
            pipeline: delivery.pipeline_id,
            biome: delivery.biome.clone(),
            sha: delivery.sha.clone(),
            merge_request: delivery.merge_request,
        }
    }
}

/// `GET /api/v1/hooks`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookDeliveryList {
    pub deliveries: Vec<HookDelivery>,
}
