//! Running migration files inside a transaction sandpit opened: one statement per round trip, so
//! a failure names its line even when PostgreSQL gives no position (a constraint that existing
//! rows violate, a lock timeout), and each followed, in the same round trip, by a check that the
//! transaction is still open.

use std::time::Duration;

use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::{Client, SimpleQueryMessage, Transaction};

use crate::error::{describe, DatabaseError};
use crate::migrations::{line_of_position, MigrationFile};
use crate::script::{self, Statement};
use crate::timeouts::{setting_millis, Watchdog};

/// A setting only sandpit's transaction has. `SET LOCAL` ends with the transaction, so reading
/// it back as anything else means a statement ended the transaction.
const MARKER: &str = "sandpit.migration";
const MARKER_VALUE: &str = "open";

/// A migration file split into the statements sandpit runs of it.
pub(crate) struct Prepared<'a> {
    pub file: &'a MigrationFile,
    pub statements: Vec<Statement<'a>>,
}

/// Splits every file, refusing transaction control in any of them before anything runs.
pub(crate) fn prepare<'a>(
    files: impl IntoIterator<Item = &'a MigrationFile>,
) -> Result<Vec<Prepared<'a>>, DatabaseError> {
    files
        .into_iter()
        .map(|file| {
            let statements = script::migration_statements(&file.sql).map_err(|forbidden| {
                DatabaseError::TransactionControl {
                    file: file.name.clone(),
                    line: forbidden.line,
                    statement: forbidden.statement,
                }
            })?;
            Ok(Prepared { file, statements })
        })
        .collect()
}

/// Opens sandpit's transaction: the marker, and `lock_timeout` when given, so DDL that would
/// queue behind a running service's locks (and make every later query of that service queue
/// behind it) gives up instead.
pub(crate) async fn begin(
    client: &mut Client,
    lock_timeout: Option<Duration>,
) -> Result<Transaction<'_>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    let mut settings = format!("SET LOCAL {MARKER} = '{MARKER_VALUE}'");
    if let Some(timeout) = lock_timeout {
        settings.push_str(&format!(
            "; SET LOCAL lock_timeout = '{}'",
            setting_millis(timeout)
        ));
    }
    transaction.batch_execute(&settings).await?;
    Ok(transaction)
}

/// Why a file did not apply.
pub(crate) enum Failure {
    /// PostgreSQL refused a statement (or the commit), at `line` of the file when known.
    Refused { line: Option<u32>, message: String },
    /// `lock_timeout` ran out waiting for a lock (SQLSTATE 55P03).
    LockTimeout { line: u32, statement: String },
    /// After a statement, sandpit's transaction was no longer open.
    TransactionEnded,
    /// The connection failed: not the file's fault.
    Connection { message: String },
    /// The server did not answer within the limit (a [`DatabaseError::Timeout`]); the
    /// connection was closed, so the server rolls the transaction back.
    Unanswered(Box<DatabaseError>),
}

/// Runs `prepared`'s statements on `client`, which must be in a transaction from [`begin`],
/// each waiting at most `limit` for the server.
pub(crate) async fn run(
    client: &Client,
    watchdog: &Watchdog,
    limit: Duration,
    prepared: &Prepared<'_>,
) -> Result<(), Failure> {
    for statement in &prepared.statements {
        // The newline ends a trailing `--` comment; the statement always has a `;` or ends the
        // file, so the check is a statement of its own.
        let query = format!(
            "{}\n;SELECT current_setting('{MARKER}', true)",
            statement.text
        );
        let messages = watchdog
            .answer(
                limit,
                || format!("line {} (`{}`)", statement.line, statement.summary()),
                client.simple_query(&query),
            )
            .await
            .map_err(Failure::unanswered)?
            .map_err(|error| statement_failure(statement, &error))?;
        let marker = messages.iter().rev().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0)),
            _ => None,
        });
        if marker != Some(Some(MARKER_VALUE)) {
            return Err(Failure::TransactionEnded);
        }
    }
    Ok(())
}

fn statement_failure(statement: &Statement<'_>, error: &tokio_postgres::Error) -> Failure {
    let Some(db_error) = error.as_db_error() else {
        return Failure::Connection {
            message: describe(error),
        };
    };
    if db_error.code() == &SqlState::LOCK_NOT_AVAILABLE {
        return Failure::LockTimeout {
            line: statement.line,
            statement: statement.summary(),
        };
    }
    // Positions count characters of what was sent, which starts with the statement.
    let line_in_statement = match db_error.position() {
        Some(ErrorPosition::Original(position)) => line_of_position(statement.text, *position),
        _ => 1,
    };
    Failure::Refused {
        line: Some(statement.line + line_in_statement - 1),
        message: message_of(db_error),
    }
}

impl Failure {
    pub(crate) fn unanswered(error: DatabaseError) -> Failure {
        Failure::Unanswered(Box::new(error))
    }

    /// A failure of what runs after the statements: handing objects over, recording the file,
    /// committing (deferred constraints are checked then).
    pub(crate) fn after_statements(what: &str, error: &tokio_postgres::Error) -> Failure {
        match error.as_db_error() {
            Some(db_error) => Failure::Refused {
                line: None,
                message: format!("{what}: {}", message_of(db_error)),
            },
            None => Failure::Connection {
                message: format!("{what}: {}", describe(error)),
            },
        }
    }

    /// For a template or shared database being built in `database`.
    pub(crate) fn into_build_error(self, database: &str, file: &MigrationFile) -> DatabaseError {
        match self {
            Failure::Refused { line, message } => DatabaseError::MigrationFailed {
                file: file.name.clone(),
                line,
                message,
            },
            Failure::LockTimeout { line, statement } => DatabaseError::MigrationFailed {
                file: file.name.clone(),
                line: Some(line),
                message: format!("`{statement}` timed out waiting for a lock"),
            },
            Failure::TransactionEnded => DatabaseError::TransactionEnded {
                database: database.to_owned(),
                file: file.name.clone(),
                applied: Vec::new(),
            },
            Failure::Connection { message } => DatabaseError::Sql {
                context: format!("applying `{}` in `{database}`", file.name),
                message,
            },
            Failure::Unanswered(error) => in_file(
                *error,
                &format!("applying `{}` to `{database}`", file.name),
                "",
            ),
        }
    }

    /// For a rehearsal on `database` (always rolled back).
    pub(crate) fn into_rehearsal_error(
        self,
        database: &str,
        file: &MigrationFile,
        timeout: Duration,
    ) -> DatabaseError {
        match self {
            Failure::Refused { line, message } => DatabaseError::RehearsalFailed {
                database: database.to_owned(),
                file: file.name.clone(),
                line,
                message,
            },
            other => other.into_in_place_error(database, file, timeout, Vec::new()),
        }
    }

    /// For an in-place application to `database`, where `applied` went in before `file`.
    pub(crate) fn into_in_place_error(
        self,
        database: &str,
        file: &MigrationFile,
        timeout: Duration,
        applied: Vec<String>,
    ) -> DatabaseError {
        let (database, file_name) = (database.to_owned(), file.name.clone());
        match self {
            Failure::Refused { line, message } => DatabaseError::InPlaceMigrationFailed {
                database,
                file: file_name,
                line,
                message,
                applied,
            },
            Failure::LockTimeout { line, statement } => DatabaseError::LockTimeout {
                database,
                file: file_name,
                line,
                statement,
                timeout,
                applied,
            },
            Failure::TransactionEnded => DatabaseError::TransactionEnded {
                database,
                file: file_name,
                applied,
            },
            Failure::Connection { message } => DatabaseError::Sql {
                context: if applied.is_empty() {
                    format!("applying `{file_name}` to `{database}`")
                } else {
                    format!(
                        "applying `{file_name}` to `{database}` (after applying {})",
                        applied.join(", ")
                    )
                },
                message,
            },
            Failure::Unanswered(error) => {
                let kept = if applied.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} applied before it stay applied",
                        applied
                            .iter()
                            .map(|file| format!("`{file}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                in_file(
                    *error,
                    &format!("applying `{file_name}` to `{database}`"),
                    &kept,
                )
            }
        }
    }
}

/// A timeout while a file ran, its `what` saying which file (and what stays applied).
fn in_file(error: DatabaseError, doing: &str, suffix: &str) -> DatabaseError {
    match error {
        DatabaseError::Timeout {
            what,
            after,
            url_redacted,
            server_log,
        } => DatabaseError::Timeout {
            what: format!("{doing}: {what}{suffix}"),
            after,
            url_redacted,
            server_log,
        },
        other => other,
    }
}

/// PostgreSQL's message with its detail, which says which row or object is at fault.
fn message_of(db_error: &tokio_postgres::error::DbError) -> String {
    let mut message = db_error.message().to_owned();
    if let Some(detail) = db_error.detail() {
        message.push_str(&format!(" ({detail})"));
    }
    message
}
