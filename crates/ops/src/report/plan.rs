//! The reporter's decisions, pure: which commit status a pipeline's state is on GitLab, what an
//! answer means for a delivery (done, try again, give up), when to try again, and which waiting
//! reports go out now.

use std::collections::BTreeMap;
use std::time::Duration;

use sandpit_state::{PipelineState, Report, ReportKind};

/// A commit status's `state` on GitLab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
}

impl ForgeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeState::Pending => "pending",
            ForgeState::Running => "running",
            ForgeState::Success => "success",
            ForgeState::Failed => "failed",
            ForgeState::Canceled => "canceled",
        }
    }
}

/// How long a status's description may be: GitLab shows one short line beside the status, and
/// keeps the description in a string column of limited length.
pub const DESCRIPTION_LIMIT: usize = 140;

/// The commit status a pipeline in `state` sets, with its description (`message` is the
/// pipeline's: why it failed, what superseded it). `None` for a pipeline waiting for an
/// approval: its status stays `running`, because GitLab refuses a second `running` (400,
/// "Cannot transition status via :run from :running") and `pending` after `running` alike;
/// the approval's outcome then sets `success` or `failed`.
pub fn commit_state(state: PipelineState, message: Option<&str>) -> Option<(ForgeState, String)> {
    let (forge, description) = match state {
        PipelineState::Queued => (ForgeState::Pending, "queued".to_owned()),
        PipelineState::Running => (ForgeState::Running, "running".to_owned()),
        PipelineState::Succeeded => (ForgeState::Success, "succeeded".to_owned()),
        PipelineState::Failed => (
            ForgeState::Failed,
            message.map_or("failed".to_owned(), |m| format!("failed: {m}")),
        ),
        PipelineState::Superseded => (
            ForgeState::Canceled,
            message.map_or("superseded".to_owned(), str::to_owned),
        ),
        PipelineState::Pending => return None,
    };
    Some((forge, shortened(&description, DESCRIPTION_LIMIT)))
}

/// The first line of `text`, cut to `limit` characters (an ellipsis marks the cut).
pub fn shortened(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= limit {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The status's `name`: `sandpit` for a pipeline into the environments, `sandpit/<biome>` for
/// one that brings a biome up or down, so a merge request's biome and a push's pipeline at the
/// same commit do not overwrite each other.
pub fn status_name(biome: Option<&str>) -> String {
    match biome {
        Some(biome) => format!("sandpit/{biome}"),
        None => "sandpit".to_owned(),
    }
}

/// How failed deliveries are tried again: after `base`, doubling, at most `max` apart, and at
/// most `max_attempts` times in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 2 s, 4 s, 8 s … capped at 10 min, 12 attempts: about 40 minutes of a forge being down.
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// With every delay scaled to start at `base` (tests use milliseconds), the cap kept at
    /// 300 times the base so the schedule keeps its shape.
    pub fn with_base(base: Duration) -> RetryPolicy {
        RetryPolicy {
            base,
            max: base.saturating_mul(300),
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1 for the first); `None` once
    /// `max_attempts` attempts have failed.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exponent = attempt.saturating_sub(1).min(20);
        Some(self.base.saturating_mul(1u32 << exponent).min(self.max))
    }
}

/// What came of one attempt to send a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The forge answered with this HTTP status.
    Status(u16),
    /// No answer: the connection failed, or timed out.
    NoAnswer(String),
}

/// What to do with a report after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt: the forge was unreachable, overloaded or failing.
    TryAgain,
    /// The forge refused it: sending it again would be refused again.
    GiveUp,
}

/// 2xx is delivered; no answer, 5xx, 429 (rate limited) and 408 (timed out) are tried again;
/// any other 4xx (a wrong token, an unknown project or commit, a refused transition) is given up.
pub fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status(code) if (200..300).contains(code) => Verdict::Delivered,
        Answer::Status(429 | 408) | Answer::NoAnswer(_) => Verdict::TryAgain,
        Answer::Status(code) if *code >= 500 => Verdict::TryAgain,
        Answer::Status(_) => Verdict::GiveUp,
    }
}

/// What the worker does with a waiting report now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send(i64),
    /// A newer note for the same merge request replaces it.
    Supersede(i64),
}

/// The steps for the waiting reports `waiting` (oldest first) at `now_ms`, and when the next
/// one is due if none is now. Reports with the same key go out one at a time, in order: only
/// the oldest of a key is sent, once its time has come (a status waits for the one before it,
/// so GitLab sees pending, running, success in that order). Of a merge request's notes only
/// the newest is sent — each carries the whole text — and the older are superseded.
pub fn steps(waiting: &[Report], now_ms: i64) -> (Vec<Step>, Option<i64>) {
    let mut by_key: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
    for report in waiting {
        by_key
            .entry(report.ordering_key.as_str())
            .or_default()
            .push(report);
    }
    let mut steps = Vec::new();
    let mut next_due: Option<i64> = None;
    for reports in by_key.values() {
        let head = match reports[0].kind {
            ReportKind::CommitStatus => reports[0],
            ReportKind::MergeRequestNote => {
                let newest = reports[reports.len() - 1];
                steps.extend(
                    reports[..reports.len() - 1]
                        .iter()
                        .map(|r| Step::Supersede(r.id)),
                );
                newest
            }
        };
        if head.next_attempt_at <= now_ms {
            steps.push(Step::Send(head.id));
        } else {
            next_due = Some(next_due.map_or(head.next_attempt_at, |d| d.min(head.next_attempt_at)));
        }
    }
    // Oldest first across keys too, so a burst is sent in the order it happened.
    steps.sort_by_key(|step| match step {
        Step::Supersede(id) => (0, *id),
        Step::Send(id) => (1, *id),
    });
    (steps, next_due)
}

/// `project` as one segment of an API path: GitLab takes a numeric id, or the path with every
/// `/` (and anything else outside the unreserved characters) percent-encoded.
pub fn encoded_project(project: &str) -> String {
    let mut encoded = String::with_capacity(project.len() + 8);
    for byte in project.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandpit_state::ReportState;

    #[test]
    fn pipeline_states_map_to_gitlab_states() {
        // The pipeline's state and message, and the state and description GitLab gets.
        type Case<'a> = (PipelineState, Option<&'a str>, Option<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            (PipelineState::Queued, None, Some(("pending", "queued"))),
            (PipelineState::Running, None, Some(("running", "running"))),
            (
                PipelineState::Succeeded,
                None,
                Some(("success", "succeeded")),
            ),
            (
                PipelineState::Failed,
                Some("stage `build` failed: exit 2\nmore"),
                Some(("failed", "failed: stage `build` failed: exit 2")),
            ),
            (PipelineState::Failed, None, Some(("failed", "failed"))),
            (
                PipelineState::Superseded,
                Some("superseded by pipeline #4, a newer one of the same branch"),
                Some((
                    "canceled",
                    "superseded by pipeline #4, a newer one of the same branch",
                )),
            ),
            (PipelineState::Pending, Some("waits for approval"), None),
        ];
        for (state, message, expect) in cases {
            let got = commit_state(*state, *message);
            let got = got.as_ref().map(|(s, d)| (s.as_str(), d.as_str()));
            assert_eq!(got, *expect, "{state}");
        }
    }

    #[test]
    fn descriptions_are_one_line_and_short() {
        assert_eq!(shortened("a\nb", 10), "a");
        assert_eq!(shortened("abcdef", 6), "abcdef");
        assert_eq!(shortened("abcdefg", 6), "abcde…");
        let long = "x".repeat(500);
        let (_, description) = commit_state(PipelineState::Failed, Some(&long)).unwrap();
        assert_eq!(description.chars().count(), DESCRIPTION_LIMIT);
    }

    #[test]
    fn status_names_tell_biomes_apart() {
        assert_eq!(status_name(None), "sandpit");
        assert_eq!(status_name(Some("mr-3")), "sandpit/mr-3");
    }

    #[test]
    fn the_backoff_doubles_caps_and_gives_up() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            max_attempts: 6,
        };
        let delays: Vec<Option<u128>> = (1..=7)
            .map(|n| policy.delay_after(n).map(|d| d.as_millis()))
            .collect();
        assert_eq!(
            delays,
            [
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1000),
                None,
                None
            ]
        );
        let default = RetryPolicy::default();
        assert_eq!(default.delay_after(1), Some(Duration::from_secs(2)));
        assert_eq!(default.delay_after(11), Some(Duration::from_secs(600)));
        assert_eq!(default.delay_after(12), None);
        assert_eq!(
            RetryPolicy::with_base(Duration::from_millis(5)).delay_after(2),
            Some(Duration::from_millis(10))
        );
    }

    #[test]
    fn answers_decide_between_done_again_and_give_up() {
        let cases: &[(Answer, Verdict)] = &[
            (Answer::Status(200), Verdict::Delivered),
            (Answer::Status(201), Verdict::Delivered),
            (Answer::Status(500), Verdict::TryAgain),
            (Answer::Status(503), Verdict::TryAgain),
            (Answer::Status(429), Verdict::TryAgain),
            (Answer::Status(408), Verdict::TryAgain),
            (
                Answer::NoAnswer("connection refused".into()),
                Verdict::TryAgain,
            ),
            (Answer::Status(400), Verdict::GiveUp),
            (Answer::Status(401), Verdict::GiveUp),
            (Answer::Status(404), Verdict::GiveUp),
            (Answer::Status(302), Verdict::GiveUp),
        ];
        for (answer, expect) in cases {
            assert_eq!(verdict(answer), *expect, "{answer:?}");
        }
    }

    fn waiting(id: i64, kind: ReportKind, key: &str, next_attempt_at: i64) -> Report {
        Report {
            id,
            pipeline_id: Some(1),
            kind,
            ordering_key: key.to_owned(),
            api_url: "http://127.0.0.1:9/api/v4".to_owned(),
            forge_project: "g/a".to_owned(),
            project: "demo".to_owned(),
            token_env: "dev".to_owned(),
            token_secret: "GITLAB_TOKEN".to_owned(),
            sha: None,
            merge_request: None,
            body: String::new(),
            state: ReportState::Waiting,
            attempts: 0,
            next_attempt_at,
            last_error: None,
            created_at: String::new(),
            finished_at: None,
        }
    }

    #[test]
    fn one_report_per_key_goes_out_and_notes_keep_only_the_newest() {
        use ReportKind::{CommitStatus as S, MergeRequestNote as N};
        let reports = [
            waiting(1, S, "status a", 0),
            waiting(2, S, "status a", 0),
            waiting(3, S, "status b", 500),
            waiting(4, N, "note 3", 900),
            waiting(5, N, "note 3", 0),
            waiting(6, S, "status c", 100),
            waiting(7, S, "status c", 0),
        ];
        let (steps, next_due) = super::steps(&reports, 100);
        assert_eq!(
            steps,
            [
                Step::Supersede(4),
                Step::Send(1),
                Step::Send(5),
                Step::Send(6)
            ],
            "2 waits for 1, 3 is not due, 7 waits for 6"
        );
        assert_eq!(next_due, Some(500));
        let (steps, next_due) = super::steps(&reports[2..3], 100);
        assert_eq!((steps, next_due), (vec![], Some(500)));
        assert_eq!(super::steps(&[], 0), (vec![], None));
    }

    #[test]
    fn projects_are_one_path_segment() {
        assert_eq!(encoded_project("42"), "42");
        assert_eq!(encoded_project("group/sub/app"), "group%2Fsub%2Fapp");
        assert_eq!(encoded_project("a b.c_d~e"), "a%20b.c_d~e");
        assert_eq!(encoded_project("ü"), "%C3%BC");
    }
}
