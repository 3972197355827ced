//! What the gateway grants a client and a backend: timeouts and how many connections.
//!
//! There is no body size limit and no body deadline on purpose: bodies are streamed, so a
//! 10 GB upload costs the gateway no more memory than a small one, and a slow one is the
//! backend's to judge.

use std::io;
use std::time::Duration;

/// The limits [`crate::serve`] enforces. The defaults suit one gateway per machine in front of
/// many local services; tests and operators shrink or widen them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// A request's headers must arrive within this time of the connection being accepted or of
    /// the previous response being sent, otherwise the connection is closed. hyper runs this
    /// timer while a keep-alive connection waits for its next request too, so it also bounds
    /// `idle_timeout`.
    pub header_read_timeout: Duration,
    /// A client's keep-alive connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Client connections served at once (an upgraded connection counts until it closes). Past
    /// it, new connections wait in the listener's backlog until one closes. Each costs two file
    /// descriptors: the client's and the backend's.
    pub max_connections: usize,
    /// How long connecting to a backend may take before the request is answered 502 ("timed
    /// out"). Backends are on loopback: a connection that is not made quickly is not coming.
    pub backend_connect_timeout: Duration,
    /// An unused pooled connection to a backend is closed after this long.
    pub backend_idle_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            backend_connect_timeout: Duration::from_secs(5),
            backend_idle_timeout: Duration::from_secs(30),
        }
    }
}

impl GatewayConfig {
    /// Refuses a configuration that would serve nothing, or nothing safely.
    pub fn check(&self) -> io::Result<()> {
        let problem = if self.max_connections == 0 {
            Some("max_connections must be at least 1".to_owned())
        } else if u32::try_from(self.max_connections).is_err()
            || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS
        {
            Some(format!(
                "max_connections {} is more than a gateway can track",
                self.max_connections
            ))
        } else if [
            self.header_read_timeout,
            self.idle_timeout,
            self.backend_connect_timeout,
            self.backend_idle_timeout,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            Some("timeouts must be longer than zero".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid gateway configuration: {problem}"),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to the defaults, and what the refusal names (`None`: accepted).
    type Case = (fn(&mut GatewayConfig), Option<&'static str>);

    #[test]
    fn configurations_that_serve_nothing_are_refused() {
        let cases: [Case; 6] = [
            (|_| {}, None),
            (|c| c.max_connections = 0, Some("max_connections must be")),
            (
                |c| c.max_connections = usize::MAX,
                Some("more than a gateway can track"),
            ),
            (|c| c.idle_timeout = Duration::ZERO, Some("timeouts")),
            (|c| c.header_read_timeout = Duration::ZERO, Some("timeouts")),
            (
                |c| c.backend_connect_timeout = Duration::ZERO,
                Some("timeouts"),
            ),
        ];
        for (change, expected) in cases {
            let mut config = GatewayConfig::default();
            change(&mut config);
            match (config.check(), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => assert!(e.to_string().contains(needle), "{e}"),
                (result, expected) => panic!("{config:?}: {result:?}, expected {expected:?}"),
            }
        }
    }
}
