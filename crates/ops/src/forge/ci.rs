//! A GitLab CI job's predefined variables read into the [`ForgeEvent`] the matching webhook
//! would have delivered, so `sandpit ci` does exactly what the hook does.

use super::{commit_id, ForgeEvent, MergeRequestAction, MergeRequestEvent};

/// What `sandpit ci` sends: GitLab's variables, by meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiJob {
    /// `CI_PIPELINE_SOURCE`.
    pub pipeline_source: String,
    /// `CI_COMMIT_SHA`.
    pub commit_sha: String,
    /// `CI_COMMIT_REF_NAME`.
    pub commit_ref_name: String,
    /// `CI_COMMIT_TAG`.
    pub commit_tag: Option<String>,
    /// `CI_MERGE_REQUEST_IID`.
    pub merge_request_iid: Option<u64>,
    /// `CI_MERGE_REQUEST_SOURCE_PROJECT_ID`.
    pub merge_request_source_project_id: Option<u64>,
    /// `CI_MERGE_REQUEST_PROJECT_ID`.
    pub merge_request_project_id: Option<u64>,
    /// `GITLAB_USER_LOGIN`.
    pub user_login: Option<String>,
    /// The review environment's stop job.
    pub stop: bool,
    /// When the server received it (RFC 3339 UTC, milliseconds): a job's events are ordered
    /// by arrival.
    pub received_at: String,
}

/// The event `job` stands for.
pub fn event(job: &CiJob) -> Result<ForgeEvent, String> {
    let sha = commit_id(Some(&job.commit_sha)).ok_or_else(|| {
        format!(
            "CI_COMMIT_SHA is {}, not a commit's 40 hex digits",
            sandpit_domain::quoted(&job.commit_sha)
        )
    })?;
    let user = job.user_login.clone().unwrap_or_default();
    if let Some(iid) = job.merge_request_iid {
        return Ok(ForgeEvent::MergeRequest(MergeRequestEvent {
            number: iid,
            action: if job.stop {
                MergeRequestAction::Close
            } else {
                // Every job of a merge request pipeline runs for its newest commit.
                MergeRequestAction::Update
            },
            last_commit: Some(sha),
            new_commits: true,
            from_fork: match (
                job.merge_request_source_project_id,
                job.merge_request_project_id,
            ) {
                (Some(source), Some(target)) => source != target,
                _ => false,
            },
            updated_at: Some(job.received_at.clone()),
            source_branch: Some(job.commit_ref_name.clone()),
            user,
        }));
    }
    if job.stop {
        return Err(
            "`--stop` takes a merge request's biome down, and CI_MERGE_REQUEST_IID is not set"
                .to_owned(),
        );
    }
    if job.pipeline_source == "merge_request_event" {
        return Err(
            "CI_PIPELINE_SOURCE is merge_request_event but CI_MERGE_REQUEST_IID is not set"
                .to_owned(),
        );
    }
    if let Some(tag) = &job.commit_tag {
        return Ok(ForgeEvent::Tag {
            tag: tag.clone(),
            sha: Some(sha),
            user,
        });
    }
    // push, web, schedule, api, trigger: a pipeline of a branch, by the push rules.
    Ok(ForgeEvent::Push {
        branch: job.commit_ref_name.clone(),
        sha: Some(sha),
        user,
    })
}
