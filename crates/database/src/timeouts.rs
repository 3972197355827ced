//! How long sandpit waits for PostgreSQL, and giving up on a connection that does not answer.
//!
//! A stopped or wedged server accepts TCP connections (the kernel queues them) and then never
//! says anything, so without limits every call would wait forever. Each round trip is bounded
//! on the client ([`Watchdog`]); when a limit runs out the connection is closed, which makes
//! PostgreSQL roll back whatever transaction it had open, so a timed-out migration is never
//! half-applied. The sessions that run migrations also carry a server-side `statement_timeout`
//! of the same length, so the server stops the work (and releases its locks) when sandpit has
//! given up on it instead of finishing it for nobody.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_postgres::error::SqlState;

use crate::error::DatabaseError;

/// The limits an [`crate::Admin`] works with. [`Timeouts::default`] suits interactive use;
/// tests pass short ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A new connection: TCP, startup and authentication together.
    pub connect: Duration,
    /// One ordinary round trip: a catalog query, a role, a grant, a `DROP DATABASE`.
    pub statement: Duration,
    /// One round trip of work that may legitimately run long: each statement of a migration,
    /// seed or shared data set (templates, rehearsals, in place) and cloning a database from a
    /// template. Also the server-side `statement_timeout` of the sessions that run migrations.
    pub migration: Duration,
    /// Waiting for another sandpit operation on the same database (a template build, a
    /// migration, a drop) to release its advisory lock; PostgreSQL's `lock_timeout` enforces it.
    pub advisory_lock: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 30 s per statement, 15 min per migration statement and for the wait
    /// behind another sandpit operation (which may be running migrations itself).
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            statement: Duration::from_secs(30),
            migration: Duration::from_secs(15 * 60),
            advisory_lock: Duration::from_secs(15 * 60),
        }
    }
}

/// A duration as PostgreSQL takes it in a setting: whole milliseconds, at least 1 (0 would mean
/// "no limit"), at most `i32::MAX`.
pub(crate) fn setting_millis(duration: Duration) -> String {
    let millis = duration.as_millis().clamp(1, i32::MAX as u128);
    format!("{millis}ms")
}

/// Which server a connection talks to, for messages: its URL without the password, and its log
/// file when sandpit knows it (the embedded instance).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub url_redacted: String,
    pub log: Option<PathBuf>,
}

impl Server {
    pub(crate) fn timeout(&self, what: String, after: Duration) -> DatabaseError {
        DatabaseError::Timeout {
            what,
            after,
            url_redacted: self.url_redacted.clone(),
            server_log: self.log.clone(),
        }
    }
}

/// Bounds the calls made on one connection and closes the connection when a call runs out.
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    pub server: Server,
    connection: AbortHandle,
}

impl Watchdog {
    pub(crate) fn new(server: Server, connection: AbortHandle) -> Watchdog {
        Watchdog { server, connection }
    }

    /// Closes the connection now: the server rolls back what it had open and releases the
    /// session's locks.
    pub(crate) fn cut(&self) {
        self.connection.abort();
    }

    /// Runs `call` for at most `limit`. The outer error is a [`DatabaseError::Timeout`]: the
    /// server did not answer in time (the connection is then closed, so PostgreSQL rolls back
    /// what it had open), or it cancelled the statement itself (`statement_timeout`). The inner
    /// result is the call's own, for the caller to interpret.
    pub(crate) async fn answer<T>(
        &self,
        limit: Duration,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<Result<T, tokio_postgres::Error>, DatabaseError> {
        match tokio::time::timeout(limit, call).await {
            Ok(Err(error)) if error.code() == Some(&SqlState::QUERY_CANCELED) => {
                Err(self.server.timeout(what(), limit))
            }
            Ok(result) => Ok(result),
            Err(_elapsed) => {
                // A late answer would only queue every later call behind it; and closing is
                // what makes the server roll back an open transaction.
                self.connection.abort();
                Err(self.server.timeout(what(), limit))
            }
        }
    }

    /// [`Watchdog::answer`] with the call's own error described by `what` too.
    pub(crate) async fn ask<T>(
        &self,
        limit: Duration,
        what: &str,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DatabaseError> {
        self.answer(limit, || what.to_owned(), call)
            .await?
            .map_err(|error| DatabaseError::sql(what, &error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_whole_milliseconds_and_never_zero() {
        for (duration, expected) in [
            (Duration::from_secs(30), "30000ms"),
            (Duration::from_micros(10), "1ms"),
            (Duration::ZERO, "1ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(u64::MAX), "2147483647ms"),
        ] {
            assert_eq!(setting_millis(duration), expected, "{duration:?}");
        }
    }

    #[test]
    fn timeout_says_what_where_and_where_the_log_is() {
        let server = Server {
            url_redacted: "postgres://sandpit_admin:***@127.0.0.1:5433/postgres".to_owned(),
            log: Some(PathBuf::from("/home/me/.sandpit/postgres.log")),
        };
        let error = server.timeout("dropping `geo_alice`".to_owned(), Duration::from_secs(30));
        assert_eq!(
            error.to_string(),
            "PostgreSQL at postgres://sandpit_admin:***@127.0.0.1:5433/postgres did not answer \
             within 30s while dropping `geo_alice`; is it running? (its log: \
             /home/me/.sandpit/postgres.log)\nhint: a stopped or overloaded server makes every \
             call wait; run the command again once it answers (PostgreSQL rolls back whatever \
             a timed-out call left unfinished)"
        );
        let external = Server {
            log: None,
            ..server
        };
        let error = external.timeout("connecting".to_owned(), Duration::from_millis(500));
        assert!(
            error
                .to_string()
                .contains("did not answer within 500ms while connecting; is it running?\nhint:"),
            "{error}"
        );
    }
}
