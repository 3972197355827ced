//! What one reaper run removes, what it keeps, each with why, and whether the run must stop
//! (pure: facts in, verdicts out; the fail-safe lives here, table-tested).
//!
//! After Argo CD's mass deletions, nothing is removed on a guess:
//! - a merge request's biome (`mr-<iid>`) goes only when GitLab confirms the merge request is
//!   closed or merged — then even before its ttl, since the close event was missed — and stays
//!   while it is open, however old; a pull request's (`pr-<n>`) is never removed, as no GitHub
//!   API is configured to confirm anything;
//! - a git host that cannot be asked (no answer, a timeout, a 5xx) or answers something
//!   unreadable stops the whole run: nothing at all is removed, expired plain biomes included;
//! - a run that would remove more than one biome and more than the share limit of the
//!   project's biomes stops and says so, unless forced;
//! - a biome whose definition cannot be read is kept and reported, never removed blindly.

use std::time::SystemTime;

use sandpit_domain::Name;

use crate::report::plan::Answer;

/// What a biome's name says it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A personal or branch biome.
    None,
    /// `mr-<iid>`: a GitLab merge request.
    MergeRequest(u64),
    /// `pr-<n>`: a GitHub pull request.
    PullRequest(u64),
}

/// The request `biome` is named after.
pub fn request_of(biome: &str) -> Request {
    if let Some(iid) = crate::report::merge_request_of(biome) {
        return Request::MergeRequest(iid);
    }
    // The same shape as a merge request's: `pr-` and a number without leading zeros.
    let pull = biome
        .strip_prefix("pr-")
        .and_then(|n| crate::report::merge_request_of(&format!("mr-{n}")));
    match pull {
        Some(n) => Request::PullRequest(n),
        None => Request::None,
    }
}

/// A merge request's state as GitLab names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRequestState {
    Opened,
    Closed,
    Merged,
    /// Being merged right now: still open.
    Locked,
}

/// What asking the git host about a merge request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHostAnswer {
    State(MergeRequestState),
    /// GitLab answered 404: it knows no such merge request (deleted, or another project).
    NotFound,
    /// It was not asked, and why (no `[gitlab]`, no token).
    NotAsked(String),
    /// No answer: cannot connect, a timeout, or a 5xx.
    Unreachable(String),
    /// An answer that says nothing usable: a refusal (401, 403, …), a body that is not a merge
    /// request, a state sandpit does not know.
    Unreadable(String),
}

/// What GitLab's answer to `GET …/merge_requests/<iid>` means (pure).
pub fn merge_request_answer(answer: &Answer, body: &str) -> GitHostAnswer {
    let status = match answer {
        Answer::NoAnswer(why) => return GitHostAnswer::Unreachable(why.clone()),
        Answer::Status(status) => *status,
    };
    match status {
        200 => {}
        404 => return GitHostAnswer::NotFound,
        500..=599 => return GitHostAnswer::Unreachable(format!("GitLab answered {status}")),
        other => {
            let said = crate::report::plan::shortened(body, 200);
            return GitHostAnswer::Unreadable(if said.is_empty() {
                format!("GitLab refused the question with {other}")
            } else {
                format!("GitLab refused the question with {other}: {said}")
            });
        }
    }
    let state = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("state")?.as_str().map(str::to_owned));
    match state.as_deref() {
        Some("opened") => GitHostAnswer::State(MergeRequestState::Opened),
        Some("closed") => GitHostAnswer::State(MergeRequestState::Closed),
        Some("merged") => GitHostAnswer::State(MergeRequestState::Merged),
        Some("locked") => GitHostAnswer::State(MergeRequestState::Locked),
        Some(other) => GitHostAnswer::Unreadable(format!(
            "GitLab said the merge request is {}, a state sandpit does not know",
            sandpit_domain::quoted(other)
        )),
        None => GitHostAnswer::Unreadable(
            "GitLab's answer is not a merge request with a `state`".to_owned(),
        ),
    }
}

/// When a biome expires and what set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryFact {
    pub at: SystemTime,
    /// RFC 3339, as shown.
    pub shown: String,
    /// E.g. `ttl 7d after the up of 2026-12-03T10:00:00Z`.
    pub cause: String,
}

/// Everything the plan knows about one biome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub biome: Name,
    pub env: Name,
    /// `None`: none was recorded (brought up before sandpit recorded expiries).
    pub expiry: Option<ExpiryFact>,
    /// Whether its definition (`sandpit.toml` at the commit it runs) can be read, which its
    /// removal needs; the error says why not.
    pub definition: Result<(), String>,
    /// For a merge request's biome: what the git host said.
    pub merge_request: Option<GitHostAnswer>,
}

/// The share guard: at most `max_percent` of all the project's biomes go in one run, unless
/// `force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimit {
    pub max_percent: u32,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Remove,
    Keep,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Remove => "remove",
            Action::Keep => "keep",
        }
    }
}

/// What happens to one biome, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub biome: Name,
    pub env: Name,
    pub action: Action,
    pub reason: String,
}

/// Why a run removes nothing at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The git host could not be asked about merge request biome `biome`.
    GitHost { biome: Name, why: String },
    /// It would remove `removing` of the project's `of` biomes, more than `max_percent`.
    Share {
        removing: usize,
        of: usize,
        max_percent: u32,
    },
    /// The state store cannot be read, so what exists is unknown.
    StateStore(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::GitHost { biome, why } => write!(
                f,
                "nothing was removed: the git host could not tell whether the merge request of `{biome}` is closed ({why}); the reaper removes nothing while it cannot ask"
            ),
            Stop::Share {
                removing,
                of,
                max_percent,
            } => write!(
                f,
                "nothing was removed: this run would remove {removing} of the project's {of} biomes, more than [biomes] reap_max_percent = {max_percent}%\nhint: check the verdicts; `sandpit reap --force` removes them all the same"
            ),
            Stop::StateStore(why) => write!(
                f,
                "nothing was removed: the state store cannot be read ({why}), so what exists is unknown"
            ),
        }
    }
}

/// The verdicts (in the candidates' order) and whether the run stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub verdicts: Vec<Verdict>,
    /// When set, nothing is removed; the `remove` verdicts say what would have gone.
    pub stop: Option<Stop>,
}

impl Plan {
    pub fn removals(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.action == Action::Remove)
    }
}

/// Decides one run over every biome of a project at `now`.
pub fn plan(candidates: &[Candidate], limit: ShareLimit, now: SystemTime) -> Plan {
    let mut stop = None;
    let verdicts: Vec<Verdict> = candidates
        .iter()
        .map(|candidate| {
            let (action, reason) = verdict(candidate, now);
            if let Some(GitHostAnswer::Unreachable(why) | GitHostAnswer::Unreadable(why)) =
                &candidate.merge_request
            {
                stop.get_or_insert(Stop::GitHost {
                    biome: candidate.biome.clone(),
                    why: why.clone(),
                });
            }
            Verdict {
                biome: candidate.biome.clone(),
                env: candidate.env.clone(),
                action,
                reason,
            }
        })
        .collect();
    let removing = verdicts
        .iter()
        .filter(|v| v.action == Action::Remove)
        .count();
    let of = candidates.len();
    // One removal is never a mass deletion: a project with a single expired biome of two must
    // not need `--force` every time.
    let over_limit =
        removing > 1 && removing as u128 * 100 > of as u128 * u128::from(limit.max_percent);
    if stop.is_none() && over_limit && !limit.force {
        stop = Some(Stop::Share {
            removing,
            of,
            max_percent: limit.max_percent,
        });
    }
    Plan { verdicts, stop }
}

fn verdict(candidate: &Candidate, now: SystemTime) -> (Action, String) {
    use Action::{Keep, Remove};
    if let Err(why) = &candidate.definition {
        return (
            Keep,
            format!("its definition cannot be read ({why}); kept, never removed blindly"),
        );
    }
    let expired = candidate.expiry.as_ref().filter(|e| e.at <= now);
    match request_of(candidate.biome.as_str()) {
        Request::PullRequest(n) => (
            Keep,
            format!("pull request #{n}: no GitHub API is configured to confirm it is closed, so the reaper never removes it (`sandpit down {}` does)", candidate.biome),
        ),
        Request::MergeRequest(iid) => match &candidate.merge_request {
            Some(GitHostAnswer::State(MergeRequestState::Merged)) => {
                (Remove, format!("merge request !{iid} is merged"))
            }
            Some(GitHostAnswer::State(MergeRequestState::Closed)) => {
                (Remove, format!("merge request !{iid} is closed"))
            }
            Some(GitHostAnswer::State(
                state @ (MergeRequestState::Opened | MergeRequestState::Locked),
            )) => {
                let what = if *state == MergeRequestState::Locked {
                    "is being merged"
                } else {
                    "is open"
                };
                let past = expired
                    .map(|e| format!(", though it expired {}", e.shown))
                    .unwrap_or_default();
                (Keep, format!("merge request !{iid} {what}{past}"))
            }
            Some(GitHostAnswer::NotFound) => (
                Keep,
                format!("GitLab knows no merge request !{iid}; only one confirmed closed or merged removes its biome"),
            ),
            Some(GitHostAnswer::NotAsked(why)) => (
                Keep,
                format!("merge request !{iid} was not asked about ({why}); only one confirmed closed or merged removes its biome"),
            ),
            Some(GitHostAnswer::Unreachable(why) | GitHostAnswer::Unreadable(why)) => (
                Keep,
                format!("whether merge request !{iid} is closed is unknown: {why}"),
            ),
            None => (
                Keep,
                format!("merge request !{iid} was not asked about; only one confirmed closed or merged removes its biome"),
            ),
        },
        Request::None => match (&candidate.expiry, expired) {
            (None, _) => (
                Keep,
                "no expiry is recorded (it was brought up before sandpit recorded them; `sandpit up` or `sandpit extend` sets one)".to_owned(),
            ),
            (Some(_), Some(e)) => (Remove, format!("expired {} ({})", e.shown, e.cause)),
            (Some(e), None) => {
                let left = crate::expiry::relative(e.at, now);
                (Keep, format!("expires {} ({left}; {})", e.shown, e.cause))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOW: u64 = 2_000_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn candidate(biome: &str, expires: Option<u64>, answer: Option<GitHostAnswer>) -> Candidate {
        Candidate {
            biome: Name::parse(biome).unwrap(),
            env: Name::parse("dev").unwrap(),
            expiry: expires.map(|secs| ExpiryFact {
                at: at(secs),
                shown: format!("T{secs}"),
                cause: "ttl 7d after the up of T0".to_owned(),
            }),
            definition: Ok(()),
            merge_request: answer,
        }
    }

    fn state(state: MergeRequestState) -> Option<GitHostAnswer> {
        Some(GitHostAnswer::State(state))
    }

    const LOOSE: ShareLimit = ShareLimit {
        max_percent: 100,
        force: false,
    };

    #[test]
    fn each_biome_gets_its_verdict_and_why() {
        use Action::{Keep, Remove};
        use MergeRequestState::*;
        let past = Some(NOW - 3_600);
        let future = Some(NOW + 86_400);
        let unreadable_definition = Candidate {
            definition: Err("its repository /gone cannot be opened".to_owned()),
            ..candidate("gone", past, None)
        };
        // (candidate, action, words of the reason)
        let table: Vec<(Candidate, Action, &str)> = vec![
            (
                candidate("alice", past, None),
                Remove,
                "expired T1999996400 (ttl 7d after the up of T0)",
            ),
            (
                candidate("bob", Some(NOW), None),
                Remove,
                "expired T2000000000",
            ),
            (
                candidate("carol", future, None),
                Keep,
                "expires T2000086400 (in 1d; ttl 7d",
            ),
            (candidate("dave", None, None), Keep, "no expiry is recorded"),
            (
                candidate("mr-12", future, state(Merged)),
                Remove,
                "merge request !12 is merged",
            ),
            (
                candidate("mr-12", future, state(Closed)),
                Remove,
                "merge request !12 is closed",
            ),
            (
                candidate("mr-12", past, state(Opened)),
                Keep,
                "merge request !12 is open, though it expired T1999996400",
            ),
            (
                candidate("mr-12", future, state(Opened)),
                Keep,
                "merge request !12 is open",
            ),
            (
                candidate("mr-12", past, state(Locked)),
                Keep,
                "merge request !12 is being merged",
            ),
            (
                candidate("mr-12", past, Some(GitHostAnswer::NotFound)),
                Keep,
                "GitLab knows no merge request !12",
            ),
            (
                candidate(
                    "mr-12",
                    past,
                    Some(GitHostAnswer::NotAsked("no [gitlab]".into())),
                ),
                Keep,
                "not asked about (no [gitlab])",
            ),
            (
                candidate(
                    "mr-12",
                    past,
                    Some(GitHostAnswer::Unreachable("timed out".into())),
                ),
                Keep,
                "unknown: timed out",
            ),
            (
                candidate("pr-7", past, None),
                Keep,
                "pull request #7: no GitHub API",
            ),
            (candidate("mr-012", past, None), Remove, "expired"),
            (
                unreadable_definition,
                Keep,
                "cannot be read (its repository /gone cannot be opened); kept",
            ),
        ];
        for (candidate, action, words) in table {
            let plan = plan(std::slice::from_ref(&candidate), LOOSE, at(NOW));
            let verdict = &plan.verdicts[0];
            assert_eq!(verdict.action, action, "{candidate:?}: {}", verdict.reason);
            assert!(
                verdict.reason.contains(words),
                "{candidate:?}: {}",
                verdict.reason
            );
        }
    }

    #[test]
    fn a_git_host_that_cannot_be_asked_stops_the_whole_run() {
        let past = Some(NOW - 1);
        for answer in [
            GitHostAnswer::Unreachable("cannot connect: connection refused".to_owned()),
            GitHostAnswer::Unreadable("GitLab refused the question with 401".to_owned()),
        ] {
            let candidates = [
                candidate("alice", past, None),
                candidate("mr-3", past, Some(answer.clone())),
                candidate("mr-4", past, state(MergeRequestState::Merged)),
            ];
            for force in [false, true] {
                let plan = plan(
                    &candidates,
                    ShareLimit {
                        max_percent: 100,
                        force,
                    },
                    at(NOW),
                );
                let Some(Stop::GitHost { biome, why }) = &plan.stop else {
                    panic!("{answer:?}: {plan:?}");
                };
                assert_eq!(biome.as_str(), "mr-3");
                assert!(
                    matches!(&answer, GitHostAnswer::Unreachable(w) | GitHostAnswer::Unreadable(w) if w == why)
                );
                assert!(plan
                    .stop
                    .as_ref()
                    .unwrap()
                    .to_string()
                    .starts_with("nothing was removed"));
            }
        }
    }

    #[test]
    fn the_share_guard_stops_a_run_over_the_limit_unless_forced() {
        let past = Some(NOW - 1);
        let future = Some(NOW + 60);
        let four = |expired: usize| -> Vec<Candidate> {
            (0..4)
                .map(|i| {
                    candidate(
                        &format!("b{i}"),
                        if i < expired { past } else { future },
                        None,
                    )
                })
                .collect()
        };
        // (expired of 4, max_percent, force, stops)
        for (expired, max_percent, force, stops) in [
            (3, 50, false, true),
            (3, 50, true, false),
            (2, 50, false, false),
            (1, 25, false, false),
            (2, 25, false, true),
            (4, 100, false, false),
            (1, 0, false, false),
            (2, 0, false, true),
            (0, 0, false, false),
        ] {
            let plan = plan(&four(expired), ShareLimit { max_percent, force }, at(NOW));
            assert_eq!(plan.removals().count(), expired);
            match (&plan.stop, stops) {
                (None, false) => {}
                (
                    Some(Stop::Share {
                        removing,
                        of,
                        max_percent: limit,
                    }),
                    true,
                ) => {
                    assert_eq!((*removing, *of, *limit), (expired, 4, max_percent));
                    let said = plan.stop.as_ref().unwrap().to_string();
                    assert!(
                        said.contains(&format!("remove {expired} of the project's 4 biomes")),
                        "{said}"
                    );
                    assert!(said.contains("--force"), "{said}");
                }
                (stop, _) => panic!("{expired} of 4 at {max_percent}% (force {force}): {stop:?}"),
            }
        }
        assert_eq!(
            plan(&[], LOOSE, at(NOW)),
            Plan {
                verdicts: vec![],
                stop: None
            }
        );
    }

    #[test]
    fn gitlabs_answers_are_read_strictly() {
        use MergeRequestState::*;
        let status = |code| Answer::Status(code);
        // (answer, body, expected)
        let table: Vec<(Answer, &str, GitHostAnswer)> = vec![
            (
                status(200),
                r#"{"iid": 12, "state": "opened"}"#,
                GitHostAnswer::State(Opened),
            ),
            (
                status(200),
                r#"{"state": "closed"}"#,
                GitHostAnswer::State(Closed),
            ),
            (
                status(200),
                r#"{"state": "merged"}"#,
                GitHostAnswer::State(Merged),
            ),
            (
                status(200),
                r#"{"state": "locked"}"#,
                GitHostAnswer::State(Locked),
            ),
            (
                status(404),
                r#"{"message": "404 Not found"}"#,
                GitHostAnswer::NotFound,
            ),
            (
                status(502),
                "",
                GitHostAnswer::Unreachable("GitLab answered 502".into()),
            ),
            (
                Answer::NoAnswer("timed out".into()),
                "",
                GitHostAnswer::Unreachable("timed out".into()),
            ),
            (
                status(401),
                r#"{"message": "401 Unauthorized"}"#,
                GitHostAnswer::Unreadable(
                    r#"GitLab refused the question with 401: {"message": "401 Unauthorized"}"#
                        .into(),
                ),
            ),
            (
                status(200),
                "<html>",
                GitHostAnswer::Unreadable(
                    "GitLab's answer is not a merge request with a `state`".into(),
                ),
            ),
            (
                status(200),
                r#"{"state": 3}"#,
                GitHostAnswer::Unreadable(
                    "GitLab's answer is not a merge request with a `state`".into(),
                ),
            ),
            (
                status(200),
                r#"{"state": "reopened"}"#,
                GitHostAnswer::Unreadable(
                    "GitLab said the merge request is `reopened`, a state sandpit does not know"
                        .into(),
                ),
            ),
        ];
        for (answer, body, expected) in table {
            assert_eq!(
                merge_request_answer(&answer, body),
                expected,
                "{answer:?} {body}"
            );
        }
    }

    #[test]
    fn names_say_which_request_a_biome_stands_for() {
        for (biome, expected) in [
            ("mr-12", Request::MergeRequest(12)),
            ("pr-7", Request::PullRequest(7)),
            ("pr-07", Request::None),
            ("pr-", Request::None),
            ("mr-x", Request::None),
            ("alice", Request::None),
        ] {
            assert_eq!(request_of(biome), expected, "{biome}");
        }
    }
}
