//! What can go wrong with databases, each message saying what, where and what to do.

use std::path::PathBuf;
use std::time::Duration;

/// Everything this crate can fail with. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql` (or set \
         SANDPIT_PG_BIN to the directory holding them)\nhint: run `sandpit doctor` to check every \
         prerequisite"
    )]
    BinariesMissing,

    /// `SANDPIT_PG_BIN` names a directory without the server programs; nothing else is tried.
    #[error(
        "SANDPIT_PG_BIN is {}, which does not hold PostgreSQL's server binaries (initdb, \
         postgres)\nhint: point it at the `bin` directory of a PostgreSQL installation, or unset \
         it to look on PATH and under /usr/lib/postgresql/*/bin; run `sandpit doctor` to check \
         every prerequisite",
        dir.display()
    )]
    BinariesMissingIn { dir: PathBuf },

    #[error(
        "sandpit runs as root, which PostgreSQL refuses, and there is no unprivileged `postgres` \
         user to run it as; create one (`apt-get install -y postgresql` does) or run sandpit as a \
         normal user"
    )]
    NoUnprivilegedUser,

    #[error("could not {action} `{}`: {message}", path.display())]
    StateIo {
        action: &'static str,
        path: PathBuf,
        message: String,
    },

    #[error(
        "`{}` exists but is not a PostgreSQL data directory (no PG_VERSION); move it away so \
         sandpit can initialise a fresh one",
        path.display()
    )]
    ForeignDataDirectory { path: PathBuf },

    #[error(
        "initialising the PostgreSQL cluster in `{}` failed; make sure every parent directory is \
         traversable by the user running PostgreSQL. initdb said:\n{log_tail}",
        data_dir.display()
    )]
    InitFailed { data_dir: PathBuf, log_tail: String },

    #[error(
        "PostgreSQL at {url} cannot be reached: {message}; check that the server is running \
         (its log is under sandpit's state directory)"
    )]
    Unreachable { url: String, message: String },

    #[error(
        "PostgreSQL at {url_redacted} did not answer within {after:?} while {what}; is it \
         running?{}\nhint: a stopped or overloaded server makes every call wait; run the command \
         again once it answers (PostgreSQL rolls back whatever a timed-out call left unfinished)",
        its_log(server_log.as_deref())
    )]
    Timeout {
        /// What sandpit was doing, e.g. "dropping `geo_alice`".
        what: String,
        after: Duration,
        url_redacted: String,
        /// The server's log file, when sandpit runs the server (the embedded instance).
        server_log: Option<PathBuf>,
    },

    #[error(
        "{purpose} waited {after:?} for the lock on `{name}` at {url_redacted}, which another \
         sandpit operation (a template build, a migration or a drop) still holds; nothing was \
         changed\nhint: run the command again once that operation has finished; a sandpit that \
         was killed releases its locks when its connection closes"
    )]
    LockBusy {
        /// What needed the lock, e.g. "dropping `geo_alice`".
        purpose: String,
        name: String,
        after: Duration,
        url_redacted: String,
    },

    #[error(
        "another sandpit has been preparing the PostgreSQL cluster in `{}` for {after:?} and \
         is not done; nothing was changed\nhint: let it finish and run again; a sandpit process \
         that holds `{}` without progressing (one stopped with Ctrl-Z) must be resumed or ended \
         first",
        state_dir.display(),
        lock_file.display()
    )]
    InitBusy {
        state_dir: PathBuf,
        lock_file: PathBuf,
        after: Duration,
    },

    #[error("migration `{file}`{} failed: {message}; fix the file and run again", at_line(*line))]
    MigrationFailed {
        file: String,
        line: Option<u32>,
        message: String,
    },

    #[error(
        "migration `{file}` was changed after it was applied to `{database}` (applied with \
         sha256 {applied_checksum}, the commit has {commit_checksum}); applied migrations are \
         never re-run or skipped\nhint: restore the file as it was and put the change in a new \
         migration"
    )]
    MigrationChanged {
        database: String,
        file: String,
        applied_checksum: String,
        commit_checksum: String,
    },

    #[error(
        "`{file}` line {line}: `{statement}` controls the transaction, but sandpit runs every \
         migration in a transaction of its own (and rolls a rehearsal back); nothing was run\n\
         hint: remove it; a whole file may be wrapped in BEGIN; … COMMIT;, and work that must \
         commit on its own belongs in a migration file of its own"
    )]
    TransactionControl {
        file: String,
        line: u32,
        statement: String,
    },

    #[error(
        "rehearsing the pending migrations on `{database}` failed: `{file}`{}: {message}; \
         nothing was changed (a rehearsal is always rolled back)\nhint: make the migration work \
         with the data already in `{database}` (a new NOT NULL column needs a DEFAULT, or a \
         backfill before the constraint), commit it and deploy again",
        at_line(*line)
    )]
    RehearsalFailed {
        database: String,
        file: String,
        line: Option<u32>,
        message: String,
    },

    #[error(
        "migration `{file}`{} failed on `{database}`: {message}; it was rolled back, {}\n\
         hint: fix `{file}` (it was never applied, so it may still be edited), commit it and \
         deploy again",
        at_line(*line),
        applied_before(applied)
    )]
    InPlaceMigrationFailed {
        database: String,
        file: String,
        line: Option<u32>,
        message: String,
        /// Files applied (and committed) by the same call before `file` failed.
        applied: Vec<String>,
    },

    #[error(
        "could not get a lock on `{database}` within {timeout:?} for `{file}` line {line} \
         (`{statement}`): another session, such as a running service, holds a conflicting \
         lock; `{file}` was rolled back, {}\nhint: try again; a service that keeps a \
         transaction open keeps its locks until it ends",
        applied_before(applied)
    )]
    LockTimeout {
        database: String,
        file: String,
        line: u32,
        statement: String,
        timeout: Duration,
        /// Files applied (and committed) by the same call before `file` (none in a rehearsal).
        applied: Vec<String>,
    },

    #[error(
        "migration `{file}` ended the transaction sandpit ran it in on `{database}`, though \
         sandpit found no transaction control statement in it: what ran before that point may \
         have been committed, {}\nhint: check `{database}` by hand; a file that sets \
         standard_conforming_strings = off can hide a COMMIT in a string, so remove that",
        applied_before(applied)
    )]
    TransactionEnded {
        database: String,
        file: String,
        /// Files applied (and committed) by the same call before `file`.
        applied: Vec<String>,
    },

    #[error(
        "database `{database}` does not exist\nhint: create it first (`sandpit up` clones it \
         from the template of the commit's migrations)"
    )]
    DatabaseMissing { database: String },

    #[error("{context} failed: {message}")]
    Sql { context: String, message: String },
}

impl DatabaseError {
    /// Wraps an error from `tokio_postgres` with what we were doing when it happened.
    pub(crate) fn sql(context: impl Into<String>, error: &tokio_postgres::Error) -> DatabaseError {
        DatabaseError::Sql {
            context: context.into(),
            message: describe(error),
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, error: std::io::Error) -> Self {
        DatabaseError::StateIo {
            action,
            path: path.to_owned(),
            message: error.to_string(),
        }
    }
}

fn its_log(log: Option<&std::path::Path>) -> String {
    log.map(|log| format!(" (its log: {})", log.display()))
        .unwrap_or_default()
}

fn at_line(line: Option<u32>) -> String {
    line.map(|line| format!(" at line {line}"))
        .unwrap_or_default()
}

/// What stays applied of a call that failed part of the way.
fn applied_before(applied: &[String]) -> String {
    if applied.is_empty() {
        return "nothing was changed".to_owned();
    }
    let files: Vec<String> = applied.iter().map(|file| format!("`{file}`")).collect();
    format!("and {} applied before it stay applied", files.join(", "))
}

/// PostgreSQL's own message (with its SQLSTATE) when there is one, else the client's.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db_error) => format!(
            "{} (SQLSTATE {})",
            db_error.message(),
            db_error.code().code()
        ),
        None => error.to_string(),
    }
}
