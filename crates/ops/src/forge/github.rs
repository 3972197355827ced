//! GitHub's webhook payloads (`push`, `pull_request`) read into a [`ForgeEvent`]; the event is
//! named by the `X-GitHub-Event` header. A tag arrives as a `push` of `refs/tags/…`.

use serde::Deserialize;

use super::gitlab::PayloadError;
use super::{commit_id, time, ForgeEvent, MergeRequestAction, MergeRequestEvent};

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    sender: Option<Sender>,
}

#[derive(Deserialize)]
struct Sender {
    login: Option<String>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    sender: Option<Sender>,
}

#[derive(Deserialize)]
struct PullRequest {
    head: Side,
    base: Side,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct Side {
    sha: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    repo: Option<Repo>,
}

#[derive(Deserialize)]
struct Repo {
    id: Option<u64>,
}

/// Reads a delivery whose `X-GitHub-Event` header is `header`.
pub fn parse(header: &str, body: &[u8]) -> Result<ForgeEvent, PayloadError> {
    let malformed = |error: serde_json::Error| PayloadError::Malformed {
        event: header.to_owned(),
        detail: error.to_string(),
    };
    match header {
        "push" => {
            let push: Push = serde_json::from_slice(body).map_err(malformed)?;
            let sha = commit_id(push.after.as_deref()).filter(|_| !push.deleted);
            let user = push.sender.and_then(|s| s.login).unwrap_or_default();
            Ok(
                if let Some(branch) = push.reference.strip_prefix("refs/heads/") {
                    ForgeEvent::Push {
                        branch: branch.to_owned(),
                        sha,
                        user,
                    }
                } else if let Some(tag) = push.reference.strip_prefix("refs/tags/") {
                    ForgeEvent::Tag {
                        tag: tag.to_owned(),
                        sha,
                        user,
                    }
                } else {
                    ForgeEvent::Other {
                        why: format!(
                            "a push to {}, which is neither a branch nor a tag",
                            sandpit_domain::quoted(&push.reference)
                        ),
                    }
                },
            )
        }
        "pull_request" => {
            let event: PullRequestEvent = serde_json::from_slice(body).map_err(malformed)?;
            let pr = event.pull_request;
            let action = match event.action.as_str() {
                "opened" => MergeRequestAction::Open,
                "reopened" => MergeRequestAction::Reopen,
                "synchronize" => MergeRequestAction::Update,
                // GitHub says `closed` for a merge too (with `merged: true`): both end the biome.
                "closed" => MergeRequestAction::Close,
                other => MergeRequestAction::Other(
                    sandpit_domain::quoted(other)
                        .to_string()
                        .trim_matches('`')
                        .to_owned(),
                ),
            };
            let head_repo = pr.head.repo.as_ref().and_then(|r| r.id);
            let base_repo = pr.base.repo.as_ref().and_then(|r| r.id);
            Ok(ForgeEvent::MergeRequest(MergeRequestEvent {
                number: event.number,
                new_commits: action == MergeRequestAction::Update,
                action,
                last_commit: commit_id(pr.head.sha.as_deref()),
                // A fork's head repository is another one (or gone, when the fork was deleted).
                from_fork: match (head_repo, base_repo) {
                    (Some(head), Some(base)) => head != base,
                    (None, Some(_)) => true,
                    _ => false,
                },
                updated_at: pr.updated_at.as_deref().and_then(time::normalise),
                source_branch: pr.head.reference,
                user: event.sender.and_then(|s| s.login).unwrap_or_default(),
            }))
        }
        "ping" => Ok(ForgeEvent::Other {
            why: "ping: the hook reaches sandpit".to_owned(),
        }),
        other => Ok(ForgeEvent::Other {
            why: format!(
                "GitHub event {} starts nothing here",
                sandpit_domain::quoted(other)
            ),
        }),
    }
}
