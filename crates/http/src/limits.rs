//! What a server grants one client: how long it may take to send a request, how long it may sit
//! idle, how many connections and how many bytes.

use std::io;
use std::time::Duration;

/// The limits [`crate::serve`] enforces. The defaults suit a loopback endpoint shared by many
/// local services; tests and operators shrink or widen them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers (request line included) must arrive within this time of the
    /// connection being accepted or of the previous response being sent; otherwise the
    /// connection is closed. hyper runs this timer while a keep-alive connection waits for its
    /// next request too, so it is also an upper bound on `idle_timeout`.
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this time of its headers; otherwise the
    /// request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Connections served at once. Past it, new connections wait in the listener's backlog
    /// (and are refused by the kernel when that is full) until a connection closes.
    pub max_connections: usize,
    /// Requests served on one connection; the last is answered with `Connection: close`.
    pub max_requests_per_connection: u64,
    /// The largest request body read; more is refused (413 through axum's extractors).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_requests_per_connection: 1000,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Refuses limits that would make a server serve nothing or nothing safely.
    pub fn check(&self) -> io::Result<()> {
        let problem = if self.max_connections == 0 {
            Some("max_connections must be at least 1".to_owned())
        } else if u32::try_from(self.max_connections).is_err()
            || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS
        {
            Some(format!(
                "max_connections {} is more than a server can track",
                self.max_connections
            ))
        } else if self.max_requests_per_connection == 0 {
            Some("max_requests_per_connection must be at least 1".to_owned())
        } else if self.header_read_timeout.is_zero()
            || self.body_read_timeout.is_zero()
            || self.idle_timeout.is_zero()
        {
            Some("timeouts must be longer than zero".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid HTTP limits: {problem}"),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to the default limits, and what the refusal names (`None`: accepted).
    type Case = (fn(&mut Limits), Option<&'static str>);

    #[test]
    fn limits_that_serve_nothing_are_refused() {
        let cases: [Case; 6] = [
            (|_| {}, None),
            (|l| l.max_connections = 0, Some("max_connections")),
            (
                |l| l.max_connections = usize::MAX,
                Some("more than a server can track"),
            ),
            (
                |l| l.max_requests_per_connection = 0,
                Some("max_requests_per_connection"),
            ),
            (|l| l.idle_timeout = Duration::ZERO, Some("timeouts")),
            (|l| l.header_read_timeout = Duration::ZERO, Some("timeouts")),
        ];
        for (change, expected) in cases {
            let mut limits = Limits::default();
            change(&mut limits);
            match (limits.check(), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => assert!(e.to_string().contains(needle), "{e}"),
                (result, expected) => panic!("{limits:?}: {result:?}, expected {expected:?}"),
            }
        }
    }
}
