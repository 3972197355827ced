//! SQL against the instance as its administrator: templates, biome databases and roles, the shared
//! reference database. Every identifier goes through [`quote_identifier`] and every literal
//! through [`quote_literal`]; values that can be bound as parameters are.
//!
//! Operations on one database name are serialised across processes with a session-level
//! `pg_advisory_lock` held on the `Admin`'s own connection (no connection of its own to open, so
//! taking it is one round trip), so a crashed sandpit releases it with its connection and a
//! second `Admin` on the same instance waits instead of racing (for at most
//! [`Timeouts::advisory_lock`]). Such locks are re-entrant within a session, so the operations
//! that take them run one at a time on one `Admin`; an operation dropped before it released its
//! locks closes the connection, which is what makes the server release them.
//!
//! Nothing waits on the server unbounded: connecting, every round trip and every lock wait has
//! a limit from the [`Timeouts`] the `Admin` was made with (see [`crate::timeouts`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sandpit_domain::Name;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::cluster::ADMIN_USER;
use crate::error::{describe, DatabaseError};
use crate::execute::{self, Failure, Prepared};
use crate::history;
use crate::migrations::{MigrationFile, MigrationSet};
use crate::names::{self, quote_identifier, quote_literal, TemplateName};
use crate::plan::MigrationKind;
use crate::secret::{RedactedUrl, Secret};
use crate::steps::StepClock;
use crate::timeouts::{setting_millis, Server, Timeouts, Watchdog};

mod in_place;

/// Prefix of the `COMMENT ON DATABASE` that records which template a biome database came from.
const TEMPLATE_COMMENT: &str = "sandpit template=";
/// The comment on a finished template whose objects belong to `pg_database_owner`: in every
/// clone that is whoever owns the clone, so its biome role owns them without anything being
/// handed over. A template without it was built by an older sandpit, which left its objects to
/// the administrator: it is built again.
const DATABASE_OWNER_COMMENT: &str = "sandpit template objects=pg_database_owner";
/// The comment on a finished template whose objects stay the administrator's because the server
/// predates `pg_database_owner`: each clone's are handed over to its biome role.
const ADMINISTRATOR_COMMENT: &str = "sandpit template objects=administrator";
/// PostgreSQL 14 added the `pg_database_owner` role.
const DATABASE_OWNER_SINCE: i32 = 140_000;
/// Prefix of the comment that records the content hash a shared database was loaded from.
const SHARED_COMMENT: &str = "sandpit shared sha256=";
/// PostgreSQL 15 added `CREATE DATABASE … STRATEGY`.
const STRATEGY_SINCE: i32 = 150_000;

/// Characters left as they are in a URL's user info and path: RFC 3986's unreserved set.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A connection string `postgres://<role>:<password>@<host>:<port>/<database>`, every component
/// percent-encoded. It contains the password: display it with [`RedactedUrl`].
pub fn libpq_url(host: &str, port: u16, role: &str, password: &Secret, database: &str) -> String {
    format!(
        "postgres://{}:{}@{host}:{port}/{}",
        utf8_percent_encode(role, URL_COMPONENT),
        utf8_percent_encode(password.expose(), URL_COMPONENT),
        utf8_percent_encode(database, URL_COMPONENT),
    )
}

/// How often a drop looks whether the sessions it terminated have ended.
const SESSION_END_POLL: Duration = Duration::from_millis(1);

/// The advisory lock every teardown takes, so drops on one instance run one at a time.
const TEARDOWN_QUEUE: &str = "sandpit teardown queue";

/// What a biome's services are given: their database, the role that owns it, its password, and
/// the template the database was cloned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiomeDatabase {
    pub database: String,
    pub role: String,
    pub password: Secret,
    pub template: TemplateName,
}

/// What is under a template's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TemplateState {
    /// Finished by this sandpit: ready to clone.
    Current,
    /// Built by an older sandpit (no record of who owns its objects) or not marked finished.
    Outdated,
}

/// An administrator's connection to the instance (the `postgres` maintenance database).
///
/// After a [`DatabaseError::Timeout`] its connection is closed (so the server rolls back what it
/// had open and releases its locks): connect again. The same happens when a call that holds
/// advisory locks is dropped before it finishes.
pub struct Admin {
    config: Config,
    timeouts: Timeouts,
    client: Client,
    watchdog: Watchdog,
    /// Held by the operation whose advisory locks this connection holds (see the module
    /// documentation).
    one_locked_operation_at_a_time: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("url", &self.watchdog.server.url_redacted)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// A connection with its background task, so closing can wait until the server has seen it go.
struct Session {
    client: Client,
    watchdog: Watchdog,
    connection: JoinHandle<()>,
    /// How long closing waits for the connection to finish before cutting it.
    close_within: Duration,
}

impl Session {
    async fn close(self) {
        drop(self.client);
        let mut connection = self.connection;
        if tokio::time::timeout(self.close_within, &mut connection)
            .await
            .is_err()
        {
            connection.abort();
        }
    }
}

/// The advisory locks one operation holds on an [`Admin`]'s connection.
struct HeldLocks<'a> {
    admin: &'a Admin,
    _one_at_a_time: tokio::sync::MutexGuard<'a, ()>,
    released: bool,
}

impl HeldLocks<'_> {
    /// Releases the locks after the operation under them ended with `error`. When that was a
    /// [`DatabaseError::Timeout`] the server did not answer in time: rather than wait for it a
    /// second time, the connection is closed (which releases them), as after any timeout.
    async fn release_after(self, error: Option<&DatabaseError>) {
        if !matches!(error, Some(DatabaseError::Timeout { .. })) {
            self.release().await;
        }
        // Dropped unreleased: closes the connection.
    }

    /// Releases every advisory lock of the session (only this operation holds any); if the
    /// server does not answer, closes the connection, which releases them too.
    async fn release(mut self) {
        let unlocked = self
            .admin
            .ask(
                "releasing advisory locks",
                self.admin
                    .client
                    .batch_execute("SELECT pg_advisory_unlock_all()"),
            )
            .await;
        // Only now: a release cancelled half-way still closes the connection when dropped.
        self.released = unlocked.is_ok();
    }
}

impl Drop for HeldLocks<'_> {
    fn drop(&mut self) {
        if !self.released {
            // The operation was dropped (cancelled) or its release failed: nothing else would
            // let go of the locks before this Admin is dropped.
            self.admin.watchdog.cut();
        }
    }
}

impl Admin {
    /// Connects with a superuser URL such as `EmbeddedCluster::admin_url`, with the default
    /// [`Timeouts`].
    pub async fn connect(url: &str) -> Result<Admin, DatabaseError> {
        Admin::connect_with(url, Timeouts::default(), None).await
    }

    /// Connects with `timeouts` for everything this `Admin` does. `server_log` is the server's
    /// log file when sandpit knows it (the embedded instance): a [`DatabaseError::Timeout`]
    /// points there.
    pub async fn connect_with(
        url: &str,
        timeouts: Timeouts,
        server_log: Option<&Path>,
    ) -> Result<Admin, DatabaseError> {
        let server = Server {
            url_redacted: RedactedUrl(url).to_string(),
            log: server_log.map(Path::to_owned),
        };
        let config: Config =
            url.parse()
                .map_err(|error: tokio_postgres::Error| DatabaseError::Unreachable {
                    url: server.url_redacted.clone(),
                    message: format!("not a valid connection URL: {error}"),
                })?;
        let session = open(&config, server, timeouts, || "connecting".to_owned()).await?;
        // The connection task ends by itself when `client` is dropped with the Admin (or is
        // cut by the watchdog when a call times out).
        Ok(Admin {
            config,
            timeouts,
            client: session.client,
            watchdog: session.watchdog,
            one_locked_operation_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// The limits this `Admin` works with.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Whether the server answers a query.
    pub(crate) async fn ping(&self) -> Result<(), DatabaseError> {
        self.ask("answering `SELECT 1`", self.client.simple_query("SELECT 1"))
            .await
            .map(|_| ())
    }

    /// Whether a database called `name` exists.
    pub async fn database_exists(&self, name: &str) -> Result<bool, DatabaseError> {
        let row = self
            .ask(
                &format!("looking up database `{name}`"),
                self.client
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]),
            )
            .await?;
        Ok(row.is_some())
    }

    /// The size on disk (`pg_database_size`) of each of `names` that exists, in one round trip
    /// however many are asked for (`sandpit ls` asks for every biome at once); names that do
    /// not exist are absent from the answer.
    pub async fn database_sizes(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, u64>, DatabaseError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self
            .ask(
                &format!("measuring {} databases", names.len()),
                self.client.query(
                    "SELECT datname::text, pg_database_size(oid) FROM pg_database WHERE datname = ANY($1)",
                    &[&names],
                ),
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let size: i64 = row.get(1);
                (row.get::<_, String>(0), size.max(0) as u64)
            })
            .collect())
    }

    /// The template a biome database was cloned from, as recorded when it was created.
    pub async fn template_of(&self, database: &str) -> Result<Option<TemplateName>, DatabaseError> {
        Ok(self.database_comment(database).await?.and_then(|comment| {
            comment
                .strip_prefix(TEMPLATE_COMMENT)
                .map(TemplateName::from_existing)
        }))
    }

    /// The template database for `set`, migrating a new one when none exists for its content
    /// hash. Sets with different contents get different templates side by side.
    ///
    /// The template is built as `<name>_building` (a leftover from a crash is dropped first) and
    /// only renamed and marked as a template once every file applied, so a template that exists
    /// is always complete. Each file runs in its own transaction and is recorded with its
    /// checksum and kind (`migration`, or `seed` for `set.seed`) in `sandpit_migrations`. The
    /// same rules as in place apply: a wrapping `BEGIN; … COMMIT;` is dropped, any other
    /// transaction control refused ([`DatabaseError::TransactionControl`]) before anything runs.
    /// Each statement may take up to [`Timeouts::migration`]. What the files made is then given
    /// to `pg_database_owner`, so that in each clone it is the clone's owner's. A template an
    /// older sandpit built (without the comment that says so) is built again.
    pub async fn ensure_template(
        &self,
        project: &Name,
        set: &MigrationSet,
    ) -> Result<TemplateName, DatabaseError> {
        let prepared = execute::prepare(set.in_order())?;
        let template = names::template_database(project, &set.content_hash());
        // The common case, without taking the lock: the template is there and finished.
        if self.template_state(&template).await? == Some(TemplateState::Current) {
            return Ok(template);
        }
        let lock = self
            .lock(
                template.as_str(),
                &format!("building template `{template}`"),
            )
            .await?;
        let built = self.ensure_template_locked(&template, set, &prepared).await;
        lock.release_after(built.as_ref().err()).await;
        built.map(|()| template)
    }

    async fn ensure_template_locked(
        &self,
        template: &TemplateName,
        set: &MigrationSet,
        prepared: &[Prepared<'_>],
    ) -> Result<(), DatabaseError> {
        let quoted_template = quote_identifier(template.as_str());
        match self.template_state(template).await? {
            Some(TemplateState::Current) => return Ok(()),
            // Built by an older sandpit: its objects are the administrator's, so every clone
            // would need them handed over. Built again under the same name; the biome databases
            // cloned from it keep theirs (they were handed over when they were made).
            Some(TemplateState::Outdated) => {
                self.execute(
                    &format!("ALTER DATABASE {quoted_template} IS_TEMPLATE false"),
                    format!("retiring `{template}`, built by an older sandpit"),
                )
                .await?;
                self.execute(
                    &format!("DROP DATABASE IF EXISTS {quoted_template} WITH (FORCE)"),
                    format!("dropping `{template}`, built by an older sandpit"),
                )
                .await?;
            }
            None => {}
        }
        let building = names::building_database(template.as_str());
        let quoted_building = quote_identifier(&building);
        self.execute(
            &format!("DROP DATABASE IF EXISTS {quoted_building} WITH (FORCE)"),
            format!("removing `{building}` left by an interrupted build"),
        )
        .await?;
        let version: i32 = self
            .ask(
                "reading the server's version",
                self.client
                    .query_one("SELECT current_setting('server_version_num')::int", &[]),
            )
            .await?
            .get(0);
        let owner = if version >= DATABASE_OWNER_SINCE {
            Some("pg_database_owner")
        } else {
            None
        };
        self.execute(
            &format!("CREATE DATABASE {quoted_building} TEMPLATE template0 ENCODING 'UTF8'"),
            format!("creating `{building}`"),
        )
        .await?;
        self.execute(
            &format!("REVOKE ALL ON DATABASE {quoted_building} FROM PUBLIC"),
            format!("revoking access to `{building}`"),
        )
        .await?;

        let built = self.apply_migrations(&building, owner, set, prepared).await;
        let finished = match built {
            Ok(()) => self.finish_template(template, &building, owner).await,
            Err(error) => Err(error),
        };
        if let Err(error) = finished {
            // Best effort: if the server is gone, the next attempt drops it instead. The drop
            // first ends the session that ran the failed migration, which may still be busy
            // until the server notices its client went: it gets a migration's time, not a
            // statement's.
            let _ = self
                .execute_within(
                    self.timeouts.migration.max(self.timeouts.statement),
                    &format!("DROP DATABASE IF EXISTS {quoted_building} WITH (FORCE)"),
                    format!("removing `{building}` after a failed build"),
                )
                .await;
            return Err(error);
        }
        tracing::info!(%template, files = set.files.len(), "built database template");
        Ok(())
    }

    /// The biome's database and role, created from `template` when missing. The caller keeps
    /// `password` in its own state and passes the same one every time; an existing role gets it
    /// (again). An existing database is kept with its data even if it came from another template:
    /// compare [`BiomeDatabase::template`] and drop it to start over.
    ///
    /// The role owns the database, and so, as its `pg_database_owner`, the objects cloned from
    /// the template. Privileges are (re)applied on every call, so a crash half-way is finished by
    /// the next one.
    pub async fn ensure_biome_database(
        &self,
        project: &Name,
        biome: &Name,
        template: &TemplateName,
        password: &Secret,
    ) -> Result<BiomeDatabase, DatabaseError> {
        let database = names::biome_database(project, biome);
        let role = names::biome_role(project, biome);
        let mut clock = StepClock::start("create biome database");
        let lock = self
            .lock(&database, &format!("creating `{database}`"))
            .await?;
        clock.lap("lock");
        let result = self
            .ensure_biome_database_locked(&database, &role, template, password, &mut clock)
            .await;
        lock.release_after(result.as_ref().err()).await;
        clock.lap("unlock");
        let template = result?;
        Ok(BiomeDatabase {
            database,
            role,
            password: password.clone(),
            template,
        })
    }

    async fn ensure_biome_database_locked(
        &self,
        database: &str,
        role: &str,
        template: &TemplateName,
        password: &Secret,
        clock: &mut StepClock,
    ) -> Result<TemplateName, DatabaseError> {
        // Only a SCRAM verifier is sent, so the password never reaches the server's statement
        // logs, even when the statement fails. It takes thousands of hash rounds: worked out on
        // a blocking thread while the server looks up and clones.
        let verifier = tokio::task::spawn_blocking({
            let password = password.clone();
            move || postgres_protocol::password::scram_sha_256(password.expose().as_bytes())
        });
        let quoted_role = quote_identifier(role);
        let quoted_database = quote_identifier(database);
        // What is there already, in one round trip (under the lock, so it stays true).
        let found = self
            .ask(
                &format!("looking up `{database}` and role `{role}`"),
                self.client.query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
                     EXISTS (SELECT 1 FROM pg_database WHERE datname = $2), \
                     (SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                      WHERE datname = $2), \
                     current_setting('server_version_num')::int, \
                     COALESCE((SELECT shobj_description(oid, 'pg_database') = $4 \
                      FROM pg_database WHERE datname = $3), false)",
                    &[
                        &role,
                        &database,
                        &template.as_str(),
                        &DATABASE_OWNER_COMMENT,
                    ],
                ),
            )
            .await?;
        let (role_exists, database_exists) = (found.get::<_, bool>(0), found.get::<_, bool>(1));

        let verb = if role_exists { "ALTER" } else { "CREATE" };
        let role_statement = |verifier: &str| {
            format!(
                "{verb} ROLE {quoted_role} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE \
                 NOREPLICATION NOBYPASSRLS PASSWORD {}",
                quote_literal(verifier)
            )
        };
        let setting_up = format!("setting up role `{role}` and its access to `{database}`");

        let (template, hand_over, sql) = if database_exists {
            let recorded = found
                .get::<_, Option<String>>(2)
                .and_then(|comment| {
                    comment
                        .strip_prefix(TEMPLATE_COMMENT)
                        .map(TemplateName::from_existing)
                })
                .unwrap_or_else(|| template.clone());
            clock.lap("clone");
            // Whatever made it (this sandpit, an older one, a call that crashed half-way),
            // what the administrator still owns in it goes to the role, as after an in-place
            // migration. The role and its access in one transaction (one commit).
            let role_sql = role_statement(&scram_verifier(verifier, password).await);
            let sql = access_statements(database, role, &recorded, Some(&role_sql));
            (recorded, true, sql)
        } else {
            // WAL_LOG copies the template block by block through the WAL. FILE_COPY copies its
            // files but checkpoints the whole shared instance before and after, which took
            // several times longer for a 10 MiB template (`bash scripts/bench.sh database`)
            // and stalls every other biome's writes meanwhile.
            let strategy = if found.get::<_, i32>(3) >= STRATEGY_SINCE {
                " STRATEGY WAL_LOG"
            } else {
                ""
            };
            // Copies the whole template, seed data included: as long as a migration may take.
            let clone_sql = format!(
                "CREATE DATABASE {quoted_database} TEMPLATE {}{strategy}",
                quote_identifier(template.as_str())
            );
            let clone = self.execute_within(
                self.timeouts.migration,
                &clone_sql,
                format!("cloning `{template}` into `{database}`"),
            );
            // The role is made meanwhile, on a session of its own: creating one with a
            // password costs the server thousands of hash rounds (it checks that the password
            // is not empty) and a commit. The clone is the administrator's until the grants
            // that follow: a crash in between leaves a clone without them (or a role without a
            // database), which the next call, or the biome's drop, finishes.
            let role_made = async {
                let session = self.open_maintenance().await?;
                let sql = role_statement(&scram_verifier(verifier, password).await);
                let made = session
                    .watchdog
                    .ask(
                        self.timeouts.statement,
                        &setting_up,
                        session.client.batch_execute(&sql),
                    )
                    .await;
                session.close().await;
                made
            };
            let (cloned, role_made) = tokio::join!(clone, role_made);
            cloned?;
            role_made?;
            // The role was made during the clone: one step.
            clock.lap("clone");
            // A current template's objects belong to `pg_database_owner`, so the clone's belong
            // to whoever owns the clone: the role, a moment from now. One an older sandpit (or
            // an older server) built left them to the administrator: they are handed over, in a
            // session of the clone's own.
            let sql = access_statements(database, role, template, None);
            (template.clone(), !found.get::<_, bool>(4), sql)
        };

        if !hand_over {
            self.execute(&sql, setting_up).await?;
            clock.lap("grants");
            return Ok(template);
        }
        // The session that hands the objects over connects to the clone meanwhile.
        let (granted, session) =
            tokio::join!(self.execute(&sql, setting_up), self.open_database(database),);
        let session = match (granted, session) {
            (Ok(()), Ok(session)) => session,
            (Err(error), Ok(session)) => {
                session.close().await;
                return Err(error);
            }
            (Err(error), Err(_)) | (Ok(()), Err(error)) => return Err(error),
        };
        clock.lap("grants");
        let owned = session
            .watchdog
            .ask(
                self.timeouts.migration,
                &format!("giving `{role}` the objects in `{database}`"),
                hand_over_objects(&session.client, role),
            )
            .await;
        session.close().await;
        owned?;
        clock.lap("hand over objects");
        Ok(template)
    }

    /// Drops the biome's database (disconnecting its sessions) and its role. Idempotent.
    pub async fn drop_biome_database(
        &self,
        project: &Name,
        biome: &Name,
    ) -> Result<(), DatabaseError> {
        let database = names::biome_database(project, biome);
        let role = names::biome_role(project, biome);
        // Every DROP DATABASE forces a checkpoint of the whole shared instance; many biomes torn
        // down at once (an expiry sweep, a CI cleanup) queue here instead of piling checkpoints
        // onto every other biome's traffic.
        let purpose = format!("dropping `{database}`");
        let mut clock = StepClock::start("drop biome database");
        // The queue first, then the database, on one connection: the same order every drop
        // takes them in, so two drops never wait on each other crosswise.
        let locks = self
            .lock_in_order(&[TEARDOWN_QUEUE, &database], &purpose)
            .await?;
        clock.lap("lock");
        let result = self
            .drop_biome_database_locked(project, &database, &role, &mut clock)
            .await;
        locks.release_after(result.as_ref().err()).await;
        clock.lap("unlock");
        result
    }

    async fn drop_biome_database_locked(
        &self,
        project: &Name,
        database: &str,
        role: &str,
        clock: &mut StepClock,
    ) -> Result<(), DatabaseError> {
        let shared = names::shared_database(project);
        // Ends the database's sessions (the terminations in the aggregate, so only for the rows
        // the filter kept) and looks up the rest, in one round trip. Without sessions there is
        // nothing to wait for; a fresh clone has none, since nothing connects to hand it over.
        let found = self
            .ask(
                &format!("disconnecting sessions from `{database}`"),
                self.client.query_one(
                    "SELECT (SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                      WHERE datname = $1), \
                     EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2), \
                     EXISTS (SELECT 1 FROM pg_database WHERE datname = $3)",
                    &[&database, &role, &shared],
                ),
            )
            .await?;
        if found.get::<_, i64>(0) > 0 {
            self.wait_for_sessions_to_end(database).await?;
        }
        self.execute(
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(database)
            ),
            format!("dropping `{database}`"),
        )
        .await?;
        clock.lap("drop database");
        // Nobody else creates or drops this role: it is the database's, and its lock is held.
        if !found.get::<_, bool>(1) {
            return Ok(());
        }
        let quoted_role = quote_identifier(role);
        if found.get::<_, bool>(2) {
            let session = self.open_database(&shared).await?;
            let revoked = session
                .watchdog
                .ask(
                    self.timeouts.statement,
                    &format!("revoking `{role}`'s access to `{shared}`"),
                    session
                        .client
                        .batch_execute(&format!("DROP OWNED BY {quoted_role}")),
                )
                .await;
            session.close().await;
            revoked?;
        }
        // Privileges on databases are shared objects: DROP OWNED in any database revokes them.
        // Both in one transaction (one commit).
        self.execute(
            &format!("DROP OWNED BY {quoted_role}; DROP ROLE IF EXISTS {quoted_role}"),
            format!("revoking what `{role}` was granted and dropping it"),
        )
        .await?;
        clock.lap("drop role");
        Ok(())
    }

    /// Waits (at most [`Timeouts::statement`]) until no session is connected to `database`,
    /// polling every millisecond. `DROP DATABASE` waits for sessions that are still ending (the
    /// ones just terminated, or the one that handed a fresh clone's objects over) itself, but
    /// looks again only every 100 ms. After the limit the drop goes ahead and reports whoever
    /// is still there.
    async fn wait_for_sessions_to_end(&self, database: &str) -> Result<(), DatabaseError> {
        let deadline = tokio::time::Instant::now() + self.timeouts.statement;
        loop {
            let connected: bool = self
                .ask(
                    &format!("waiting for the sessions of `{database}` to end"),
                    self.client.query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = $1)",
                        &[&database],
                    ),
                )
                .await?
                .get(0);
            if !connected || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(SESSION_END_POLL).await;
        }
    }

    /// Loads the project's read-only reference database `<project>_shared` from `sql`, once
    /// per content: it is rebuilt (as `<name>_building`, then swapped in) only when the checksum
    /// recorded on it differs. Roles that could read the old one can read the new one.
    pub async fn ensure_shared_database(
        &self,
        project: &Name,
        sql: &MigrationFile,
    ) -> Result<(), DatabaseError> {
        let prepared = execute::prepare([sql])?.remove(0);
        let shared = names::shared_database(project);
        let lock = self.lock(&shared, &format!("loading `{shared}`")).await?;
        let result = self
            .ensure_shared_database_locked(project, &shared, &prepared)
            .await;
        lock.release_after(result.as_ref().err()).await;
        result
    }

    async fn ensure_shared_database_locked(
        &self,
        project: &Name,
        shared: &str,
        prepared: &Prepared<'_>,
    ) -> Result<(), DatabaseError> {
        let sql = prepared.file;
        let wanted_comment = format!("{SHARED_COMMENT}{}", sql.checksum);
        if self.database_comment(shared).await?.as_deref() == Some(wanted_comment.as_str()) {
            return Ok(());
        }
        let readers = self.roles_with_connect(shared).await?;
        let building = names::building_database(shared);
        let quoted_building = quote_identifier(&building);
        let quoted_shared = quote_identifier(shared);
        self.execute(
            &format!("DROP DATABASE IF EXISTS {quoted_building} WITH (FORCE)"),
            format!("removing `{building}` left by an interrupted load"),
        )
        .await?;
        self.execute(
            &format!("CREATE DATABASE {quoted_building} TEMPLATE template0 ENCODING 'UTF8'"),
            format!("creating `{building}`"),
        )
        .await?;
        let loaded = async {
            self.execute(
                &format!("REVOKE ALL ON DATABASE {quoted_building} FROM PUBLIC"),
                format!("revoking access to `{building}`"),
            )
            .await?;
            let mut session = self.migration_session(&building).await?;
            let applied = apply_file(
                &mut session.client,
                &session.watchdog,
                self.timeouts.migration,
                prepared,
                None,
            )
            .await;
            session.close().await;
            applied.map_err(|failure| failure.into_build_error(&building, sql))?;
            self.execute(
                &format!(
                    "BEGIN; \
                     ALTER DATABASE {quoted_building} SET default_transaction_read_only = on; \
                     COMMENT ON DATABASE {quoted_building} IS {}; \
                     COMMIT",
                    quote_literal(&wanted_comment)
                ),
                format!("making `{building}` read-only"),
            )
            .await
        }
        .await;
        if let Err(error) = loaded {
            let _ = self
                .execute(
                    &format!("DROP DATABASE IF EXISTS {quoted_building} WITH (FORCE)"),
                    format!("removing `{building}` after a failed load"),
                )
                .await;
            return Err(error);
        }
        self.execute(
            &format!("DROP DATABASE IF EXISTS {quoted_shared} WITH (FORCE)"),
            format!("dropping the previous `{shared}`"),
        )
        .await?;
        self.execute(
            &format!("ALTER DATABASE {quoted_building} RENAME TO {quoted_shared}"),
            format!("renaming `{building}` to `{shared}`"),
        )
        .await?;
        for reader in readers {
            self.grant_shared_read_unlocked(project, &reader).await?;
        }
        tracing::info!(database = %shared, "loaded shared database");
        Ok(())
    }

    /// Lets `role` connect to the project's shared database and `SELECT` from the tables in its
    /// `public` schema — nothing else, so writes are refused by PostgreSQL's permissions.
    pub async fn grant_shared_read(&self, project: &Name, role: &str) -> Result<(), DatabaseError> {
        let shared = names::shared_database(project);
        let lock = self
            .lock(
                &shared,
                &format!("granting `{role}` read access to `{shared}`"),
            )
            .await?;
        let result = self.grant_shared_read_unlocked(project, role).await;
        lock.release_after(result.as_ref().err()).await;
        result
    }

    async fn grant_shared_read_unlocked(
        &self,
        project: &Name,
        role: &str,
    ) -> Result<(), DatabaseError> {
        let shared = names::shared_database(project);
        if !self.database_exists(&shared).await? {
            return Err(DatabaseError::Sql {
                context: format!("granting `{role}` read access to `{shared}`"),
                message: "the shared database does not exist; load it first".to_owned(),
            });
        }
        let quoted_role = quote_identifier(role);
        self.execute(
            &format!(
                "GRANT CONNECT ON DATABASE {} TO {quoted_role}",
                quote_identifier(&shared)
            ),
            format!("granting `{role}` CONNECT on `{shared}`"),
        )
        .await?;
        let session = self.open_database(&shared).await?;
        let granted = session
            .watchdog
            .ask(
                self.timeouts.statement,
                &format!("granting `{role}` SELECT in `{shared}`"),
                session.client.batch_execute(&format!(
                    "GRANT USAGE ON SCHEMA public TO {quoted_role}; \
                     GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quoted_role}"
                )),
            )
            .await;
        session.close().await;
        granted
    }

    /// Revokes `PUBLIC`'s `CONNECT` on the maintenance databases `initdb` made (`postgres`,
    /// `template1`), so biome roles can connect to their own database and nothing else. For the
    /// embedded cluster, which sandpit owns entirely; leave an external instance alone.
    pub async fn restrict_maintenance_databases(&self) -> Result<(), DatabaseError> {
        self.execute(
            "REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC",
            "revoking PUBLIC access to the maintenance databases",
        )
        .await
    }

    /// Runs the template's files in `building`, then gives what they made to `owner` (if any).
    async fn apply_migrations(
        &self,
        building: &str,
        owner: Option<&str>,
        set: &MigrationSet,
        prepared: &[Prepared<'_>],
    ) -> Result<(), DatabaseError> {
        let mut session = self.migration_session(building).await?;
        let limit = self.timeouts.migration;
        let applied = async {
            session
                .watchdog
                .ask(
                    limit,
                    &format!("creating sandpit_migrations in `{building}`"),
                    history::create(&session.client),
                )
                .await?;
            for prepared in prepared {
                let is_seed = set
                    .seed
                    .as_ref()
                    .is_some_and(|seed| std::ptr::eq(seed, prepared.file));
                let kind = if is_seed {
                    MigrationKind::Seed
                } else {
                    MigrationKind::Migration
                };
                apply_file(
                    &mut session.client,
                    &session.watchdog,
                    limit,
                    prepared,
                    Some(kind),
                )
                .await
                .map_err(|failure| failure.into_build_error(building, prepared.file))?;
            }
            match owner {
                Some(owner) => {
                    session
                        .watchdog
                        .ask(
                            limit,
                            &format!("giving `{owner}` the objects in `{building}`"),
                            hand_over_objects(&session.client, owner),
                        )
                        .await
                }
                None => Ok(()),
            }
        }
        .await;
        session.close().await;
        applied
    }

    /// Renames `building` to `template`, marks it as a template nobody may connect to and
    /// records who owns its objects (`owner`, or still the administrator), in one transaction.
    async fn finish_template(
        &self,
        template: &TemplateName,
        building: &str,
        owner: Option<&str>,
    ) -> Result<(), DatabaseError> {
        let comment = match owner {
            Some(_) => DATABASE_OWNER_COMMENT,
            None => ADMINISTRATOR_COMMENT,
        };
        let quoted_template = quote_identifier(template.as_str());
        self.execute(
            &format!(
                "BEGIN; \
                 ALTER DATABASE {} RENAME TO {quoted_template}; \
                 ALTER DATABASE {quoted_template} IS_TEMPLATE true ALLOW_CONNECTIONS false; \
                 REVOKE ALL ON DATABASE {quoted_template} FROM PUBLIC; \
                 COMMENT ON DATABASE {quoted_template} IS {}; \
                 COMMIT",
                quote_identifier(building),
                quote_literal(comment),
            ),
            format!("marking `{template}` as a template"),
        )
        .await
    }

    /// `None` when there is no such database.
    async fn template_state(
        &self,
        template: &TemplateName,
    ) -> Result<Option<TemplateState>, DatabaseError> {
        let row = self
            .ask(
                &format!("looking up template `{template}`"),
                self.client.query_opt(
                    "SELECT datistemplate AND NOT datallowconn, \
                     shobj_description(oid, 'pg_database') IN ($2, $3) \
                     FROM pg_database WHERE datname = $1",
                    &[
                        &template.as_str(),
                        &DATABASE_OWNER_COMMENT,
                        &ADMINISTRATOR_COMMENT,
                    ],
                ),
            )
            .await?;
        Ok(row.map(|row| {
            let finished: bool = row.get(0);
            let owned: Option<bool> = row.get(1);
            if finished && owned == Some(true) {
                TemplateState::Current
            } else {
                TemplateState::Outdated
            }
        }))
    }

    async fn database_comment(&self, database: &str) -> Result<Option<String>, DatabaseError> {
        let row = self
            .ask(
                &format!("reading the comment on `{database}`"),
                self.client.query_opt(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                    &[&database],
                ),
            )
            .await?;
        Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
    }

    /// Roles other than the administrator granted `CONNECT` on `database` (none if it is missing).
    async fn roles_with_connect(&self, database: &str) -> Result<Vec<String>, DatabaseError> {
        let rows = self
            .ask(
                &format!("listing the readers of `{database}`"),
                self.client.query(
                    "SELECT DISTINCT r.rolname::text \
                     FROM pg_database d, aclexplode(d.datacl) acl \
                     JOIN pg_roles r ON r.oid = acl.grantee \
                     WHERE d.datname = $1 AND acl.privilege_type = 'CONNECT' AND r.rolname <> $2",
                    &[&database, &ADMIN_USER],
                ),
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// One call on the administrator's connection, bounded by [`Timeouts::statement`].
    async fn ask<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DatabaseError> {
        self.watchdog.ask(self.timeouts.statement, what, call).await
    }

    /// Runs utility statements (as one simple query; several statements form one transaction).
    async fn execute(&self, sql: &str, context: impl Into<String>) -> Result<(), DatabaseError> {
        self.execute_within(self.timeouts.statement, sql, context)
            .await
    }

    /// [`Admin::execute`] with a limit of its own, for statements that may take long.
    async fn execute_within(
        &self,
        limit: Duration,
        sql: &str,
        context: impl Into<String>,
    ) -> Result<(), DatabaseError> {
        self.watchdog
            .ask(limit, &context.into(), self.client.batch_execute(sql))
            .await
    }

    /// The advisory lock for `name`, taken for `purpose` (what the caller is doing, for
    /// messages) on this `Admin`'s connection; [`HeldLocks::release`] releases it.
    ///
    /// `pg_advisory_lock` waits in PostgreSQL's lock queue, so waiters are served in order, and
    /// `lock_timeout`, set for that statement alone, makes it give up after
    /// [`Timeouts::advisory_lock`] ([`DatabaseError::LockBusy`]); a server that does not answer
    /// at all is cut off a statement's time after that ([`DatabaseError::Timeout`]). Another
    /// operation of this `Admin` holding locks is waited for as long.
    async fn lock(&self, name: &str, purpose: &str) -> Result<HeldLocks<'_>, DatabaseError> {
        self.lock_in_order(&[name], purpose).await
    }

    /// [`Admin::lock`] for several names, taken one after the other in the order given.
    async fn lock_in_order(
        &self,
        lock_names: &[&str],
        purpose: &str,
    ) -> Result<HeldLocks<'_>, DatabaseError> {
        let wait = self.timeouts.advisory_lock;
        let busy = |name: &str| DatabaseError::LockBusy {
            purpose: purpose.to_owned(),
            name: name.to_owned(),
            after: wait,
            url_redacted: self.watchdog.server.url_redacted.clone(),
        };
        let first = lock_names.first().copied().unwrap_or_default();
        let one_at_a_time = tokio::time::timeout(wait, self.one_locked_operation_at_a_time.lock())
            .await
            .map_err(|_elapsed| busy(first))?;
        let held = HeldLocks {
            admin: self,
            _one_at_a_time: one_at_a_time,
            released: false,
        };
        for name in lock_names {
            // One simple query, so one implicit transaction: when the lock is not granted the
            // settings roll back with it; when it is, they are reset to the session's own. The
            // wait is bounded by lock_timeout alone, whatever the role's statement_timeout.
            let statement = format!(
                "SET lock_timeout = {}; SET statement_timeout = 0; \
                 SELECT pg_advisory_lock({}); \
                 RESET lock_timeout; RESET statement_timeout",
                quote_literal(&setting_millis(wait)),
                names::advisory_lock_key(name),
            );
            let locked = self
                .watchdog
                .answer(
                    wait.saturating_add(self.timeouts.statement),
                    || format!("{purpose} (waiting for the lock on `{name}`)"),
                    self.client.batch_execute(&statement),
                )
                .await;
            let error = match locked {
                Ok(Ok(())) => continue,
                Err(timeout) => timeout,
                Ok(Err(error)) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => busy(name),
                Ok(Err(error)) => {
                    DatabaseError::sql(format!("{purpose}: locking `{name}`"), &error)
                }
            };
            // Releases the ones taken before this one.
            held.release_after(Some(&error)).await;
            return Err(error);
        }
        Ok(held)
    }

    /// A second administrator's session in the maintenance database this `Admin` is connected
    /// to, for work that overlaps with what its own connection is busy with.
    async fn open_maintenance(&self) -> Result<Session, DatabaseError> {
        open(
            &self.config,
            self.watchdog.server.clone(),
            self.timeouts,
            || "connecting a second session".to_owned(),
        )
        .await
    }

    /// An administrator's session in `database`, writable even in the read-only shared database
    /// (a session option, since a `SET` in the same query string would come too late).
    async fn open_database(&self, database: &str) -> Result<Session, DatabaseError> {
        self.open_database_with(database, &[]).await
    }

    /// [`Admin::open_database`] for running migration files: the server cancels any statement
    /// that runs longer than [`Timeouts::migration`] itself (releasing its locks), rather than
    /// finishing work sandpit has stopped waiting for.
    async fn migration_session(&self, database: &str) -> Result<Session, DatabaseError> {
        self.open_database_with(
            database,
            &[("statement_timeout", setting_millis(self.timeouts.migration))],
        )
        .await
    }

    async fn open_database_with(
        &self,
        database: &str,
        settings: &[(&str, String)],
    ) -> Result<Session, DatabaseError> {
        let mut all = vec![("default_transaction_read_only", "off".to_owned())];
        all.extend(settings.iter().cloned());
        let mut config = with_settings(&self.config, &all);
        config.dbname(database);
        let server = Server {
            url_redacted: format!(
                "{} (database `{database}`)",
                self.watchdog.server.url_redacted
            ),
            log: self.watchdog.server.log.clone(),
        };
        open(&config, server, self.timeouts, || {
            format!("connecting to `{database}`")
        })
        .await
    }
}

/// `config` with `-c name=value` added to its startup options (after any the URL had, so these
/// win).
fn with_settings(config: &Config, settings: &[(&str, String)]) -> Config {
    let mut config = config.clone();
    let mut options = config.get_options().unwrap_or_default().to_owned();
    for (name, value) in settings {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!("-c {name}={value}"));
    }
    config.options(&options);
    config
}

/// Connects within [`Timeouts::connect`]: tokio-postgres' `connect_timeout` bounds the TCP
/// connection, the outer deadline the startup and authentication a wedged server never answers.
async fn open(
    config: &Config,
    server: Server,
    timeouts: Timeouts,
    what: impl FnOnce() -> String,
) -> Result<Session, DatabaseError> {
    let mut config = config.clone();
    config.connect_timeout(timeouts.connect);
    let connected = tokio::time::timeout(timeouts.connect, config.connect(NoTls))
        .await
        .map_err(|_elapsed| server.timeout(what(), timeouts.connect))?;
    let (client, connection) = connected.map_err(|error| DatabaseError::Unreachable {
        url: server.url_redacted.clone(),
        message: describe(&error),
    })?;
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "PostgreSQL connection ended with an error");
        }
    });
    Ok(Session {
        client,
        watchdog: Watchdog::new(server, connection.abort_handle()),
        connection,
        close_within: timeouts.statement,
    })
}

/// Applies one file in a transaction of its own and, when `record_as` is given, records it in
/// `sandpit_migrations` in the same transaction. Each round trip waits at most `limit`.
async fn apply_file(
    client: &mut Client,
    watchdog: &Watchdog,
    limit: Duration,
    prepared: &Prepared<'_>,
    record_as: Option<MigrationKind>,
) -> Result<(), Failure> {
    let transaction = watchdog
        .answer(
            limit,
            || "opening a transaction".to_owned(),
            execute::begin(client, None),
        )
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements("opening a transaction", &error))?;
    execute::run(transaction.client(), watchdog, limit, prepared).await?;
    if let Some(kind) = record_as {
        let file = prepared.file;
        watchdog
            .answer(
                limit,
                || "recording it in sandpit_migrations".to_owned(),
                history::record(transaction.client(), &file.name, &file.checksum, kind),
            )
            .await
            .map_err(Failure::unanswered)?
            .map_err(|error| {
                Failure::after_statements("recording it in sandpit_migrations", &error)
            })?;
    }
    watchdog
        .answer(limit, || "committing it".to_owned(), transaction.commit())
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements("committing it", &error))
}

/// The transaction that gives `database` to `role`: the record of its template, ownership
/// (which makes the role `pg_database_owner` there) and `CONNECT` for the role alone, after
/// `role_statement` when given. Grants and comments are not copied from a template: they are
/// set on each clone.
fn access_statements(
    database: &str,
    role: &str,
    template: &TemplateName,
    role_statement: Option<&str>,
) -> String {
    let role_statement = role_statement
        .map(|statement| format!("{statement};"))
        .unwrap_or_default();
    let quoted_database = quote_identifier(database);
    let quoted_role = quote_identifier(role);
    format!(
        "BEGIN; {role_statement} \
         COMMENT ON DATABASE {quoted_database} IS {}; \
         ALTER DATABASE {quoted_database} OWNER TO {quoted_role}; \
         REVOKE ALL ON DATABASE {quoted_database} FROM PUBLIC; \
         GRANT CONNECT, TEMPORARY ON DATABASE {quoted_database} TO {quoted_role}; \
         COMMIT",
        quote_literal(&format!("{TEMPLATE_COMMENT}{template}")),
    )
}

/// The SCRAM verifier `verifier` (a blocking task) worked out for `password`, or, if that task
/// is gone (which happens only with the runtime's blocking pool), one worked out here.
async fn scram_verifier(verifier: JoinHandle<String>, password: &Secret) -> String {
    match verifier.await {
        Ok(verifier) => verifier,
        Err(_) => postgres_protocol::password::scram_sha_256(password.expose().as_bytes()),
    }
}

/// Gives `role` every schema, relation, routine and type the administrator owns in the database
/// `client` is connected to (what the template's migrations created). `REASSIGN OWNED BY
/// sandpit_admin` cannot be used: the administrator also owns the system catalogs.
///
/// One `DO` block, so one round trip and (outside a transaction) one commit, however many
/// objects there are; the server formats every name (`%I`, `regprocedure`, `regtype`).
async fn hand_over_objects(client: &Client, role: &str) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("DO {}", quote_literal(&hand_over_block(role))))
        .await
}

/// The PL/pgSQL body of [`hand_over_objects`].
fn hand_over_block(role: &str) -> String {
    let user_schemas = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";
    // Objects that belong to an extension stay with it (the extension is the administrator's).
    let not_in_extension = |class: &str, alias: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass \
             AND d.objid = {alias}.oid AND d.deptype = 'e')"
        )
    };
    let relations = |kinds: &str| {
        format!(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relowner = administrator AND c.relkind IN {kinds} AND {user_schemas} \
             AND {}",
            not_in_extension("pg_class", "c")
        )
    };
    let relation_kind = "CASE item.relkind WHEN 'v' THEN 'VIEW' \
                         WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' \
                         WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END";
    format!(
        "DECLARE \
           target text := {target}; \
           administrator oid := (SELECT oid FROM pg_roles WHERE rolname = current_user); \
           item record; \
         BEGIN \
           REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
           EXECUTE format('ALTER SCHEMA public OWNER TO %I', target); \
           FOR item IN SELECT n.nspname FROM pg_namespace n \
               WHERE n.nspowner = administrator AND {user_schemas} LOOP \
             EXECUTE format('ALTER SCHEMA %I OWNER TO %I', item.nspname, target); \
           END LOOP; \
           /* Tables first: that also hands over the sequences their columns own, which \
              cannot be changed on their own; the second pass finds only free-standing ones. */ \
           FOR item IN {tables} LOOP \
             EXECUTE format('ALTER %s %I.%I OWNER TO %I', {relation_kind}, \
               item.nspname, item.relname, target); \
           END LOOP; \
           FOR item IN {sequences} LOOP \
             EXECUTE format('ALTER %s %I.%I OWNER TO %I', {relation_kind}, \
               item.nspname, item.relname, target); \
           END LOOP; \
           /* Routines and free-standing types. */ \
           FOR item IN \
               SELECT p.prokind::text AS kind, p.oid::regprocedure::text AS signature \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
               WHERE p.proowner = administrator AND {user_schemas} AND {proc_not_in_extension} \
               UNION ALL \
               SELECT CASE t.typtype WHEN 'd' THEN 'd' ELSE 't' END, t.oid::regtype::text \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
               WHERE t.typowner = administrator AND {user_schemas} AND {type_not_in_extension} \
               AND (t.typtype IN ('e', 'r', 'd') \
                    OR (t.typtype = 'c' \
                        AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) \
           LOOP \
             EXECUTE format('ALTER %s %s OWNER TO %I', \
               CASE item.kind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' \
                 WHEN 'd' THEN 'DOMAIN' WHEN 't' THEN 'TYPE' ELSE 'FUNCTION' END, \
               item.signature, target); \
           END LOOP; \
         END",
        target = quote_literal(role),
        tables = relations("('r', 'p', 'v', 'm', 'f')"),
        sequences = relations("('S')"),
        proc_not_in_extension = not_in_extension("pg_proc", "p"),
        type_not_in_extension = not_in_extension("pg_type", "t"),
    )
}
