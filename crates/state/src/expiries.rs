//! When each biome expires: a row per change (`up` with the ttl of the commit it ran and where
//! its definition is read from, or `extend`), append-only; the newest row of a biome wins.

use crate::sql::{args, DbError, Row};
use serde::Serialize;

use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// Why a biome's expiry was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryReason {
    /// A successful `up`: its ttl from then.
    Up,
    /// `sandpit extend`.
    Extend,
}

impl ExpiryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryReason::Up => "up",
            ExpiryReason::Extend => "extend",
        }
    }
}

/// Where a biome's definition is read from without the checkout that brought it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BiomeSource {
    /// A checkout's project directory (where its `sandpit.toml` is), or a bare repository's
    /// git directory (a server's mirror).
    pub repository: String,
    pub bare: bool,
    /// The commit (or, for a dirty `up`, the snapshot tree) the biome ran.
    pub revision: String,
}

/// An expiry to record with [`StateStore::record_expiry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExpiry {
    pub project: String,
    pub env: String,
    pub biome: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    pub requested_by: String,
    pub cause: ExpiryCause,
}

/// What set the expiry, with what only an `up` knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryCause {
    Up {
        ttl_secs: u64,
        /// The deployment it followed; `None` when the biome already ran the commit.
        deployment: Option<i64>,
        source: BiomeSource,
    },
    Extend,
}

/// A biome's current expiry: its newest row, and where its definition is (its newest `up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    pub id: i64,
    pub project: String,
    pub env: String,
    pub biome: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    pub reason: ExpiryReason,
    pub requested_by: String,
    /// When the row was written (RFC 3339 UTC with milliseconds).
    pub at: String,
    /// The newest `up`'s ttl, time and source (an `extend` has none of its own).
    pub ttl_secs: Option<u64>,
    pub up_at: Option<String>,
    pub source: Option<BiomeSource>,
}

/// The newest row of each biome joined with the newest `up` row of the same biome.
const CURRENT_SELECT: &str = "
SELECT e.id, e.project, e.env, e.biome, e.expires_at, e.reason, e.requested_by, e.at,
       u.ttl_secs, u.at, u.repository, u.bare, u.revision
FROM biome_expiries e
LEFT JOIN biome_expiries u ON u.id = (
    SELECT max(id) FROM biome_expiries
    WHERE project = e.project AND env = e.env AND biome = e.biome AND reason = 'up')
WHERE e.id = (
    SELECT max(id) FROM biome_expiries
    WHERE project = e.project AND env = e.env AND biome = e.biome)";

fn expiry(row: &Row) -> Result<Expiry, DbError> {
    let reason: String = row.get(5)?;
    let repository: Option<String> = row.get(10)?;
    let bare: Option<i64> = row.get(11)?;
    let revision: Option<String> = row.get(12)?;
    Ok(Expiry {
        id: row.get(0)?,
        project: row.get(1)?,
        env: row.get(2)?,
        biome: row.get(3)?,
        expires_at: row.get(4)?,
        reason: if reason == "up" {
            ExpiryReason::Up
        } else {
            ExpiryReason::Extend
        },
        requested_by: row.get(6)?,
        at: row.get(7)?,
        ttl_secs: row
            .get::<Option<i64>>(8)?
            .and_then(|s| u64::try_from(s).ok()),
        up_at: row.get(9)?,
        source: match (repository, bare, revision) {
            (Some(repository), Some(bare), Some(revision)) => Some(BiomeSource {
                repository,
                bare: bare != 0,
                revision,
            }),
            _ => None,
        },
    })
}

impl StateStore {
    /// Appends an expiry row; the biome's current expiry is then this one.
    pub fn record_expiry(&mut self, new: &NewExpiry) -> Result<Expiry, StateError> {
        if humantime::parse_rfc3339(&new.expires_at).is_err() {
            return Err(StateError::Invalid {
                detail: format!("expiry `{}` is not an RFC 3339 time", new.expires_at),
            });
        }
        let context = format!("recording the expiry of {}/{}", new.env, new.biome);
        let tx = self.conn.write().ctx(&context)?;
        let (reason, ttl, deployment, source) = match &new.cause {
            ExpiryCause::Up {
                ttl_secs,
                deployment,
                source,
            } => (
                "up",
                Some(i64::try_from(*ttl_secs).unwrap_or(i64::MAX)),
                *deployment,
                Some(source),
            ),
            ExpiryCause::Extend => ("extend", None, None, None),
        };
        let id = tx
            .insert_returning_id(
            "INSERT INTO biome_expiries (project, env, biome, expires_at, reason, requested_by, at,
                 ttl_secs, deployment_id, repository, bare, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
            args![
                new.project,
                new.env,
                new.biome,
                new.expires_at,
                reason,
                new.requested_by,
                now(),
                ttl,
                deployment,
                source.map(|s| s.repository.as_str()),
                source.map(|s| i64::from(s.bare)),
                source.map(|s| s.revision.as_str()),
            ],
        )
        .ctx(&context)?;
        let recorded = tx
            .query_row(
                &format!("{CURRENT_SELECT} AND e.id = ?1"),
                args![id],
                expiry,
            )
            .ctx(&context)?;
        tx.commit().ctx(&context)?;
        Ok(recorded)
    }

    /// The current expiry of `biome` in `env`, if one was ever recorded.
    pub fn expiry(
        &self,
        project: &str,
        env: &str,
        biome: &str,
    ) -> Result<Option<Expiry>, StateError> {
        Ok(self
            .expiries(project)?
            .into_iter()
            .find(|e| e.env == env && e.biome == biome))
    }

    /// The current expiry of every biome of `project` that ever had one (including biomes
    /// taken down since: the deployments tell which still exist), by environment and biome.
    pub fn expiries(&self, project: &str) -> Result<Vec<Expiry>, StateError> {
        let context = format!("reading the expiries of project {project}");
        self.conn
            .query_map(
                &format!("{CURRENT_SELECT} AND e.project = ?1 ORDER BY e.env, e.biome"),
                args![project],
                expiry,
            )
            .ctx(&context)
    }

    /// Every project that has a biome with a recorded expiry: what a reaper of the whole home
    /// looks at.
    pub fn projects_with_expiries(&self) -> Result<Vec<String>, StateError> {
        let context = "listing the projects with biome expiries";
        self.conn
            .query_map(
                "SELECT DISTINCT project FROM biome_expiries ORDER BY project",
                args![],
                |row| row.get(0),
            )
            .ctx(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(biome: &str, expires_at: &str, revision: &str) -> NewExpiry {
        NewExpiry {
            project: "p".into(),
            env: "dev".into(),
            biome: biome.into(),
            expires_at: expires_at.into(),
            requested_by: "alice".into(),
            cause: ExpiryCause::Up {
                ttl_secs: 604_800,
                deployment: None,
                source: BiomeSource {
                    repository: "/repo".into(),
                    bare: false,
                    revision: revision.into(),
                },
            },
        }
    }

    #[test]
    fn the_newest_row_wins_and_keeps_the_newest_ups_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(store.expiry("p", "dev", "alice").unwrap(), None);
        store
            .record_expiry(&up("alice", "2026-12-10T00:00:00Z", "aaa"))
            .unwrap();
        store
            .record_expiry(&up("bob", "2026-12-11T00:00:00Z", "bbb"))
            .unwrap();
        let extended = store
            .record_expiry(&NewExpiry {
                expires_at: "2026-12-13T00:00:00Z".into(),
                requested_by: "carol".into(),
                cause: ExpiryCause::Extend,
                ..up("alice", "x", "x")
            })
            .unwrap();
        assert_eq!(extended.reason, ExpiryReason::Extend);
        assert_eq!(extended.expires_at, "2026-12-13T00:00:00Z");
        assert_eq!(extended.requested_by, "carol");
        assert_eq!(extended.ttl_secs, Some(604_800));
        assert_eq!(extended.source.as_ref().unwrap().revision, "aaa");
        assert_eq!(store.expiry("p", "dev", "alice").unwrap(), Some(extended));
        let all = store.expiries("p").unwrap();
        let names: Vec<(&str, &str)> = all
            .iter()
            .map(|e| (e.biome.as_str(), e.expires_at.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("alice", "2026-12-13T00:00:00Z"),
                ("bob", "2026-12-11T00:00:00Z")
            ]
        );
        assert_eq!(store.projects_with_expiries().unwrap(), ["p"]);
        assert!(store.expiries("other").unwrap().is_empty());
        // A time that is not one is refused, and the table refuses changes.
        assert!(matches!(
            store.record_expiry(&up("alice", "tomorrow", "a")),
            Err(StateError::Invalid { .. })
        ));
        assert!(store
            .conn
            .execute("UPDATE biome_expiries SET expires_at = 'x'", args![])
            .is_err());
        assert!(store
            .conn
            .execute("DELETE FROM biome_expiries", args![])
            .is_err());
    }
}
