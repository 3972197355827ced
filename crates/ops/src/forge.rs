//! What a forge's webhook (GitLab, GitHub) or a GitLab CI job running `sandpit ci` starts: a
//! pipeline for a push, a merge request's biome brought up or down, a tag's promotion — or
//! nothing, and why.
//!
//! Payloads are read into a [`ForgeEvent`] (`gitlab.rs`, `github.rs`, `ci.rs`), which
//! [`decide`] turns into a [`Decision`] by the project's rules — pure and table-tested.
//! [`apply`] does the I/O: it answers a redelivered key with its first answer, keeps a merge
//! request's older events from undoing newer ones, records a queued pipeline (nothing is
//! fetched or built while the forge waits for its answer) and records the delivery. Only a
//! commit id is taken from a payload, never code: the pipeline's fetch stage fetches the
//! project's own repository and fails when the commit is not in it.

pub mod ci;
pub mod github;
pub mod gitlab;
#[doc(hidden)]
pub mod samples;
mod time;

use std::sync::Mutex;

use sandpit_state::{Delivery, NewDelivery, Recorded, Trigger};
use serde::Serialize;

use crate::pipeline::{Enqueue, Target};
use crate::Context;

/// Which forge a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forge {
    Gitlab,
    Github,
    /// `sandpit ci` in a GitLab CI job.
    GitlabCi,
}

impl Forge {
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Gitlab => "gitlab",
            Forge::Github => "github",
            Forge::GitlabCi => "gitlab_ci",
        }
    }

    /// The biome of merge (pull) request `number`: `mr-<iid>` on GitLab, `pr-<n>` on GitHub.
    pub fn biome_of(self, number: u64) -> String {
        match self {
            Forge::Github => format!("pr-{number}"),
            Forge::Gitlab | Forge::GitlabCi => format!("mr-{number}"),
        }
    }

    fn user_prefix(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab | Forge::GitlabCi => "gitlab",
        }
    }
}

/// A forge's event, as far as sandpit cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeEvent {
    /// Commits pushed to a branch (or the branch deleted).
    Push {
        branch: String,
        /// The branch's new head; `None` when the push deleted the branch.
        sha: Option<String>,
        user: String,
    },
    /// A tag pushed (or deleted).
    Tag {
        tag: String,
        /// The commit the tag points at; `None` when the tag was deleted.
        sha: Option<String>,
        user: String,
    },
    MergeRequest(MergeRequestEvent),
    /// Anything else: answered with why it is ignored.
    Other {
        why: String,
    },
}

/// A merge (pull) request's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequestEvent {
    /// GitLab's `iid`, GitHub's `number`.
    pub number: u64,
    pub action: MergeRequestAction,
    /// The newest commit of its source branch.
    pub last_commit: Option<String>,
    /// For an update: whether it brought new commits (GitLab's `oldrev`, GitHub's
    /// `synchronize`).
    pub new_commits: bool,
    /// Its source project is not its target (a fork).
    pub from_fork: bool,
    /// The event's own time (RFC 3339, UTC), which orders events that arrive out of order.
    pub updated_at: Option<String>,
    pub source_branch: Option<String>,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeRequestAction {
    Open,
    Reopen,
    Update,
    Close,
    Merge,
    /// Approvals, labels and the rest: nothing for sandpit.
    Other(String),
}

/// The project's rules for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The branch the project was registered with.
    pub branch: String,
    /// `[pipelines]` of the branch head's `sandpit.toml` at the last fetch.
    pub pipelines: sandpit_spec::Pipelines,
    pub allow_forks: bool,
}

/// What an event starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A pipeline of `branch` at `sha`.
    Pipeline {
        sha: String,
        branch: String,
    },
    /// Merge request `number`'s biome brought up at `sha`.
    BiomeUp {
        number: u64,
        sha: String,
    },
    /// Merge request `number`'s biome taken down.
    BiomeDown {
        number: u64,
        last_commit: Option<String>,
    },
    /// A tag's commit put into `env`.
    Promotion {
        sha: String,
        tag: String,
        env: String,
    },
    Ignored(String),
}

impl Decision {
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Pipeline { .. } => "pipeline",
            Decision::BiomeUp { .. } => "biome_up",
            Decision::BiomeDown { .. } => "biome_down",
            Decision::Promotion { .. } => "promotion",
            Decision::Ignored(_) => "ignored",
        }
    }
}

/// What `event` starts under `rules`.
pub fn decide(event: &ForgeEvent, rules: &Rules) -> Decision {
    match event {
        ForgeEvent::Other { why } => Decision::Ignored(why.clone()),
        ForgeEvent::Push { branch, sha, .. } => {
            let Some(sha) = sha else {
                return Decision::Ignored(format!(
                    "branch `{branch}` was deleted; nothing runs for a deletion"
                ));
            };
            if *branch != rules.branch && !rules.pipelines.lists_branch(branch) {
                return Decision::Ignored(format!(
                    "a push to `{branch}`: pipelines run for `{}`{}",
                    rules.branch,
                    if rules.pipelines.branches.is_empty() {
                        " (list more under [pipelines] branches)".to_owned()
                    } else {
                        format!(" and {}", rules.pipelines.branches.join(", "))
                    }
                ));
            }
            Decision::Pipeline {
                sha: sha.clone(),
                branch: branch.clone(),
            }
        }
        ForgeEvent::Tag { tag, sha, .. } => {
            let Some(sha) = sha else {
                return Decision::Ignored(format!("tag `{tag}` was deleted"));
            };
            match &rules.pipelines.tag_promotes_to {
                Some(env) => Decision::Promotion {
                    sha: sha.clone(),
                    tag: tag.clone(),
                    env: env.to_string(),
                },
                None => Decision::Ignored(format!(
                    "tag `{tag}`: no rule for tags (set [pipelines] tag_promotes_to = \"ENV\")"
                )),
            }
        }
        ForgeEvent::MergeRequest(mr) => {
            if mr.from_fork && !rules.allow_forks {
                return Decision::Ignored(format!(
                    "merge request {} comes from a fork, whose code does not run here unless the project allows forks (`sandpit projects add … --allow-forks`)",
                    mr.number
                ));
            }
            match &mr.action {
                MergeRequestAction::Close | MergeRequestAction::Merge => Decision::BiomeDown {
                    number: mr.number,
                    last_commit: mr.last_commit.clone(),
                },
                MergeRequestAction::Update if !mr.new_commits => Decision::Ignored(format!(
                    "merge request {} changed without new commits; its biome stays as it is",
                    mr.number
                )),
                MergeRequestAction::Open
                | MergeRequestAction::Reopen
                | MergeRequestAction::Update => match &mr.last_commit {
                    Some(sha) => Decision::BiomeUp {
                        number: mr.number,
                        sha: sha.clone(),
                    },
                    None => Decision::Ignored(format!(
                        "merge request {} names no last commit",
                        mr.number
                    )),
                },
                MergeRequestAction::Other(action) => {
                    Decision::Ignored(format!("merge request action `{action}` changes no biome"))
                }
            }
        }
    }
}

/// A delivery as the server hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub project: String,
    pub forge: Forge,
    /// The event's name as the forge sent it (`Push Hook`, `pull_request`).
    pub event_name: String,
    pub delivery_key: Option<String>,
    pub event: ForgeEvent,
    /// Who stands behind a CI job's request (its token's user), instead of the payload's.
    pub requested_by: Option<String>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub delivery: Delivery,
    /// The delivery key was seen before: this is the first delivery's answer, and nothing
    /// was started now.
    pub redelivered: bool,
}

/// Deliveries are applied one at a time in a process, so the watermark a merge request's
/// event is checked against is never read while another event of it is being recorded.
static APPLYING: Mutex<()> = Mutex::new(());

/// Records `delivered` and starts what it asks for (see the module's comment).
pub fn apply(context: &Context, delivered: &Delivered) -> anyhow::Result<Applied> {
    let _turn = APPLYING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // One store for the whole delivery: each open costs a file check and a schema check.
    let mut store = crate::deployment::state_store(context)?;
    if let Some(key) = &delivered.delivery_key {
        if let Some(earlier) = store.delivery_by_key(&delivered.project, key)? {
            return Ok(Applied {
                delivery: earlier,
                redelivered: true,
            });
        }
    }
    let project = store.project(&delivered.project)?.ok_or_else(|| {
        sandpit_state::StateError::ProjectNotFound {
            name: delivered.project.clone(),
        }
    })?;
    // The rules are the branch head's as of the last fetch: nothing is fetched while the forge
    // waits. A head whose definition does not parse leaves the defaults.
    let pipelines = crate::projects::source_at(context, &project)
        .and_then(|source| source.spec())
        .map(|spec| spec.pipelines)
        .unwrap_or_default();
    let rules = Rules {
        branch: project.branch.clone(),
        pipelines,
        allow_forks: project.allow_forks,
    };
    let mut decision = decide(&delivered.event, &rules);
    let merge_request = match &delivered.event {
        ForgeEvent::MergeRequest(mr) => Some(mr),
        _ => None,
    };
    if let (Some(mr), Decision::BiomeUp { number, .. } | Decision::BiomeDown { number, .. }) =
        (merge_request, &decision)
    {
        let mark =
            store.merge_request_watermark(&delivered.project, delivered.forge.as_str(), *number)?;
        if let Some(why) = older_than_mark(mr.updated_at.as_deref(), mark.as_ref()) {
            decision = Decision::Ignored(why);
        }
    }
    let requested_by = delivered
        .requested_by
        .clone()
        .unwrap_or_else(|| forge_user(delivered.forge, event_user(&delivered.event)));
    let trigger = match delivered.forge {
        Forge::GitlabCi => Trigger::Ci,
        _ => Trigger::Webhook,
    };
    let mut enqueue = |target: Target, sha: String, branch: Option<String>| {
        crate::pipeline::enqueue_in(
            context,
            &mut store,
            &Enqueue {
                project: delivered.project.clone(),
                sha,
                branch,
                target,
                trigger,
                requested_by: requested_by.clone(),
            },
        )
    };
    let started = match &decision {
        Decision::Pipeline { sha, branch } => Some((
            enqueue(Target::Environments, sha.clone(), Some(branch.clone())),
            None,
            format!("pipeline for `{branch}` at {sha}"),
        )),
        Decision::BiomeUp { number, sha } => {
            let biome = delivered.forge.biome_of(*number);
            Some((
                enqueue(
                    Target::Biome {
                        name: biome.clone(),
                    },
                    sha.clone(),
                    mr_branch(merge_request),
                ),
                Some(biome.clone()),
                format!("biome {biome} brought up at {sha}"),
            ))
        }
        Decision::BiomeDown {
            number,
            last_commit,
        } => {
            let biome = delivered.forge.biome_of(*number);
            // The commit is recorded for information; a down needs none of its code.
            let sha = last_commit
                .clone()
                .or_else(|| project.head.clone())
                .unwrap_or_default();
            Some((
                enqueue(
                    Target::BiomeDown {
                        name: biome.clone(),
                    },
                    sha,
                    mr_branch(merge_request),
                ),
                Some(biome.clone()),
                format!("biome {biome} taken down"),
            ))
        }
        Decision::Promotion { sha, tag, env } => Some((
            enqueue(Target::Environment { env: env.clone() }, sha.clone(), None),
            None,
            format!("tag `{tag}` at {sha} into `{env}`"),
        )),
        Decision::Ignored(_) => None,
    };
    let sha = match &decision {
        Decision::Pipeline { sha, .. }
        | Decision::BiomeUp { sha, .. }
        | Decision::Promotion { sha, .. } => Some(sha.clone()),
        Decision::BiomeDown { last_commit, .. } => last_commit.clone(),
        Decision::Ignored(_) => event_sha(&delivered.event),
    };
    let mut new = NewDelivery {
        project: delivered.project.clone(),
        forge: delivered.forge.as_str().to_owned(),
        event: delivered.event_name.clone(),
        delivery_key: delivered.delivery_key.clone(),
        status: 200,
        action: decision.action().to_owned(),
        summary: String::new(),
        pipeline_id: None,
        biome: None,
        sha,
        merge_request: merge_request.map(|mr| mr.number),
        mr_updated_at: merge_request.and_then(|mr| mr.updated_at.clone()),
    };
    let outcome = match started {
        None => {
            new.summary = match &decision {
                Decision::Ignored(why) => why.clone(),
                _ => unreachable!("only an ignored event starts nothing"),
            };
            Ok(())
        }
        Some((Ok(pipeline), biome, what)) => {
            new.status = 202;
            new.pipeline_id = Some(pipeline.id);
            new.biome = biome;
            new.summary = format!("pipeline #{} queued: {what}", pipeline.id);
            Ok(())
        }
        Some((Err(error), biome, what)) => {
            new.status = 422;
            new.action = "ignored".to_owned();
            new.biome = biome;
            new.summary = format!("refused ({what}): {error:#}");
            Err(error)
        }
    };
    let recorded = store.record_delivery(&new)?;
    outcome?;
    Ok(match recorded {
        Recorded::New(delivery) => Applied {
            delivery,
            redelivered: false,
        },
        // Another process recorded the same key in between: its answer stands (and the
        // pipeline queued here is superseded by its twin).
        Recorded::Earlier(delivery) => Applied {
            delivery,
            redelivered: true,
        },
    })
}

/// Why an event of time `at` must not act, given the newest event that acted (`mark`).
fn older_than_mark(at: Option<&str>, mark: Option<&Delivery>) -> Option<String> {
    let mark = mark?;
    let (Some(at), Some(marked)) = (at, mark.mr_updated_at.as_deref()) else {
        return None;
    };
    (time::is_before(at, marked)).then(|| {
        format!(
            "an older event ({at}) than delivery #{} ({marked}), which already {}; it is not undone",
            mark.id,
            match mark.action.as_str() {
                "biome_down" => "took the biome down".to_owned(),
                _ => format!(
                    "brought the biome up at {}",
                    mark.sha.as_deref().unwrap_or("its commit")
                ),
            }
        )
    })
}

fn mr_branch(mr: Option<&MergeRequestEvent>) -> Option<String> {
    mr.and_then(|mr| mr.source_branch.clone())
}

fn event_user(event: &ForgeEvent) -> &str {
    match event {
        ForgeEvent::Push { user, .. } | ForgeEvent::Tag { user, .. } => user,
        ForgeEvent::MergeRequest(mr) => &mr.user,
        ForgeEvent::Other { .. } => "",
    }
}

fn event_sha(event: &ForgeEvent) -> Option<String> {
    match event {
        ForgeEvent::Push { sha, .. } | ForgeEvent::Tag { sha, .. } => sha.clone(),
        ForgeEvent::MergeRequest(mr) => mr.last_commit.clone(),
        ForgeEvent::Other { .. } => None,
    }
}

/// `gitlab:alice`: the forge's user name kept to the characters user names have, so a
/// payload cannot write anything else into the records.
fn forge_user(forge: Forge, user: &str) -> String {
    let clean: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(64)
        .collect();
    format!(
        "{}:{}",
        forge.user_prefix(),
        if clean.is_empty() { "unknown" } else { &clean }
    )
}

/// A commit id from a payload: 40 hex digits (lowercased), or nothing.
pub(crate) fn commit_id(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    (raw.len() == 40
        && raw.bytes().all(|b| b.is_ascii_hexdigit())
        && raw.bytes().any(|b| b != b'0'))
    .then(|| raw.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
