//! [`StateStore`]: the SQLite file, its writes (one `BEGIN IMMEDIATE` transaction each) and the
//! questions asked of it (history, current, previous successful, trace, retained digests).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::location::StateLocation;
use crate::postgres::PgClient;
use crate::process::Recorder;
use crate::schema::MIGRATIONS;
use crate::sql::{args, Db, DbError, Dialect, Row, Value};
use crate::{
    DeployedComponent, Deployment, DeploymentKind, DeploymentState, DeploymentStep, NewDeployment,
    StateError, StepKind,
};

/// How often [`StateStore::wait_turn`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a write waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The failure recorded for a `started` deployment whose process is gone.
pub(crate) const INTERRUPTED_RUNNING: &str = "interrupted: the sandpit process running it died";
/// The failure recorded for an approved, queued deployment whose process is gone.
pub(crate) const INTERRUPTED_QUEUED: &str =
    "interrupted: the sandpit process that queued it died before it started";

/// Events after which a deployment is finished.
const TERMINAL_EVENTS_SQL: &str = "('rejected', 'succeeded', 'failed', 'rolled_back')";

/// The append-only deployment records of one `$SANDPIT_HOME`, over one SQLite connection.
///
/// Several processes may open the same file at once; each write is one `BEGIN IMMEDIATE`
/// transaction, so ids are distinct and ordered and no check-then-append races another process.
#[derive(Debug)]
pub struct StateStore {
    pub(crate) conn: Db,
    /// Recorded with every event this handle appends, so a queued deployment whose process died
    /// can be told from one that is still waiting.
    pub(crate) pid: u32,
}

/// Attaches what was being done to a SQLite error.
pub(crate) trait Context<T> {
    fn ctx(self, context: &str) -> Result<T, StateError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, StateError> {
        self.map_err(DbError::from).ctx(context)
    }
}

impl<T> Context<T> for Result<T, DbError> {
    fn ctx(self, context: &str) -> Result<T, StateError> {
        self.map_err(|source| StateError::Database {
            context: context.to_string(),
            source,
        })
    }
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256:<lowercase hex>` for a bare 64-hex digest or a prefixed one; anything else unchanged.
fn normalize_digest(raw: &str) -> String {
    let bare = raw.strip_prefix("sha256:").unwrap_or(raw);
    if bare.len() == 64 && is_hex(bare) {
        format!("sha256:{}", bare.to_ascii_lowercase())
    } else {
        raw.to_string()
    }
}

/// What `involving` looks for.
enum Needle {
    Artifact(String),
    Digest(String),
    /// A version prefix; a 64-hex needle may also be a bare digest.
    Version {
        prefix: String,
        digest: Option<String>,
    },
}

impl Needle {
    fn parse(raw: &str) -> Result<Needle, StateError> {
        let bad = || StateError::BadQuery {
            needle: raw.to_string(),
        };
        let needle = raw.trim();
        if needle.ends_with(".zip") && needle.len() > ".zip".len() {
            return Ok(Needle::Artifact(needle.to_string()));
        }
        if let Some(hex) = needle.strip_prefix("sha256:") {
            return if hex.len() == 64 && is_hex(hex) {
                Ok(Needle::Digest(normalize_digest(hex)))
            } else {
                Err(bad())
            };
        }
        let lower = needle.to_ascii_lowercase();
        let (head, dirty) = match lower.split_once("-dirty-") {
            Some((head, tail)) => (head, Some(tail)),
            None => (lower.as_str(), None),
        };
        if head.len() < 7 || !is_hex(head) || dirty.is_some_and(|t| !t.is_empty() && !is_hex(t)) {
            return Err(bad());
        }
        let digest = (dirty.is_none() && head.len() == 64).then(|| normalize_digest(head));
        Ok(Needle::Version {
            prefix: lower,
            digest,
        })
    }
}

/// The columns of `deployments`, in the order [`Facts::from_row`] reads them.
const FACT_COLUMNS: &str = "id, project, target, env, biome, sha, kind, promoted_from, \
     requested_by, approvals_required, rollback_of, restores, created_at";

/// One `deployments` row as stored.
struct Facts {
    id: i64,
    project: String,
    target: String,
    env: String,
    biome: Option<String>,
    sha: String,
    kind: String,
    promoted_from: Option<String>,
    requested_by: String,
    approvals_required: i64,
    rollback_of: Option<i64>,
    restores: Option<i64>,
    created_at: String,
}

impl Facts {
    fn from_row(row: &Row) -> Result<Facts, DbError> {
        Ok(Facts {
            id: row.get(0)?,
            project: row.get(1)?,
            target: row.get(2)?,
            env: row.get(3)?,
            biome: row.get(4)?,
            sha: row.get(5)?,
            kind: row.get(6)?,
            promoted_from: row.get(7)?,
            requested_by: row.get(8)?,
            approvals_required: row.get(9)?,
            rollback_of: row.get(10)?,
            restores: row.get(11)?,
            created_at: row.get(12)?,
        })
    }
}

/// Which processes a deployment's liveness depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pids {
    /// The process recorded by `started`.
    running: Option<Recorder>,
    /// The process that appended the latest event.
    last: Option<Recorder>,
}

/// For an unfinished deployment that something is waiting on (running, or approved and queued):
/// the process whose life it depends on, and the failure to record when that process is gone.
fn liveness(d: &Deployment, pids: &Pids) -> Option<(Option<Recorder>, &'static str)> {
    match d.state {
        DeploymentState::Running => Some((pids.running.clone(), INTERRUPTED_RUNNING)),
        DeploymentState::Pending if d.approvals_missing() == 0 => {
            Some((pids.last.clone(), INTERRUPTED_QUEUED))
        }
        _ => None,
    }
}

/// Whether a deployment in `state` may record `step`: a plan is made for the approvers while
/// the deployment waits for them; everything else happens while it runs.
fn step_allowed(step: StepKind, state: DeploymentState) -> bool {
    match step {
        StepKind::Planned => state == DeploymentState::Pending,
        StepKind::Rehearsed
        | StepKind::RehearsalFailed
        | StepKind::Migrated
        | StepKind::Configured
        | StepKind::Applied => state == DeploymentState::Running,
    }
}

/// An event about to be appended.
struct NewEvent {
    event: &'static str,
    actor: Option<String>,
    message: Option<String>,
    pid: u32,
    ref_deployment: Option<i64>,
}

fn insert_event(conn: &Db, id: i64, event: &NewEvent) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO deployment_events (deployment_id, event, at, actor, message, pid, ref_deployment, host)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            id,
            event.event,
            now(),
            event.actor,
            event.message,
            i64::from(event.pid),
            event.ref_deployment,
            crate::process::this_host(),
        ],
    )
    .map_err(|source| {
        // A unique index keeps a deployment from starting twice, whoever races for it.
        if source.is_unique_violation() {
            StateError::InvalidTransition {
                id,
                state: DeploymentState::Running,
                event: event.event,
            }
        } else {
            StateError::Database {
                context: format!("recording `{}` for deployment #{id}", event.event),
                source,
            }
        }
    })?;
    Ok(())
}

fn corrupt(id: i64, what: impl std::fmt::Display) -> StateError {
    StateError::Corrupt {
        detail: format!("deployment #{id}: {what}"),
    }
}

/// Reads deployment `id` and derives its state from its events.
fn load_full(conn: &Db, id: i64) -> Result<Option<(Deployment, Pids)>, StateError> {
    let context = format!("reading deployment #{id}");
    let facts = conn
        .query_opt(
            &format!("SELECT {FACT_COLUMNS} FROM deployments WHERE id = ?1"),
            args![id],
            Facts::from_row,
        )
        .ctx(&context)?;
    let Some(facts) = facts else {
        return Ok(None);
    };
    let kind = match (facts.kind.as_str(), facts.promoted_from) {
        ("deploy", _) => DeploymentKind::Deploy,
        ("promote", Some(from)) => DeploymentKind::Promote { from },
        ("rollback", _) => DeploymentKind::Rollback,
        ("up", _) => DeploymentKind::Up,
        ("destroy", _) => DeploymentKind::Destroy,
        ("down", _) => DeploymentKind::Down,
        ("config", _) => DeploymentKind::Config,
        (other, _) => return Err(corrupt(id, format_args!("unknown kind `{other}`"))),
    };
    let approvals_required = u32::try_from(facts.approvals_required)
        .map_err(|_| corrupt(id, "approvals_required out of range"))?;

    let components = conn
        .query_map(
            "SELECT name, artifact, digest, borrowed_from FROM deployment_components
             WHERE deployment_id = ?1 ORDER BY position",
            args![id],
            |row| {
                Ok(DeployedComponent {
                    name: row.get(0)?,
                    artifact: row.get(1)?,
                    digest: row.get(2)?,
                    borrowed_from: row.get(3)?,
                })
            },
        )
        .ctx(&context)?;

    let mut deployment = Deployment {
        id: facts.id,
        project: facts.project,
        target: facts.target,
        env: facts.env,
        biome: facts.biome,
        sha: facts.sha,
        kind,
        requested_by: facts.requested_by,
        approvals_required,
        approved_by: Vec::new(),
        rejected_by: None,
        rollback_of: facts.rollback_of,
        restores: facts.restores,
        state: DeploymentState::Pending,
        created_at: facts.created_at,
        started_at: None,
        finished_at: None,
        message: None,
        rolled_back_by: None,
        components,
        steps: Vec::new(),
    };
    let mut pids = Pids {
        running: None,
        last: None,
    };

    type EventRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let events = conn
        .query_map(
            "SELECT event, at, actor, message, pid, ref_deployment, host FROM deployment_events
             WHERE deployment_id = ?1 ORDER BY id",
            args![id],
            |row| -> Result<EventRow, DbError> {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            },
        )
        .ctx(&context)?;
    if events.first().map(|e| e.0.as_str()) != Some("created") {
        return Err(corrupt(id, "its first event is not `created`"));
    }
    for (event, at, actor, message, pid, ref_deployment, host) in events {
        pids.last = Recorder::of(pid, host);
        let d = &mut deployment;
        match event.as_str() {
            "created" => d.message = message,
            "approved" => d
                .approved_by
                .push(actor.ok_or_else(|| corrupt(id, "an approval without a user"))?),
            "rejected" => {
                d.state = DeploymentState::Rejected;
                d.rejected_by = actor;
                d.message = message;
                d.finished_at = Some(at);
            }
            "started" => {
                d.state = DeploymentState::Running;
                d.started_at = Some(at);
                pids.running = pids.last.clone();
            }
            "succeeded" => {
                d.state = DeploymentState::Succeeded;
                d.finished_at = Some(at);
            }
            "failed" => {
                d.state = DeploymentState::Failed;
                d.message = message;
                d.finished_at = Some(at);
            }
            "rolled_back" => {
                d.state = DeploymentState::RolledBack;
                d.rolled_back_by = ref_deployment;
                d.finished_at.get_or_insert(at);
            }
            other => match StepKind::parse(other) {
                Some(step) => d.steps.push(DeploymentStep {
                    step,
                    at,
                    message: message.unwrap_or_default(),
                }),
                None => return Err(corrupt(id, format_args!("unknown event `{other}`"))),
            },
        }
    }
    Ok(Some((deployment, pids)))
}

fn load(conn: &Db, id: i64) -> Result<Option<Deployment>, StateError> {
    Ok(load_full(conn, id)?.map(|(d, _)| d))
}

fn load_existing(conn: &Db, id: i64) -> Result<Deployment, StateError> {
    load(conn, id)?.ok_or(StateError::NotFound { id })
}

/// The ids a query with parameters returns, in its order.
fn ids(conn: &Db, sql: &str, params: &[Value], context: &str) -> Result<Vec<i64>, StateError> {
    conn.query_map(sql, params, |row| row.get(0)).ctx(context)
}

/// Takes group and other access away from the database files an older version left 0644 (a new
/// store is created 0600, and SQLite gives its `-wal` and `-shm` files the same mode): a failed
/// deployment's message may quote a component's log, and so a secret the component printed.
fn make_owner_only(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io_error = |path: &Path| {
        let shown = path.display().to_string();
        move |source| StateError::Io {
            path: shown,
            source,
        }
    };
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(metadata) = std::fs::metadata(file) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(io_error(file))?;
        }
    }
    Ok(())
}

impl StateStore {
    /// Opens (creating the directories, file and schema as needed) the store at `path`: WAL
    /// journal, a 30 s busy timeout and foreign keys on; migrates the schema to this version.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        fn is_busy(error: &StateError) -> bool {
            matches!(error, StateError::Database { source, .. } if source.is_busy())
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StateError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let context = format!("opening {shown}");
        if !path.exists() {
            create_initialised(path, &shown)?;
        }
        make_owner_only(path)?;
        // A store is only ever created whole (above), so an empty file is one that lost its
        // contents (a full disk, a truncation): refuse it rather than start a new history in it.
        let size = std::fs::metadata(path)
            .map_err(|source| StateError::Io {
                path: shown.clone(),
                source,
            })?
            .len();
        if size == 0 {
            return Err(StateError::Empty { path: shown });
        }
        let mut conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx(&context)?;
        conn.busy_timeout(BUSY_TIMEOUT).ctx(&context)?;
        conn.pragma_update(None, "foreign_keys", true)
            .ctx(&context)?;
        // Several sandpit processes may create the file at the same moment. Switching to WAL
        // and migrating can then answer "database is locked" without waiting on the busy
        // handler, so both are retried until the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let attempt = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(DbError::from)
                .ctx(&context)
                .and_then(|_| migrate(&mut conn, &shown));
            match attempt {
                Ok(()) => break,
                Err(error) if is_busy(&error) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(StateStore {
            conn: Db::Sqlite(conn),
            pid: std::process::id(),
        })
    }

    /// Opens the store at `location`: a SQLite file ([`StateStore::open`]) or a PostgreSQL
    /// database ([`StateStore::connect`]).
    pub fn open_at(location: &StateLocation) -> Result<StateStore, StateError> {
        match location {
            StateLocation::Sqlite(path) => StateStore::open(path),
            StateLocation::Postgres(url) => StateStore::connect(url),
        }
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host/db`) and
    /// migrates its schema to this version (once, however many servers start at the same
    /// moment: the migrations run under an advisory lock).
    pub fn connect(url: &str) -> Result<StateStore, StateError> {
        let shown = crate::location::redacted(url);
        let client = PgClient::connect(url).map_err(|source| StateError::Unreachable {
            url: shown.clone(),
            detail: source.to_string(),
        })?;
        let conn = Db::Postgres(client);
        migrate_postgres(&conn, &shown)?;
        Ok(StateStore {
            conn,
            pid: std::process::id(),
        })
    }

    /// Which dialect the store speaks.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Records a new pending deployment (and its `created` event) and returns it.
    pub fn create(&mut self, new: &NewDeployment) -> Result<Deployment, StateError> {
        self.create_because(new, None)
    }

    /// [`StateStore::create`] with why it was made (`reason`, e.g. what the reaper found),
    /// kept on its `created` event: the deployment's message until a failure replaces it.
    pub fn create_because(
        &mut self,
        new: &NewDeployment,
        reason: Option<&str>,
    ) -> Result<Deployment, StateError> {
        validate(new)?;
        let tx = self.conn.write().ctx("starting to record a deployment")?;
        for (what, reference) in [("rollback_of", new.rollback_of), ("restores", new.restores)] {
            if let Some(other) = reference {
                if load(&tx, other)?.is_none() {
                    return Err(StateError::Invalid {
                        detail: format!("{what} names deployment #{other}, which does not exist"),
                    });
                }
            }
        }
        let promoted_from = match &new.kind {
            DeploymentKind::Promote { from } => Some(from.as_str()),
            _ => None,
        };
        let id = tx
            .insert_returning_id(
                "INSERT INTO deployments (project, target, env, biome, sha, kind, promoted_from,
                 requested_by, approvals_required, rollback_of, restores, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
                args![
                    new.project,
                    new.target,
                    new.env,
                    new.biome,
                    new.sha,
                    new.kind.as_str(),
                    promoted_from,
                    new.requested_by,
                    new.approvals_required,
                    new.rollback_of,
                    new.restores,
                    now(),
                ],
            )
            .ctx("recording a deployment")?;
        for (position, c) in new.components.iter().enumerate() {
            tx.execute(
                "INSERT INTO deployment_components (deployment_id, position, name, artifact, digest, borrowed_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![
                    id,
                    i64::try_from(position).unwrap_or(i64::MAX),
                    c.name,
                    c.artifact,
                    normalize_digest(&c.digest),
                    c.borrowed_from
                ],
            )
            .ctx("recording a deployment's components")?;
        }
        insert_event(
            &tx,
            id,
            &NewEvent {
                event: "created",
                actor: Some(new.requested_by.clone()),
                message: reason.map(str::to_owned),
                pid: self.pid,
                ref_deployment: None,
            },
        )?;
        let deployment = load_existing(&tx, id)?;
        tx.commit().ctx("recording a deployment")?;
        Ok(deployment)
    }

    /// The deployment `id`, if there is one.
    pub fn get(&self, id: i64) -> Result<Option<Deployment>, StateError> {
        load(&self.conn, id)
    }

    /// The newest deployment of the target, whatever its state.
    pub fn latest(&self, project: &str, target: &str) -> Result<Option<Deployment>, StateError> {
        let newest = ids(
            &self.conn,
            "SELECT id FROM deployments WHERE project = ?1 AND target = ?2 ORDER BY id DESC LIMIT 1",
            args![project, target],
            "looking for the newest deployment",
        )?;
        match newest.first() {
            Some(id) => load(&self.conn, *id),
            None => Ok(None),
        }
    }

    /// Records `user`'s approval of pending deployment `id`. Refused for the requester, for a
    /// second approval by the same user, and when no (more) approval is needed.
    pub fn approve(&mut self, id: i64, user: &str) -> Result<Deployment, StateError> {
        let pid = self.pid;
        self.append(id, |d| {
            if d.state != DeploymentState::Pending {
                return Err(StateError::NotPending { id, state: d.state });
            }
            let no_need = || StateError::NoApprovalNeeded {
                id,
                required: d.approvals_required,
                approved: u32::try_from(d.approved_by.len()).unwrap_or(u32::MAX),
            };
            if d.approvals_required == 0 {
                return Err(no_need());
            }
            if d.requested_by == user {
                return Err(StateError::SelfApproval {
                    id,
                    user: user.to_string(),
                });
            }
            if d.approved_by.iter().any(|u| u == user) {
                return Err(StateError::AlreadyApproved {
                    id,
                    user: user.to_string(),
                });
            }
            if d.approvals_missing() == 0 {
                return Err(no_need());
            }
            Ok(NewEvent {
                event: "approved",
                actor: Some(user.to_string()),
                message: None,
                pid,
                ref_deployment: None,
            })
        })
    }

    /// Records that `user` rejected pending deployment `id` (anyone may, the requester too).
    pub fn reject(
        &mut self,
        id: i64,
        user: &str,
        reason: Option<&str>,
    ) -> Result<Deployment, StateError> {
        let pid = self.pid;
        self.append(id, |d| {
            if d.state != DeploymentState::Pending {
                return Err(StateError::NotPending { id, state: d.state });
            }
            Ok(NewEvent {
                event: "rejected",
                actor: Some(user.to_string()),
                message: reason.map(str::to_string),
                pid,
                ref_deployment: None,
            })
        })
    }

    /// Records that process `pid` started running pending, fully approved deployment `id`.
    pub fn mark_started(&mut self, id: i64, pid: u32) -> Result<(), StateError> {
        self.append(id, |d| {
            if d.state != DeploymentState::Pending {
                return Err(StateError::InvalidTransition {
                    id,
                    state: d.state,
                    event: "started",
                });
            }
            if d.approvals_missing() > 0 {
                return Err(StateError::ApprovalsMissing {
                    id,
                    missing: d.approvals_missing(),
                });
            }
            Ok(NewEvent {
                event: "started",
                actor: None,
                message: None,
                pid,
                ref_deployment: None,
            })
        })
        .map(drop)
    }

    /// Records that running deployment `id` succeeded.
    pub fn mark_succeeded(&mut self, id: i64) -> Result<(), StateError> {
        let pid = self.pid;
        self.append(id, |d| {
            if d.state != DeploymentState::Running {
                return Err(StateError::InvalidTransition {
                    id,
                    state: d.state,
                    event: "succeeded",
                });
            }
            Ok(NewEvent {
                event: "succeeded",
                actor: None,
                message: None,
                pid,
                ref_deployment: None,
            })
        })
        .map(drop)
    }

    /// Records that pending or running deployment `id` failed with `message`.
    pub fn mark_failed(&mut self, id: i64, message: &str) -> Result<(), StateError> {
        let pid = self.pid;
        self.append(id, |d| {
            if !matches!(d.state, DeploymentState::Pending | DeploymentState::Running) {
                return Err(StateError::InvalidTransition {
                    id,
                    state: d.state,
                    event: "failed",
                });
            }
            Ok(NewEvent {
                event: "failed",
                actor: None,
                message: Some(message.to_string()),
                pid,
                ref_deployment: None,
            })
        })
        .map(drop)
    }

    /// Records that deployment `id` (running, succeeded or failed) was undone by deployment
    /// `by_deployment`.
    pub fn mark_rolled_back(&mut self, id: i64, by_deployment: i64) -> Result<(), StateError> {
        let pid = self.pid;
        if by_deployment == id {
            return Err(StateError::Invalid {
                detail: format!("deployment #{id} cannot roll itself back"),
            });
        }
        if load(&self.conn, by_deployment)?.is_none() {
            return Err(StateError::NotFound { id: by_deployment });
        }
        self.append(id, |d| {
            if !matches!(
                d.state,
                DeploymentState::Running | DeploymentState::Succeeded | DeploymentState::Failed
            ) {
                return Err(StateError::InvalidTransition {
                    id,
                    state: d.state,
                    event: "rolled_back",
                });
            }
            Ok(NewEvent {
                event: "rolled_back",
                actor: None,
                message: None,
                pid,
                ref_deployment: Some(by_deployment),
            })
        })
        .map(drop)
    }

    /// Blocks until every deployment of the same project and target with a smaller id has
    /// finished, polling every 50 ms; gives up after `timeout` with
    /// [`StateError::QueueTimeout`].
    ///
    /// A pending deployment still waiting for approvals does not block (a pending approval must
    /// not freeze the target); a fully approved pending one does (it is queued ahead, arrival
    /// order is kept) as long as the process that last recorded an event on it is alive. A
    /// `started` deployment whose process is no longer alive (no `/proc/<pid>`, or a zombie) is
    /// marked failed ("interrupted: the sandpit process running it died") and no longer blocks;
    /// so is a queued one whose process died before starting it.
    pub fn wait_turn(&mut self, id: i64, timeout: Duration) -> Result<(), StateError> {
        let started = Instant::now();
        loop {
            match self.blocking(id)? {
                None => return Ok(()),
                Some(blocking_id) if started.elapsed() >= timeout => {
                    return Err(StateError::QueueTimeout { id, blocking_id })
                }
                Some(_) => std::thread::sleep(POLL_INTERVAL),
            }
        }
    }

    /// The oldest earlier deployment of `id`'s target that still blocks it (`None`: it is its
    /// turn), after failing the ones whose process died. One step of [`Self::wait_turn`], for a
    /// caller that waits its own way (an async task must not sleep its thread).
    pub fn blocking(&mut self, id: i64) -> Result<Option<i64>, StateError> {
        let me = load_existing(&self.conn, id)?;
        self.first_blocker(&me)
    }

    /// How often a waiting deployment looks again whether it is its turn.
    pub const TURN_POLL_INTERVAL: Duration = POLL_INTERVAL;

    /// The oldest earlier deployment of `me`'s target that still blocks it, after failing the
    /// ones whose process died.
    fn first_blocker(&mut self, me: &Deployment) -> Result<Option<i64>, StateError> {
        let candidates = ids(
            &self.conn,
            &format!(
                "SELECT d.id FROM deployments d
                 WHERE d.project = ?1 AND d.target = ?2 AND d.id < ?3
                   AND NOT EXISTS (SELECT 1 FROM deployment_events e
                                   WHERE e.deployment_id = d.id AND e.event IN {TERMINAL_EVENTS_SQL})
                 ORDER BY d.id"
            ),
            args![me.project, me.target, me.id],
            "looking for earlier unfinished deployments",
        )?;
        for candidate in candidates {
            let Some((d, pids)) = load_full(&self.conn, candidate)? else {
                continue;
            };
            let Some((pid, message)) = liveness(&d, &pids) else {
                continue;
            };
            if pid.as_ref().is_some_and(Recorder::is_alive) {
                return Ok(Some(candidate));
            }
            self.fail_if_unchanged(&d, &pids, message)?;
        }
        Ok(None)
    }

    /// Marks failed every unfinished deployment of `project` whose sandpit process died (killed
    /// half-way, or before it started), as `wait_turn` does for one target; returns how many.
    /// Reads call it so that `history` never shows a dead deployment as running.
    pub fn fail_interrupted(&mut self, project: &str) -> Result<usize, StateError> {
        let candidates = ids(
            &self.conn,
            &format!(
                "SELECT d.id FROM deployments d
                 WHERE d.project = ?1
                   AND NOT EXISTS (SELECT 1 FROM deployment_events e
                                   WHERE e.deployment_id = d.id AND e.event IN {TERMINAL_EVENTS_SQL})
                 ORDER BY d.id"
            ),
            args![project],
            "looking for unfinished deployments",
        )?;
        let mut failed = 0;
        for candidate in candidates {
            let Some((d, pids)) = load_full(&self.conn, candidate)? else {
                continue;
            };
            let Some((pid, message)) = liveness(&d, &pids) else {
                continue;
            };
            if !pid.as_ref().is_some_and(Recorder::is_alive) {
                self.fail_if_unchanged(&d, &pids, message)?;
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Marks `stale` failed with `message` unless another process recorded something on it since
    /// it was read.
    fn fail_if_unchanged(
        &mut self,
        stale: &Deployment,
        pids: &Pids,
        message: &str,
    ) -> Result<(), StateError> {
        let tx = self
            .conn
            .write()
            .ctx("starting to fail an interrupted deployment")?;
        if let Some((now, now_pids)) = load_full(&tx, stale.id)? {
            if now == *stale && now_pids.last == pids.last {
                insert_event(
                    &tx,
                    stale.id,
                    &NewEvent {
                        event: "failed",
                        actor: None,
                        message: Some(message.to_string()),
                        pid: self.pid,
                        ref_deployment: None,
                    },
                )?;
            }
        }
        tx.commit().ctx("failing an interrupted deployment")
    }

    /// The deployments of `project` (of one target, or of all with `None`), newest first.
    pub fn history(
        &self,
        project: &str,
        target: Option<&str>,
    ) -> Result<Vec<Deployment>, StateError> {
        let found = ids(
            &self.conn,
            "SELECT id FROM deployments WHERE project = ?1 AND (CAST(?2 AS TEXT) IS NULL OR target = ?2)
             ORDER BY id DESC",
            args![project, target],
            "listing deployments",
        )?;
        self.load_all(found)
    }

    /// The newest deployment of each biome of `project` when it failed, newest first: what `ls`
    /// reports as left behind. The filter is SQL, so only failed ones are loaded (a listing of a
    /// thousand biomes reads none of their histories).
    pub fn newest_failed_biome_deployments(
        &self,
        project: &str,
    ) -> Result<Vec<Deployment>, StateError> {
        let found = ids(
            &self.conn,
            "SELECT d.id FROM deployments d
             WHERE d.project = ?1 AND d.biome IS NOT NULL
               AND d.id = (SELECT MAX(n.id) FROM deployments n
                           WHERE n.project = d.project AND n.target = d.target)
               AND EXISTS (SELECT 1 FROM deployment_events e
                           WHERE e.deployment_id = d.id AND e.event = 'failed')
             ORDER BY d.id DESC",
            args![project],
            "looking for failed biome deployments",
        )?;
        Ok(self
            .load_all(found)?
            .into_iter()
            .filter(|d| d.state == DeploymentState::Failed)
            .collect())
    }

    /// The deployment whose artifacts run in the target now: the newest with state succeeded
    /// (a later rollback that succeeded is itself the current one). `None` when nothing was
    /// deployed, or when the newest is a destroy: nothing runs there then.
    pub fn current(&self, project: &str, target: &str) -> Result<Option<Deployment>, StateError> {
        Ok(self
            .newest_succeeded(project, target, i64::MAX, |_| true)?
            .filter(|d| !d.kind.removes()))
    }

    /// The newest successful destroy of the target that nothing has been deployed over since.
    pub fn destroyed(&self, project: &str, target: &str) -> Result<Option<Deployment>, StateError> {
        Ok(self
            .newest_succeeded(project, target, i64::MAX, |_| true)?
            .filter(|d| d.kind.removes()))
    }

    /// What a rollback from deployment `before` (normally the current one) returns to: the newest
    /// succeeded, not undone deployment older than the one whose artifacts `before` runs. A
    /// rollback runs what it restored, so a second rollback steps further back instead of
    /// bouncing between two; and nothing is skipped for having the same digests (the same commit
    /// deployed twice is two steps). Never reaches past a destroy: what ran before it had a
    /// database that is gone.
    pub fn previous_successful(
        &self,
        project: &str,
        target: &str,
        before: i64,
    ) -> Result<Option<Deployment>, StateError> {
        let origin = self.origin(before)?;
        let destroyed_at = ids(
            &self.conn,
            "SELECT d.id FROM deployments d
             WHERE d.project = ?1 AND d.target = ?2 AND d.id <= ?3 AND d.kind IN ('destroy', 'down')
               AND EXISTS (SELECT 1 FROM deployment_events e
                           WHERE e.deployment_id = d.id AND e.event = 'succeeded')
             ORDER BY d.id DESC LIMIT 1",
            args![project, target, origin.id],
            "looking for the last destroy",
        )?
        .first()
        .copied()
        .unwrap_or(0);
        Ok(self
            .newest_succeeded(project, target, origin.id, |_| true)?
            .filter(|d| d.id > destroyed_at && !d.kind.removes()))
    }

    /// A successful destroy of the target with an id between `after` and `before` (exclusive).
    pub fn destroyed_between(
        &self,
        project: &str,
        target: &str,
        after: i64,
        before: i64,
    ) -> Result<Option<Deployment>, StateError> {
        let found = ids(
            &self.conn,
            "SELECT d.id FROM deployments d
             WHERE d.project = ?1 AND d.target = ?2 AND d.id > ?3 AND d.id < ?4
               AND d.kind IN ('destroy', 'down')
               AND EXISTS (SELECT 1 FROM deployment_events e
                           WHERE e.deployment_id = d.id AND e.event = 'succeeded')
             ORDER BY d.id DESC LIMIT 1",
            args![project, target, after, before],
            "looking for a destroy",
        )?;
        match found.first() {
            Some(id) => load(&self.conn, *id),
            None => Ok(None),
        }
    }

    /// The deployment whose artifacts deployment `id` runs: itself, or for a rollback or a
    /// config change what it restored (followed through rollbacks of rollbacks).
    pub fn origin(&self, id: i64) -> Result<Deployment, StateError> {
        let mut origin = load_existing(&self.conn, id)?;
        while matches!(
            origin.kind,
            DeploymentKind::Rollback | DeploymentKind::Config
        ) {
            match origin.restores {
                Some(restored) if restored < origin.id => {
                    origin = load_existing(&self.conn, restored)?;
                }
                _ => break,
            }
        }
        Ok(origin)
    }

    /// Records a step of deployment `id` (see [`StepKind`]): a plan while it is pending, any
    /// other step while it runs.
    pub fn record_step(
        &mut self,
        id: i64,
        step: StepKind,
        message: &str,
    ) -> Result<(), StateError> {
        let pid = self.pid;
        self.append(id, |d| {
            if !step_allowed(step, d.state) {
                return Err(StateError::InvalidTransition {
                    id,
                    state: d.state,
                    event: step.as_str(),
                });
            }
            Ok(NewEvent {
                event: step.as_str(),
                actor: None,
                message: Some(message.to_string()),
                pid,
                ref_deployment: None,
            })
        })
        .map(drop)
    }

    fn newest_succeeded(
        &self,
        project: &str,
        target: &str,
        below: i64,
        accept: impl Fn(&Deployment) -> bool,
    ) -> Result<Option<Deployment>, StateError> {
        let candidates = ids(
            &self.conn,
            "SELECT d.id FROM deployments d
             WHERE d.project = ?1 AND d.target = ?2 AND d.id < ?3
               AND EXISTS (SELECT 1 FROM deployment_events e
                           WHERE e.deployment_id = d.id AND e.event = 'succeeded')
               AND NOT EXISTS (SELECT 1 FROM deployment_events e
                               WHERE e.deployment_id = d.id AND e.event = 'rolled_back')
             ORDER BY d.id DESC",
            args![project, target, below],
            "looking for succeeded deployments",
        )?;
        for id in candidates {
            if let Some(d) = load(&self.conn, id)? {
                if d.state == DeploymentState::Succeeded && accept(&d) {
                    return Ok(Some(d));
                }
            }
        }
        Ok(None)
    }

    /// Deployments of `project` that included the commit (a version prefix of at least 7 hex
    /// digits, or a whole `<sha>-dirty-<hex>` version), the digest (`sha256:<hex>` or bare 64
    /// hex) or the artifact (`<component>-<sha>.zip`), newest first.
    pub fn involving(&self, project: &str, needle: &str) -> Result<Vec<Deployment>, StateError> {
        let (artifact, digest, prefix) = match Needle::parse(needle)? {
            Needle::Artifact(a) => (Some(a), None, None),
            Needle::Digest(d) => (None, Some(d), None),
            Needle::Version { prefix, digest } => (None, digest, Some(prefix)),
        };
        let found = ids(
            &self.conn,
            "SELECT DISTINCT d.id FROM deployments d
             LEFT JOIN deployment_components c ON c.deployment_id = d.id
             WHERE d.project = ?1
               AND (c.artifact = ?2 OR c.digest = ?3 OR substr(lower(d.sha), 1, length(?4)) = ?4)
             ORDER BY d.id DESC",
            args![project, artifact, digest, prefix],
            "looking for deployments involving an artifact",
        )?;
        self.load_all(found)
    }

    /// Digests that must never be garbage-collected from env `env`'s store: those of the newest
    /// `keep` deployments of every target of the environment (its base and its biomes), plus —
    /// whatever `keep` is — those of each target's current deployment and of every deployment
    /// not finished yet (pending or running).
    pub fn retained_digests(
        &self,
        project: &str,
        env: &str,
        keep: usize,
    ) -> Result<BTreeSet<String>, StateError> {
        let context = "listing retained digests";
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let mut digests = self
            .conn
            .query_map(
                &format!(
                    "SELECT DISTINCT c.digest FROM deployment_components c
                     WHERE c.deployment_id IN (
                         SELECT ranked.id FROM (
                             SELECT id, ROW_NUMBER() OVER (PARTITION BY target ORDER BY id DESC) AS rn
                             FROM deployments WHERE project = ?1 AND env = ?2
                         ) AS ranked WHERE ranked.rn <= ?3
                         UNION
                         SELECT d.id FROM deployments d
                         WHERE d.project = ?1 AND d.env = ?2
                           AND NOT EXISTS (SELECT 1 FROM deployment_events e
                                           WHERE e.deployment_id = d.id AND e.event IN {TERMINAL_EVENTS_SQL})
                     )"
                ),
                args![project, env, keep],
                |row| row.get::<String>(0),
            )
            .ctx(context)?
            .into_iter()
            .collect::<BTreeSet<_>>();
        let targets = self
            .conn
            .query_map(
                "SELECT DISTINCT target FROM deployments WHERE project = ?1 AND env = ?2",
                args![project, env],
                |row| row.get::<String>(0),
            )
            .ctx(context)?;
        for target in targets {
            if let Some(current) = self.current(project, &target)? {
                digests.extend(current.components.into_iter().map(|c| c.digest));
            }
        }
        Ok(digests)
    }

    fn load_all(&self, ids: Vec<i64>) -> Result<Vec<Deployment>, StateError> {
        ids.into_iter()
            .map(|id| load_existing(&self.conn, id))
            .collect()
    }

    /// Appends the event `decide` returns for deployment `id` (as read inside the same
    /// `BEGIN IMMEDIATE` transaction) and returns the deployment after it.
    fn append(
        &mut self,
        id: i64,
        decide: impl FnOnce(&Deployment) -> Result<NewEvent, StateError>,
    ) -> Result<Deployment, StateError> {
        let tx = self
            .conn
            .write()
            .ctx(&format!("starting to update deployment #{id}"))?;
        let before = load_existing(&tx, id)?;
        let event = decide(&before)?;
        insert_event(&tx, id, &event)?;
        let after = load_existing(&tx, id)?;
        tx.commit()
            .ctx(&format!("recording `{}` for deployment #{id}", event.event))?;
        Ok(after)
    }

    /// The underlying connection, for tests that look at the rows themselves.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Db {
        &self.conn
    }

    /// The SQLite connection of a store opened from a file, for tests of the file itself.
    #[cfg(test)]
    pub(crate) fn sqlite_connection(&self) -> &rusqlite::Connection {
        match &self.conn {
            Db::Sqlite(conn) => conn,
            Db::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}

/// Creates a new store at `path` whole: the schema is written into a temporary file next to
/// it, which is then linked into place only if no other process got there first. So a store
/// that exists always has its schema, and an empty one means something destroyed it.
fn create_initialised(path: &Path, shown: &str) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: shown.to_string(),
        source,
    };
    // Unique per process and per call: threads of one process may create the store at once.
    static CREATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let staged = path.with_file_name(format!(
        ".{}.new-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        CREATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&staged);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Owner-only from the first byte: a failed deployment's message may quote a secret.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .map_err(io)?;
        let mut conn = rusqlite::Connection::open(&staged).ctx(&format!("creating {shown}"))?;
        migrate(&mut conn, shown)?;
    }
    let linked = std::fs::hard_link(&staged, path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(()),
        // Another process created it at the same moment: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io(error)),
    }
}

/// Brings the schema to the newest version, in one `BEGIN IMMEDIATE` transaction so that two
/// processes opening a new file at once do not both migrate it.
fn migrate(conn: &mut rusqlite::Connection, shown: &str) -> Result<(), StateError> {
    let context = format!("migrating the schema of {shown}");
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let version = |conn: &rusqlite::Connection| -> Result<i64, StateError> {
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .ctx(&context)
    };
    if version(conn)? == known {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .ctx(&context)?;
    let found = version(&tx)?;
    if found > known {
        return Err(StateError::SchemaTooNew {
            path: shown.to_string(),
            found,
            known,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql).ctx(&context)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )
        .ctx(&context)?;
    }
    tx.commit().ctx(&context)
}

/// The advisory lock PostgreSQL migrations run under (besides every write's [`WRITE_LOCK`]
/// they take none), so that servers starting together migrate once.
const MIGRATION_LOCK: i64 = 0x5341_4e44_5049_5400;

/// Brings a PostgreSQL schema to the newest version: under [`MIGRATION_LOCK`], in one
/// transaction, each version applied recorded in `sandpit_schema_migrations`.
fn migrate_postgres(conn: &Db, shown: &str) -> Result<(), StateError> {
    use crate::postgres_schema::MIGRATIONS;
    let context = format!("migrating the schema of {shown}");
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    conn.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS sandpit_schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TEXT   NOT NULL
         )"
    ))
    .ctx(&context)?;
    let result = (|| {
        let found: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM sandpit_schema_migrations",
                args![],
                |row| row.get(0),
            )
            .ctx(&context)?;
        if found > known {
            return Err(StateError::SchemaTooNew {
                path: shown.to_string(),
                found,
                known,
            });
        }
        for (index, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            conn.batch(sql).ctx(&context)?;
            conn.execute(
                "INSERT INTO sandpit_schema_migrations (version, applied_at) VALUES (?1, ?2)",
                args![i64::try_from(index + 1).unwrap_or(i64::MAX), now()],
            )
            .ctx(&context)?;
        }
        conn.batch("COMMIT").ctx(&context)
    })();
    if result.is_err() {
        let _ = conn.batch("ROLLBACK");
    }
    result
}

/// Checks that a new deployment is self-consistent before recording it.
fn validate(new: &NewDeployment) -> Result<(), StateError> {
    let invalid = |detail: String| Err(StateError::Invalid { detail });
    for (field, value) in [
        ("project", &new.project),
        ("env", &new.env),
        ("sha", &new.sha),
        ("requested_by", &new.requested_by),
    ] {
        if value.trim().is_empty() {
            return invalid(format!("{field} is empty"));
        }
    }
    let expected = match &new.biome {
        Some(biome) => format!("{}/{biome}", new.env),
        None => new.env.clone(),
    };
    if new.target != expected {
        return invalid(format!(
            "target `{}` does not match env `{}` and biome {:?} (expected `{expected}`)",
            new.target, new.env, new.biome
        ));
    }
    if let DeploymentKind::Promote { from } = &new.kind {
        if from.trim().is_empty() {
            return invalid("a promotion without a source environment".to_string());
        }
    }
    Ok(())
}

/// `StateStore` moves between threads (one handle per thread, never shared).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<StateStore>();
};
