//! `POST /api/v1/projects/{project}/ci`: what a GitLab CI job running `sandpit ci` tells the
//! server — GitLab's predefined variables, as GitLab set them — and what the server started.

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

/// What the server did for a CI job: the same decision a webhook delivery gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CiJobAnswer {
    /// `pipeline`, `biome_up`, `biome_down`, `promotion` or `ignored`.
    pub action: String,
    /// One line for the job's log: what was started, or why nothing was.
    pub summary: String,
    /// The pipeline started, which `sandpit ci` follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<i64>,
    /// The biome it acts on (`mr-<iid>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biome: Option<String>,
    /// Why nothing was started (a branch no rule lists, a fork's merge request, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}
