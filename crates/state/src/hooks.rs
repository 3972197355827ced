//! Webhook deliveries: every delivery a forge made (or a CI job's request) that passed its
//! secret check, what it asked for and what was started — written once, never changed. A
//! delivery key (GitLab's event UUID, GitHub's delivery id, an `Idempotency-Key`) is recorded
//! at most once per project, so a redelivery finds the first answer instead of starting again.

use crate::sql::{args, Db, DbError, Row};
use serde::Serialize;

use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// A delivery to record with [`StateStore::record_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub project: String,
    /// `gitlab`, `github` or `gitlab_ci`.
    pub forge: String,
    /// The event as the forge named it (`Push Hook`, `pull_request`, …).
    pub event: String,
    pub delivery_key: Option<String>,
    /// The HTTP status the delivery was answered with.
    pub status: u16,
    /// `pipeline`, `biome_up`, `biome_down`, `promotion` or `ignored`.
    pub action: String,
    /// What was started, or why nothing was.
    pub summary: String,
    pub pipeline_id: Option<i64>,
    pub biome: Option<String>,
    pub sha: Option<String>,
    pub merge_request: Option<u64>,
    /// The merge request event's own time (RFC 3339 as the forge sent it, normalised to UTC).
    pub mr_updated_at: Option<String>,
}

/// A recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub project: String,
    pub forge: String,
    pub event: String,
    pub delivery_key: Option<String>,
    pub received_at: String,
    pub status: u16,
    pub action: String,
    pub summary: String,
    pub pipeline_id: Option<i64>,
    pub biome: Option<String>,
    pub sha: Option<String>,
    pub merge_request: Option<u64>,
    pub mr_updated_at: Option<String>,
}

const SELECT: &str = "SELECT id, project, forge, event, delivery_key, received_at, status, action,
    summary, pipeline_id, biome, sha, merge_request, mr_updated_at FROM hook_deliveries";

fn delivery(row: &Row) -> Result<Delivery, DbError> {
    Ok(Delivery {
        id: row.get(0)?,
        project: row.get(1)?,
        forge: row.get(2)?,
        event: row.get(3)?,
        delivery_key: row.get(4)?,
        received_at: row.get(5)?,
        status: row.get(6)?,
        action: row.get(7)?,
        summary: row.get(8)?,
        pipeline_id: row.get(9)?,
        biome: row.get(10)?,
        sha: row.get(11)?,
        merge_request: row.get(12)?,
        mr_updated_at: row.get(13)?,
    })
}

fn by_key(conn: &Db, project: &str, key: &str) -> Result<Option<Delivery>, StateError> {
    conn.query_opt(
        &format!("{SELECT} WHERE project = ?1 AND delivery_key = ?2"),
        args![project, key],
        delivery,
    )
    .ctx("reading a hook delivery")
}

/// Whether a recorded delivery answered `Ok` (new) or was there already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New(Delivery),
    /// The same delivery key was recorded before: this is its first answer.
    Earlier(Delivery),
}

impl StateStore {
    /// Records a delivery; when its key was recorded before (by any process), returns that one.
    pub fn record_delivery(&mut self, new: &NewDelivery) -> Result<Recorded, StateError> {
        let tx = self
            .conn
            .write()
            .ctx("starting to record a hook delivery")?;
        if let Some(key) = &new.delivery_key {
            if let Some(earlier) = by_key(&tx, &new.project, key)? {
                return Ok(Recorded::Earlier(earlier));
            }
        }
        let id = tx
            .insert_returning_id(
            "INSERT INTO hook_deliveries (project, forge, event, delivery_key, received_at, status,
                 action, summary, pipeline_id, biome, sha, merge_request, mr_updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            args![
                new.project,
                new.forge,
                new.event,
                new.delivery_key,
                now(),
                new.status,
                new.action,
                new.summary,
                new.pipeline_id,
                new.biome,
                new.sha,
                new.merge_request,
                new.mr_updated_at,
            ],
        )
        .ctx("recording a hook delivery")?;
        let recorded = tx
            .query_row(&format!("{SELECT} WHERE id = ?1"), args![id], delivery)
            .ctx("reading a hook delivery")?;
        tx.commit().ctx("recording a hook delivery")?;
        Ok(Recorded::New(recorded))
    }

    /// The delivery recorded under `key` for `project`, if any.
    pub fn delivery_by_key(
        &self,
        project: &str,
        key: &str,
    ) -> Result<Option<Delivery>, StateError> {
        by_key(&self.conn, project, key)
    }

    /// The newest `limit` deliveries, of one project or all, newest first.
    pub fn deliveries(
        &self,
        project: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StateError> {
        let context = "listing hook deliveries";
        self.conn
            .query_map(
                &format!("{SELECT} WHERE (CAST(?1 AS TEXT) IS NULL OR project = ?1) ORDER BY id DESC LIMIT ?2"),
                args![project, i64::try_from(limit).unwrap_or(i64::MAX)],
                delivery,
            )
            .ctx(context)
    }

    /// The newest delivery of merge request `merge_request` (of `forge`) that acted on its
    /// biome (brought it up or down), by the event's own time, then by arrival. A GitLab CI
    /// job's requests count as GitLab's.
    pub fn merge_request_watermark(
        &self,
        project: &str,
        forge: &str,
        merge_request: u64,
    ) -> Result<Option<Delivery>, StateError> {
        self.conn
            .query_opt(
                &format!(
                    "{SELECT} WHERE project = ?1 AND merge_request = ?3
                     AND (forge = ?2 OR (?2 = 'gitlab' AND forge = 'gitlab_ci'))
                     AND action IN ('biome_up', 'biome_down')
                     ORDER BY mr_updated_at DESC, id DESC LIMIT 1"
                ),
                args![project, forge, merge_request],
                delivery,
            )
            .ctx("reading a merge request's newest delivery")
    }
}
