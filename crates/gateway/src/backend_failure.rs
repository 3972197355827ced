//! Why a backend did not answer, in the words a 502 page uses.
//!
//! The client's error is a chain (the pooled client's error, hyper's, the socket's); what a
//! developer needs is the one fact at its end: nothing listens, it did not answer in time, it
//! hung up.

use std::error::Error;
use std::io;
use std::time::Duration;

/// What went wrong between the gateway and a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendFailure {
    /// Nothing listens at the address: the service is stopped, crashed or not started yet.
    Refused,
    /// Connecting took longer than the configured connect timeout.
    TimedOut,
    /// The backend reset the connection.
    Reset,
    /// The backend closed the connection before its response was complete.
    Closed,
    /// Anything else, with the innermost error's words.
    Other(String),
}

impl BackendFailure {
    /// Reads an error chain: the first cause that says what happened decides.
    pub(crate) fn of(error: &(dyn Error + 'static)) -> BackendFailure {
        let mut innermost = error;
        let mut cause = Some(error);
        while let Some(current) = cause {
            if let Some(io_error) = current.downcast_ref::<io::Error>() {
                match io_error.kind() {
                    io::ErrorKind::ConnectionRefused => return BackendFailure::Refused,
                    io::ErrorKind::TimedOut => return BackendFailure::TimedOut,
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe => return BackendFailure::Reset,
                    io::ErrorKind::UnexpectedEof => return BackendFailure::Closed,
                    _ => {}
                }
            }
            if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
                if hyper_error.is_incomplete_message() {
                    return BackendFailure::Closed;
                }
                if hyper_error.is_timeout() {
                    return BackendFailure::TimedOut;
                }
            }
            innermost = current;
            cause = current.source();
        }
        BackendFailure::Other(innermost.to_string())
    }

    /// Why, as the end of "… did not answer: <why>".
    pub(crate) fn describe(&self, connect_timeout: Duration) -> String {
        match self {
            BackendFailure::Refused => {
                "connection refused (nothing listens there: it is stopped, crashed or still starting)"
                    .to_owned()
            }
            BackendFailure::TimedOut => format!(
                "timed out (no connection within {} ms)",
                connect_timeout.as_millis()
            ),
            BackendFailure::Reset => "connection reset by the service".to_owned(),
            BackendFailure::Closed => {
                "the service closed the connection without a complete answer".to_owned()
            }
            BackendFailure::Other(words) => words.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error wrapping another, as the pooled client's and hyper's errors do.
    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn Error + Send + Sync + 'static>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    #[derive(Debug)]
    struct Leaf(&'static str);

    impl fmt::Display for Leaf {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Leaf {}

    fn wrapped(kind: io::ErrorKind) -> Wrapper {
        Wrapper(
            "client error (Connect)",
            Box::new(Wrapper(
                "tcp connect error",
                Box::new(io::Error::new(kind, "os says so")),
            )),
        )
    }

    #[test]
    fn the_cause_at_the_end_of_the_chain_decides() {
        let cases: [(Box<dyn Error + 'static>, BackendFailure); 7] = [
            (
                Box::new(wrapped(io::ErrorKind::ConnectionRefused)),
                BackendFailure::Refused,
            ),
            (
                Box::new(wrapped(io::ErrorKind::TimedOut)),
                BackendFailure::TimedOut,
            ),
            (
                Box::new(wrapped(io::ErrorKind::ConnectionReset)),
                BackendFailure::Reset,
            ),
            (
                Box::new(wrapped(io::ErrorKind::BrokenPipe)),
                BackendFailure::Reset,
            ),
            (
                Box::new(wrapped(io::ErrorKind::UnexpectedEof)),
                BackendFailure::Closed,
            ),
            (
                Box::new(wrapped(io::ErrorKind::PermissionDenied)),
                BackendFailure::Other("os says so".to_owned()),
            ),
            (
                Box::new(Wrapper("client error", Box::new(Leaf("no route")))),
                BackendFailure::Other("no route".to_owned()),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(BackendFailure::of(&*error), expected, "{error}");
        }
    }

    #[test]
    fn descriptions_say_what_happened() {
        let timeout = Duration::from_millis(250);
        let cases = [
            (BackendFailure::Refused, "connection refused"),
            (
                BackendFailure::TimedOut,
                "timed out (no connection within 250 ms)",
            ),
            (BackendFailure::Reset, "connection reset"),
            (BackendFailure::Closed, "closed the connection"),
            (BackendFailure::Other("odd".to_owned()), "odd"),
        ];
        for (failure, needle) in cases {
            let described = failure.describe(timeout);
            assert!(described.contains(needle), "{failure:?}: {described}");
        }
    }
}
