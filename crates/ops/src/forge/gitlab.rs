//! GitLab's webhook payloads (`Push Hook`, `Tag Push Hook`, `Merge Request Hook`) read into a
//! [`ForgeEvent`]. The event is named twice, by the `X-Gitlab-Event` header and by the
//! payload's `object_kind`; both must agree.

use serde::Deserialize;

use super::{commit_id, time, ForgeEvent, MergeRequestAction, MergeRequestEvent};

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not the JSON of a {event} payload: {detail}")]
    Malformed { event: String, detail: String },
    #[error("the header says `{header}` but the payload's object_kind is `{kind}`")]
    Mismatch { header: String, kind: String },
}

#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    after: Option<String>,
    checkout_sha: Option<String>,
    #[serde(default)]
    user_username: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequest {
    #[serde(default)]
    user: Option<User>,
    object_attributes: Attributes,
}

#[derive(Deserialize)]
struct User {
    username: Option<String>,
}

#[derive(Deserialize)]
struct Attributes {
    iid: u64,
    action: Option<String>,
    last_commit: Option<Commit>,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    source_branch: Option<String>,
    updated_at: Option<String>,
    /// Present on an update that pushed new commits.
    oldrev: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
}

/// Reads a delivery whose `X-Gitlab-Event` header is `header`.
pub fn parse(header: &str, body: &[u8]) -> Result<ForgeEvent, PayloadError> {
    let malformed = |error: serde_json::Error| PayloadError::Malformed {
        event: header.to_owned(),
        detail: error.to_string(),
    };
    let expected = match header {
        "Push Hook" => "push",
        "Tag Push Hook" => "tag_push",
        "Merge Request Hook" => "merge_request",
        other => {
            return Ok(ForgeEvent::Other {
                why: format!("GitLab event `{}` starts nothing here", short(other)),
            })
        }
    };
    let kind: Kind = serde_json::from_slice(body).map_err(malformed)?;
    match kind.object_kind.as_deref() {
        Some(kind) if kind == expected => {}
        Some(kind) => {
            return Err(PayloadError::Mismatch {
                header: header.to_owned(),
                kind: short(kind),
            })
        }
        None => {
            return Err(PayloadError::Malformed {
                event: header.to_owned(),
                detail: "it has no `object_kind`".to_owned(),
            })
        }
    }
    Ok(match expected {
        "push" | "tag_push" => {
            let push: Push = serde_json::from_slice(body).map_err(malformed)?;
            // `checkout_sha` is the commit (for an annotated tag `after` is the tag object);
            // both are null or zeros for a deletion.
            let sha = commit_id(push.checkout_sha.as_deref())
                .filter(|_| commit_id(push.after.as_deref()).is_some());
            let user = push.user_username.unwrap_or_default();
            if expected == "push" {
                let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
                    return Ok(ForgeEvent::Other {
                        why: format!(
                            "a push to `{}`, which is not a branch",
                            short(&push.reference)
                        ),
                    });
                };
                ForgeEvent::Push {
                    branch: branch.to_owned(),
                    sha,
                    user,
                }
            } else {
                let tag = push
                    .reference
                    .strip_prefix("refs/tags/")
                    .unwrap_or(&push.reference);
                ForgeEvent::Tag {
                    tag: tag.to_owned(),
                    sha,
                    user,
                }
            }
        }
        _ => {
            let mr: MergeRequest = serde_json::from_slice(body).map_err(malformed)?;
            let attributes = mr.object_attributes;
            let action = match attributes.action.as_deref() {
                Some("open") => MergeRequestAction::Open,
                Some("reopen") => MergeRequestAction::Reopen,
                Some("update") => MergeRequestAction::Update,
                Some("close") => MergeRequestAction::Close,
                Some("merge") => MergeRequestAction::Merge,
                Some(other) => MergeRequestAction::Other(short(other)),
                None => MergeRequestAction::Other("(none)".to_owned()),
            };
            ForgeEvent::MergeRequest(MergeRequestEvent {
                number: attributes.iid,
                action,
                last_commit: commit_id(attributes.last_commit.as_ref().map(|c| c.id.as_str())),
                new_commits: attributes.oldrev.is_some(),
                from_fork: match (attributes.source_project_id, attributes.target_project_id) {
                    (Some(source), Some(target)) => source != target,
                    _ => false,
                },
                updated_at: attributes.updated_at.as_deref().and_then(time::normalise),
                source_branch: attributes.source_branch,
                user: mr.user.and_then(|u| u.username).unwrap_or_default(),
            })
        }
    })
}

/// Untrusted text as it may appear in an answer: escaped and cut.
fn short(raw: &str) -> String {
    sandpit_domain::quoted(raw)
        .to_string()
        .trim_matches('`')
        .to_owned()
}
