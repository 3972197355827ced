//! Bringing a long-lived database forward in place: what it has applied, what a commit would add,
//! a rehearsal on its live data that is always rolled back, and the real application.
//!
//! The rehearsal runs on the live database because a throw-away copy cannot be made while it is
//! in use: `CREATE DATABASE … TEMPLATE` refuses a source with open connections, and the
//! environment's services are connected. DDL takes locks the running services feel, so the
//! rehearsal and the application run with a `lock_timeout` and give up clearly rather than queue
//! in front of the services (a waiting `ALTER TABLE` makes every later query of the table wait
//! behind it).

use std::time::Duration;

use sandpit_domain::Name;
use tokio_postgres::Client;

use super::{hand_over_objects, Admin, Session};
use crate::error::DatabaseError;
use crate::execute::{self, Failure, Prepared};
use crate::history;
use crate::migrations::{MigrationFile, MigrationSet};
use crate::names;
use crate::plan::{self, AppliedMigration, MigrationKind, MigrationPlan};
use crate::timeouts::Watchdog;

impl Admin {
    /// What `database`'s `sandpit_migrations` records, oldest first. Read-only: a database
    /// without the table has nothing applied, and an older table without `kind` reads as all
    /// migrations ([`Admin::plan_migrations`] brings it forward).
    pub async fn applied_migrations(
        &self,
        database: &str,
    ) -> Result<Vec<AppliedMigration>, DatabaseError> {
        self.require_database(database).await?;
        let session = self.open_database(database).await?;
        let applied = read_history(&session, self.timeouts.statement, database).await;
        session.close().await;
        applied
    }

    /// How `database` compares with `set` (see [`plan::plan`]).
    ///
    /// Under the database's lock it first brings `sandpit_migrations` forward: creates it where
    /// it is missing, and adds `kind` to a table made by an older sandpit, marking the row of
    /// `set.seed` (when the set has one) as the seed so that it never takes part in the
    /// comparison.
    pub async fn plan_migrations(
        &self,
        database: &str,
        set: &MigrationSet,
    ) -> Result<MigrationPlan, DatabaseError> {
        self.require_database(database).await?;
        let lock = self
            .lock(
                database,
                &format!("comparing `{database}` with the migrations"),
            )
            .await?;
        let applied = self.bring_forward_and_read(database, set).await;
        lock.release_after(applied.as_ref().err()).await;
        Ok(plan::plan(&applied?, set))
    }

    async fn bring_forward_and_read(
        &self,
        database: &str,
        set: &MigrationSet,
    ) -> Result<Vec<AppliedMigration>, DatabaseError> {
        let mut session = self.open_database(database).await?;
        let seed = set.seed.as_ref().map(|seed| seed.name.as_str());
        let limit = self.timeouts.statement;
        let brought = session
            .watchdog
            .ask(
                limit,
                &format!("bringing sandpit_migrations in `{database}` forward"),
                history::bring_forward(&mut session.client, seed),
            )
            .await;
        let applied = match brought {
            Ok(()) => read_history(&session, limit, database).await,
            Err(error) => Err(error),
        };
        session.close().await;
        applied
    }

    /// Tries `files` against `database`'s real data without keeping anything: all of them, in
    /// order, in ONE transaction on the live database that is always rolled back. Succeeding
    /// means they applied to the data as it is now; failing returns
    /// [`DatabaseError::RehearsalFailed`] (file, line, PostgreSQL's message) and changes nothing.
    ///
    /// Every lock waits at most `lock_timeout` ([`DatabaseError::LockTimeout`] otherwise); locks
    /// taken are held until the rollback, so a rehearsal of slow DDL is felt by the services as
    /// the real thing would be. Transaction control in a file is refused before anything runs,
    /// and after every statement the transaction is checked to be still open. Runs under the
    /// database's lock; files applied meanwhile (same contents) are left out, changed ones
    /// refused. Not rolled back, as in PostgreSQL generally: values drawn from sequences.
    pub async fn rehearse(
        &self,
        database: &str,
        files: &[MigrationFile],
        lock_timeout: Duration,
    ) -> Result<(), DatabaseError> {
        let prepared = execute::prepare(files)?;
        if prepared.is_empty() {
            return Ok(());
        }
        self.require_database(database).await?;
        let lock = self
            .lock(database, &format!("rehearsing migrations on `{database}`"))
            .await?;
        let result = self
            .rehearse_locked(database, &prepared, lock_timeout)
            .await;
        lock.release_after(result.as_ref().err()).await;
        if result.is_ok() {
            tracing::info!(database, files = prepared.len(), "rehearsed migrations");
        }
        result
    }

    async fn rehearse_locked(
        &self,
        database: &str,
        prepared: &[Prepared<'_>],
        lock_timeout: Duration,
    ) -> Result<(), DatabaseError> {
        let mut session = self.migration_session(database).await?;
        let limits = Limits {
            watchdog: &session.watchdog,
            round_trip: self.timeouts.migration,
            lock_timeout,
        };
        let result = rehearse_in(&mut session.client, limits, database, prepared).await;
        // Closing the connection also ends a transaction a failed rollback left open.
        session.close().await;
        result
    }

    /// Applies `files` (the plan's pending ones) to the biome's existing database, keeping its
    /// data: each file in a transaction of its own together with its `sandpit_migrations` row
    /// (kind `migration`) and the hand-over of what it created to the biome's role, so the role
    /// owns the new objects as it owns the cloned ones. Returns the files applied, in order.
    ///
    /// Under the database's lock, what is applied is read again: a file another caller applied
    /// meanwhile is left out (never applied twice), a changed one refused
    /// ([`DatabaseError::MigrationChanged`]) before anything runs, as is transaction control in
    /// any file. Every lock waits at most `lock_timeout`. A failing file is rolled back
    /// entirely; the error ([`DatabaseError::InPlaceMigrationFailed`],
    /// [`DatabaseError::LockTimeout`]) names it, the line and PostgreSQL's message, and lists
    /// the files before it that stay applied. A statement that runs longer than
    /// [`crate::Timeouts::migration`] fails the file the same way ([`DatabaseError::Timeout`]):
    /// the server cancels it, or sandpit closes the connection, and either rolls the file back.
    pub async fn apply_in_place(
        &self,
        project: &Name,
        biome: &Name,
        files: &[MigrationFile],
        lock_timeout: Duration,
    ) -> Result<Vec<String>, DatabaseError> {
        let database = names::biome_database(project, biome);
        let role = names::biome_role(project, biome);
        let prepared = execute::prepare(files)?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.require_database(&database).await?;
        let lock = self
            .lock(&database, &format!("migrating `{database}` in place"))
            .await?;
        let result = self
            .apply_in_place_locked(&database, &role, &prepared, lock_timeout)
            .await;
        lock.release_after(result.as_ref().err()).await;
        if let Ok(applied) = &result {
            tracing::info!(%database, files = ?applied, "applied migrations in place");
        }
        result
    }

    async fn apply_in_place_locked(
        &self,
        database: &str,
        role: &str,
        prepared: &[Prepared<'_>],
        lock_timeout: Duration,
    ) -> Result<Vec<String>, DatabaseError> {
        let mut session = self.migration_session(database).await?;
        let limits = Limits {
            watchdog: &session.watchdog,
            round_trip: self.timeouts.migration,
            lock_timeout,
        };
        let result = apply_in(&mut session.client, limits, database, role, prepared).await;
        session.close().await;
        result
    }

    async fn require_database(&self, database: &str) -> Result<(), DatabaseError> {
        if self.database_exists(database).await? {
            Ok(())
        } else {
            Err(DatabaseError::DatabaseMissing {
                database: database.to_owned(),
            })
        }
    }
}

/// How long the calls of a rehearsal or an in-place application may wait.
#[derive(Clone, Copy)]
struct Limits<'a> {
    watchdog: &'a Watchdog,
    /// Each round trip ([`crate::Timeouts::migration`]).
    round_trip: Duration,
    /// Each lock the migrations' statements take (the caller's).
    lock_timeout: Duration,
}

async fn rehearse_in(
    client: &mut Client,
    limits: Limits<'_>,
    database: &str,
    prepared: &[Prepared<'_>],
) -> Result<(), DatabaseError> {
    let watchdog = limits.watchdog;
    let applied = watchdog
        .ask(
            limits.round_trip,
            &format!("reading sandpit_migrations in `{database}`"),
            history::read(client),
        )
        .await?;
    let to_run = still_to_run(&applied, prepared, database)?;
    let starting = format!("starting a rehearsal on `{database}`");
    let transaction = watchdog
        .ask(
            limits.round_trip,
            &starting,
            execute::begin(client, Some(limits.lock_timeout)),
        )
        .await?;
    let mut outcome = Ok(());
    for prepared in to_run {
        if let Err(failure) =
            execute::run(transaction.client(), watchdog, limits.round_trip, prepared).await
        {
            outcome =
                Err(failure.into_rehearsal_error(database, prepared.file, limits.lock_timeout));
            break;
        }
    }
    // If the server does not answer, the watchdog closes the connection, which rolls back too.
    let rolled_back = watchdog
        .ask(
            limits.round_trip,
            &format!("rolling back the rehearsal on `{database}`"),
            transaction.rollback(),
        )
        .await;
    outcome?;
    rolled_back
}

async fn apply_in(
    client: &mut Client,
    limits: Limits<'_>,
    database: &str,
    role: &str,
    prepared: &[Prepared<'_>],
) -> Result<Vec<String>, DatabaseError> {
    let watchdog = limits.watchdog;
    watchdog
        .ask(
            limits.round_trip,
            &format!("bringing sandpit_migrations in `{database}` forward"),
            history::bring_forward(client, None),
        )
        .await?;
    let applied = watchdog
        .ask(
            limits.round_trip,
            &format!("reading sandpit_migrations in `{database}`"),
            history::read(client),
        )
        .await?;
    let to_run = still_to_run(&applied, prepared, database)?;
    let mut done = Vec::new();
    for prepared in to_run {
        if let Err(failure) = apply_one(client, limits, prepared, role).await {
            return Err(failure.into_in_place_error(
                database,
                prepared.file,
                limits.lock_timeout,
                done,
            ));
        }
        done.push(prepared.file.name.clone());
    }
    Ok(done)
}

/// One file, the hand-over of what it created and its record, committed together or not at all.
async fn apply_one(
    client: &mut Client,
    limits: Limits<'_>,
    prepared: &Prepared<'_>,
    role: &str,
) -> Result<(), Failure> {
    let (watchdog, limit) = (limits.watchdog, limits.round_trip);
    let transaction = watchdog
        .answer(
            limit,
            || "opening a transaction".to_owned(),
            execute::begin(client, Some(limits.lock_timeout)),
        )
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements("opening a transaction", &error))?;
    execute::run(transaction.client(), watchdog, limit, prepared).await?;
    let handing_over = format!("giving `{role}` what it created");
    watchdog
        .answer(
            limit,
            || handing_over.clone(),
            hand_over_objects(transaction.client(), role),
        )
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements(&handing_over, &error))?;
    let file = prepared.file;
    watchdog
        .answer(
            limit,
            || "recording it in sandpit_migrations".to_owned(),
            history::record(
                transaction.client(),
                &file.name,
                &file.checksum,
                MigrationKind::Migration,
            ),
        )
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements("recording it in sandpit_migrations", &error))?;
    watchdog
        .answer(limit, || "committing it".to_owned(), transaction.commit())
        .await
        .map_err(Failure::unanswered)?
        .map_err(|error| Failure::after_statements("committing it", &error))
}

/// The prepared files `applied` does not have yet; a changed one refuses them all.
fn still_to_run<'p, 'a>(
    applied: &[AppliedMigration],
    prepared: &'p [Prepared<'a>],
    database: &str,
) -> Result<Vec<&'p Prepared<'a>>, DatabaseError> {
    let mut to_run = Vec::new();
    for candidate in prepared {
        let runs = plan::needs_to_run(applied, candidate.file)
            .map_err(|changed| changed.into_error(database))?;
        if runs {
            to_run.push(candidate);
        }
    }
    Ok(to_run)
}

async fn read_history(
    session: &Session,
    limit: Duration,
    database: &str,
) -> Result<Vec<AppliedMigration>, DatabaseError> {
    session
        .watchdog
        .ask(
            limit,
            &format!("reading sandpit_migrations in `{database}`"),
            history::read(&session.client),
        )
        .await
}
