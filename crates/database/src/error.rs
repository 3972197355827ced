//! What can go wrong with databases, each message saying what, where and what to do.

use std::path::PathBuf;

/// Everything this crate can fail with. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql`"
    )]
    BinariesMissing,

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

    #[error("migration `{file}`{} failed: {message}; fix the file and run again", line.map(|line| format!(" at line {line}")).unwrap_or_default())]
    MigrationFailed {
        file: String,
        line: Option<u32>,
        message: String,
    },

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
