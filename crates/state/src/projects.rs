//! The projects registry: which projects a server builds from git (name, URL, branch), who
//! added them and when, each fetch of their branch's head, and their removal — a row per
//! registration and events on it, append-only like the deployment records.

use crate::sql::{args, Db, DbError, Row};
use serde::Serialize;

use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// A project to register with [`StateStore::add_project`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    /// The URL the project's mirror fetches from, as given (credentials included: the store
    /// is owner-only; whoever shows it redacts it).
    pub git_url: String,
    pub branch: String,
    pub added_by: String,
    /// The secret its webhooks must carry (GitLab) or sign with (GitHub).
    pub webhook_secret: String,
    /// Whether merge requests from forks may run (their code on the team's machines).
    pub allow_forks: bool,
}

/// A registration and what its events say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRecord {
    /// The registration's id (a name registered again after a removal gets a new one).
    pub id: i64,
    pub name: String,
    pub git_url: String,
    pub branch: String,
    /// RFC 3339 UTC with milliseconds, like every time below.
    pub added_at: String,
    pub added_by: String,
    /// The branch head at the newest recorded fetch.
    pub head: Option<String>,
    pub fetched_at: Option<String>,
    pub removed_at: Option<String>,
    pub removed_by: Option<String>,
    /// `None` for a project registered before webhooks existed.
    #[serde(skip)]
    pub webhook_secret: Option<String>,
    pub allow_forks: bool,
}

/// The columns [`record`] reads, in order: the registration and its newest fetch and removal.
const RECORD_SELECT: &str = "
SELECT p.id, p.name, p.git_url, p.branch, p.added_at, p.added_by,
       f.sha, f.at, r.at, r.actor, w.secret, coalesce(w.allow_forks, 0)
FROM projects p
LEFT JOIN project_webhooks w ON w.project_id = p.id
LEFT JOIN project_events f ON f.id = (
    SELECT max(id) FROM project_events WHERE project_id = p.id AND event = 'fetched')
LEFT JOIN project_events r ON r.id = (
    SELECT max(id) FROM project_events WHERE project_id = p.id AND event = 'removed')";

fn record(row: &Row) -> Result<ProjectRecord, DbError> {
    Ok(ProjectRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        git_url: row.get(2)?,
        branch: row.get(3)?,
        added_at: row.get(4)?,
        added_by: row.get(5)?,
        head: row.get(6)?,
        fetched_at: row.get(7)?,
        removed_at: row.get(8)?,
        removed_by: row.get(9)?,
        webhook_secret: row.get(10)?,
        allow_forks: row.get::<i64>(11)? != 0,
    })
}

/// The registration of `name` that has not been removed, if any.
fn current(conn: &Db, name: &str) -> Result<Option<ProjectRecord>, StateError> {
    conn.query_opt(
        &format!("{RECORD_SELECT} WHERE p.name = ?1 AND r.id IS NULL ORDER BY p.id DESC LIMIT 1"),
        args![name],
        record,
    )
    .ctx(&format!("reading project `{name}`"))
}

fn existing(conn: &Db, name: &str) -> Result<ProjectRecord, StateError> {
    current(conn, name)?.ok_or_else(|| StateError::ProjectNotFound {
        name: name.to_owned(),
    })
}

fn insert_event(
    conn: &Db,
    project_id: i64,
    event: &str,
    sha: Option<&str>,
    actor: Option<&str>,
) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO project_events (project_id, event, sha, at, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![project_id, event, sha, now(), actor],
    )
    .ctx(&format!("recording `{event}` for a project"))?;
    Ok(())
}

impl StateStore {
    /// Registers a project; refused with [`StateError::ProjectExists`] while a registration of
    /// the same name has not been removed.
    pub fn add_project(&mut self, new: &NewProject) -> Result<ProjectRecord, StateError> {
        for (field, value) in [
            ("name", &new.name),
            ("git_url", &new.git_url),
            ("branch", &new.branch),
            ("added_by", &new.added_by),
        ] {
            if value.trim().is_empty() {
                return Err(StateError::Invalid {
                    detail: format!("a project's {field} is empty"),
                });
            }
        }
        let tx = self.conn.write().ctx("starting to register a project")?;
        if let Some(existing) = current(&tx, &new.name)? {
            return Err(StateError::ProjectExists {
                name: existing.name,
                added_by: existing.added_by,
                added_at: existing.added_at,
            });
        }
        let added_at = now();
        let id = tx
            .insert_returning_id(
                "INSERT INTO projects (name, git_url, branch, added_at, added_by)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                args![new.name, new.git_url, new.branch, added_at, new.added_by],
            )
            .ctx("registering a project")?;
        tx.execute(
            "INSERT INTO project_webhooks (project_id, secret, allow_forks) VALUES (?1, ?2, ?3)",
            args![id, new.webhook_secret, i64::from(new.allow_forks)],
        )
        .ctx("registering a project's webhook secret")?;
        insert_event(&tx, id, "added", None, Some(&new.added_by))?;
        let added = existing(&tx, &new.name)?;
        tx.commit().ctx("registering a project")?;
        Ok(added)
    }

    /// Every registered (not removed) project, by name.
    pub fn projects(&self) -> Result<Vec<ProjectRecord>, StateError> {
        let context = "listing projects";
        self.conn
            .query_map(
                &format!("{RECORD_SELECT} WHERE r.id IS NULL ORDER BY p.name, p.id"),
                args![],
                record,
            )
            .ctx(context)
    }

    /// The registered (not removed) project `name`.
    pub fn project(&self, name: &str) -> Result<Option<ProjectRecord>, StateError> {
        current(&self.conn, name)
    }

    /// Records the removal of project `name` by `actor` and returns the registration as it
    /// ends; [`StateError::ProjectNotFound`] when it is not registered. The name may be added
    /// again afterwards.
    pub fn remove_project(&mut self, name: &str, actor: &str) -> Result<ProjectRecord, StateError> {
        let tx = self.conn.write().ctx("starting to remove a project")?;
        let project = existing(&tx, name)?;
        insert_event(&tx, project.id, "removed", None, Some(actor))?;
        let removed = tx
            .query_row(
                &format!("{RECORD_SELECT} WHERE p.id = ?1"),
                args![project.id],
                record,
            )
            .ctx("reading a removed project")?;
        tx.commit().ctx("removing a project")?;
        Ok(removed)
    }

    /// Records that a fetch found project `name`'s branch at `sha` (now).
    pub fn record_fetch(&mut self, name: &str, sha: &str) -> Result<ProjectRecord, StateError> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StateError::Invalid {
                detail: format!("a fetched head must be a 40-hex commit id, not `{sha}`"),
            });
        }
        let tx = self.conn.write().ctx("starting to record a fetch")?;
        let project = existing(&tx, name)?;
        insert_event(&tx, project.id, "fetched", Some(sha), None)?;
        let fetched = existing(&tx, name)?;
        tx.commit().ctx("recording a fetch")?;
        Ok(fetched)
    }
}
