//! The outbox of reports to a forge: commit statuses and merge request notes waiting to be sent,
//! each with its delivery's state (attempts, when to try next, the last error), and the one
//! note kept per merge request. Rows are enqueued with the pipeline transition they report and
//! changed by the one worker that delivers them; what to send when is decided by the caller.

use crate::sql::{args, DbError, Row, Value};
use serde::Serialize;

use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// What a report sets on the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A commit's status (`POST …/statuses/<sha>`).
    CommitStatus,
    /// The merge request's one note, created once and then edited.
    MergeRequestNote,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::CommitStatus => "commit_status",
            ReportKind::MergeRequestNote => "merge_request_note",
        }
    }

    fn parse(stored: &str) -> Option<ReportKind> {
        [ReportKind::CommitStatus, ReportKind::MergeRequestNote]
            .into_iter()
            .find(|k| k.as_str() == stored)
    }
}

/// Where a report's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Waiting,
    Delivered,
    /// Given up: refused by the forge, or out of attempts.
    Failed,
    /// A newer report replaced it before it was sent (a note's newer text).
    Superseded,
}

impl ReportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Waiting => "waiting",
            ReportState::Delivered => "delivered",
            ReportState::Failed => "failed",
            ReportState::Superseded => "superseded",
        }
    }

    fn parse(stored: &str) -> Option<ReportState> {
        [
            ReportState::Waiting,
            ReportState::Delivered,
            ReportState::Failed,
            ReportState::Superseded,
        ]
        .into_iter()
        .find(|s| s.as_str() == stored)
    }
}

/// A report to enqueue with [`StateStore::enqueue_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub pipeline_id: Option<i64>,
    pub kind: ReportKind,
    /// Reports with the same key are delivered one after another, in the order enqueued.
    pub ordering_key: String,
    pub api_url: String,
    pub forge_project: String,
    /// The sandpit project, environment and configuration secret holding the API token.
    pub project: String,
    pub token_env: String,
    pub token_secret: String,
    pub sha: Option<String>,
    pub merge_request: Option<u64>,
    /// A status's JSON body, or a note's Markdown.
    pub body: String,
    /// Milliseconds since the Unix epoch: when it may first be sent.
    pub not_before: i64,
}

/// An enqueued report and its delivery's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub id: i64,
    pub pipeline_id: Option<i64>,
    pub kind: ReportKind,
    pub ordering_key: String,
    pub api_url: String,
    pub forge_project: String,
    pub project: String,
    pub token_env: String,
    pub token_secret: String,
    pub sha: Option<String>,
    pub merge_request: Option<u64>,
    pub body: String,
    pub state: ReportState,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// How one pipeline's reports stand, for `sandpit pipeline ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportCounts {
    pub waiting: u64,
    pub delivered: u64,
    pub failed: u64,
    pub superseded: u64,
    /// The newest error of a report that is waiting to be retried or was given up.
    pub last_error: Option<String>,
}

const REPORT_COLUMNS: &str = "id, pipeline_id, kind, ordering_key, api_url, forge_project, \
     project, token_env, token_secret, sha, merge_request, body, state, attempts, \
     next_attempt_at, last_error, created_at, finished_at";

fn report(row: &Row) -> Result<Result<Report, StateError>, DbError> {
    let id: i64 = row.get(0)?;
    let kind: String = row.get(2)?;
    let state: String = row.get(12)?;
    let merge_request: Option<i64> = row.get(10)?;
    let attempts: i64 = row.get(13)?;
    let (Some(kind), Some(state)) = (ReportKind::parse(&kind), ReportState::parse(&state)) else {
        return Ok(Err(StateError::Corrupt {
            detail: format!("report #{id} has kind `{kind}` and state `{state}`"),
        }));
    };
    Ok(Ok(Report {
        id,
        pipeline_id: row.get(1)?,
        kind,
        ordering_key: row.get(3)?,
        api_url: row.get(4)?,
        forge_project: row.get(5)?,
        project: row.get(6)?,
        token_env: row.get(7)?,
        token_secret: row.get(8)?,
        sha: row.get(9)?,
        merge_request: merge_request.and_then(|n| u64::try_from(n).ok()),
        body: row.get(11)?,
        state,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: row.get(14)?,
        last_error: row.get(15)?,
        created_at: row.get(16)?,
        finished_at: row.get(17)?,
    }))
}

impl StateStore {
    /// Adds a report to the outbox, waiting; returns its id.
    pub fn enqueue_report(&mut self, new: &NewReport) -> Result<i64, StateError> {
        let merge_request = new
            .merge_request
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.conn
            .insert_returning_id(
                "INSERT INTO reports (pipeline_id, kind, ordering_key, api_url, forge_project,
                     project, token_env, token_secret, sha, merge_request, body, state, attempts,
                     next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'waiting', 0, ?12, ?13)
                 RETURNING id",
                args![
                    new.pipeline_id,
                    new.kind.as_str(),
                    new.ordering_key,
                    new.api_url,
                    new.forge_project,
                    new.project,
                    new.token_env,
                    new.token_secret,
                    new.sha,
                    merge_request,
                    new.body,
                    new.not_before,
                    now(),
                ],
            )
            .ctx("enqueueing a report")
    }

    /// Every waiting report, oldest first.
    pub fn waiting_reports(&self) -> Result<Vec<Report>, StateError> {
        self.select_reports("WHERE state = 'waiting' ORDER BY id", args![])
    }

    /// Every report of pipeline `id`, oldest first.
    pub fn reports_of_pipeline(&self, id: i64) -> Result<Vec<Report>, StateError> {
        self.select_reports("WHERE pipeline_id = ?1 ORDER BY id", args![id])
    }

    /// Report `id`.
    pub fn report(&self, id: i64) -> Result<Option<Report>, StateError> {
        Ok(self
            .select_reports("WHERE id = ?1", args![id])?
            .into_iter()
            .next())
    }

    fn select_reports(&self, filter: &str, values: &[Value]) -> Result<Vec<Report>, StateError> {
        let rows = self
            .conn
            .query_map(
                &format!("SELECT {REPORT_COLUMNS} FROM reports {filter}"),
                values,
                report,
            )
            .ctx("listing reports")?;
        rows.into_iter().collect()
    }

    /// How pipeline `id`'s reports stand.
    pub fn report_counts(&self, id: i64) -> Result<ReportCounts, StateError> {
        let mut counts = ReportCounts::default();
        for report in self.reports_of_pipeline(id)? {
            if matches!(report.state, ReportState::Waiting | ReportState::Failed)
                && report.last_error.is_some()
            {
                counts.last_error = report.last_error.clone();
            }
            match report.state {
                ReportState::Waiting => counts.waiting += 1,
                ReportState::Delivered => counts.delivered += 1,
                ReportState::Failed => counts.failed += 1,
                ReportState::Superseded => counts.superseded += 1,
            }
        }
        Ok(counts)
    }

    /// Records that waiting report `id` was delivered, after one more attempt.
    pub fn report_delivered(&mut self, id: i64) -> Result<(), StateError> {
        self.finish_report(id, ReportState::Delivered, None)
    }

    /// Records that waiting report `id` is given up on, with why.
    pub fn report_failed(&mut self, id: i64, error: &str) -> Result<(), StateError> {
        self.finish_report(id, ReportState::Failed, Some(error))
    }

    /// Records that waiting report `id` will not be sent: a newer one replaces it.
    pub fn supersede_report(&mut self, id: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE reports SET state = 'superseded', finished_at = ?2
                 WHERE id = ?1 AND state = 'waiting'",
                args![id, now()],
            )
            .ctx("superseding a report")?;
        Ok(())
    }

    fn finish_report(
        &mut self,
        id: i64,
        state: ReportState,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE reports SET state = ?2, attempts = attempts + 1,
                     last_error = coalesce(?3, last_error), finished_at = ?4
                 WHERE id = ?1 AND state = 'waiting'",
                args![id, state.as_str(), error, now()],
            )
            .ctx("recording a report's delivery")?;
        Ok(())
    }

    /// Records a failed attempt at report `id`, to be tried again at `next_attempt_at`
    /// (milliseconds since the Unix epoch).
    pub fn report_retry_at(
        &mut self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE reports SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                 WHERE id = ?1 AND state = 'waiting'",
                args![id, error, next_attempt_at],
            )
            .ctx("recording a report's failed attempt")?;
        Ok(())
    }

    /// The id of the note kept on merge request `iid` of `forge_project` at `api_url`, if one
    /// was created.
    pub fn merge_request_note(
        &self,
        api_url: &str,
        forge_project: &str,
        iid: u64,
    ) -> Result<Option<u64>, StateError> {
        let found: Option<i64> = self
            .conn
            .query_opt(
                "SELECT note_id FROM merge_request_notes
                 WHERE api_url = ?1 AND forge_project = ?2 AND merge_request = ?3",
                args![
                    api_url,
                    forge_project,
                    i64::try_from(iid).unwrap_or(i64::MAX)
                ],
                |row| row.get(0),
            )
            .ctx("looking up a merge request's note")?;
        Ok(found.and_then(|id| u64::try_from(id).ok()))
    }

    /// Forgets the note kept on merge request `iid` (it was deleted on the forge), so the next
    /// note is created anew.
    pub fn forget_merge_request_note(
        &mut self,
        api_url: &str,
        forge_project: &str,
        iid: u64,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM merge_request_notes
                 WHERE api_url = ?1 AND forge_project = ?2 AND merge_request = ?3",
                args![
                    api_url,
                    forge_project,
                    i64::try_from(iid).unwrap_or(i64::MAX)
                ],
            )
            .ctx("forgetting a merge request's note")?;
        Ok(())
    }

    /// Remembers `note_id` as the note kept on merge request `iid`. A note already remembered
    /// is kept (the first one created stays the one edited).
    pub fn remember_merge_request_note(
        &mut self,
        api_url: &str,
        forge_project: &str,
        iid: u64,
        note_id: u64,
    ) -> Result<(), StateError> {
        let tx = self
            .conn
            .write()
            .ctx("remembering a merge request's note")?;
        tx.execute(
            "INSERT INTO merge_request_notes (api_url, forge_project, merge_request, note_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (api_url, forge_project, merge_request) DO NOTHING",
            args![
                api_url,
                forge_project,
                i64::try_from(iid).unwrap_or(i64::MAX),
                i64::try_from(note_id).unwrap_or(i64::MAX),
                now()
            ],
        )
        .ctx("remembering a merge request's note")?;
        tx.commit().ctx("remembering a merge request's note")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_report(kind: ReportKind, key: &str) -> NewReport {
        NewReport {
            pipeline_id: None,
            kind,
            ordering_key: key.to_owned(),
            api_url: "http://127.0.0.1:9/api/v4".to_owned(),
            forge_project: "group/app".to_owned(),
            project: "demo".to_owned(),
            token_env: "dev".to_owned(),
            token_secret: "GITLAB_TOKEN".to_owned(),
            sha: Some("ab".repeat(20)),
            merge_request: Some(3),
            body: r#"{"state":"pending"}"#.to_owned(),
            not_before: 1000,
        }
    }

    #[test]
    fn a_report_waits_is_retried_and_ends_delivered_failed_or_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let first = store
            .enqueue_report(&new_report(ReportKind::CommitStatus, "a"))
            .unwrap();
        let second = store
            .enqueue_report(&new_report(ReportKind::MergeRequestNote, "b"))
            .unwrap();
        let third = store
            .enqueue_report(&new_report(ReportKind::CommitStatus, "c"))
            .unwrap();
        let waiting = store.waiting_reports().unwrap();
        assert_eq!(
            waiting.iter().map(|r| r.id).collect::<Vec<_>>(),
            [first, second, third]
        );
        assert_eq!(waiting[1].kind, ReportKind::MergeRequestNote);
        assert_eq!(waiting[1].merge_request, Some(3));
        assert_eq!((waiting[0].attempts, waiting[0].next_attempt_at), (0, 1000));

        store
            .report_retry_at(first, "GitLab answered 500", 5000)
            .unwrap();
        let retried = store.report(first).unwrap().unwrap();
        assert_eq!(retried.state, ReportState::Waiting);
        assert_eq!(retried.attempts, 1);
        assert_eq!(retried.next_attempt_at, 5000);
        assert_eq!(retried.last_error.as_deref(), Some("GitLab answered 500"));

        store.report_delivered(first).unwrap();
        store
            .report_failed(second, "GitLab refused it with 404")
            .unwrap();
        store.supersede_report(third).unwrap();
        // A finished report stays as it ended.
        store.report_retry_at(first, "late", 9000).unwrap();
        let delivered = store.report(first).unwrap().unwrap();
        assert_eq!(
            (delivered.state, delivered.attempts),
            (ReportState::Delivered, 2)
        );
        assert_eq!(delivered.last_error.as_deref(), Some("GitLab answered 500"));
        assert!(delivered.finished_at.is_some());
        let failed = store.report(second).unwrap().unwrap();
        assert_eq!(failed.state, ReportState::Failed);
        assert_eq!(
            store.report(third).unwrap().unwrap().state,
            ReportState::Superseded
        );
        assert!(store.waiting_reports().unwrap().is_empty());
    }

    #[test]
    fn the_first_note_remembered_for_a_merge_request_stays_the_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let api = "http://127.0.0.1:9/api/v4";
        assert_eq!(store.merge_request_note(api, "g/a", 3).unwrap(), None);
        store
            .remember_merge_request_note(api, "g/a", 3, 9001)
            .unwrap();
        store
            .remember_merge_request_note(api, "g/a", 3, 9002)
            .unwrap();
        assert_eq!(store.merge_request_note(api, "g/a", 3).unwrap(), Some(9001));
        assert_eq!(store.merge_request_note(api, "g/a", 4).unwrap(), None);
        assert_eq!(store.merge_request_note(api, "other", 3).unwrap(), None);
        store.forget_merge_request_note(api, "g/a", 3).unwrap();
        assert_eq!(store.merge_request_note(api, "g/a", 3).unwrap(), None);
    }
}
