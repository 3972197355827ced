//! HTTP serving with limits: timeouts, connection cap, keep-alive.
//!
//! [`serve`] runs an axum [`Router`] the way a server reachable by every local user must run:
//! a client that opens connections and sends nothing, half a header, or half a body, or that
//! keeps idle connections open, cannot hold the server's file descriptors or starve the others.
//! `axum::serve` has none of these limits, so this drives hyper's HTTP/1 connection builder
//! itself:
//!
//! - headers: hyper's `header_read_timeout` (with a tokio timer), which also runs while a
//!   keep-alive connection waits for its next request;
//! - bodies: a deadline from the end of the headers to the end of the body, then 408
//!   and the connection closed; a byte limit (`http_body_util::Limited`, which axum's
//!   extractors answer with 413);
//! - keep-alive: an idle timeout and a cap on requests per connection (`Connection: close` on
//!   the last), which hyper does not offer;
//! - connections: a semaphore of `max_connections` permits taken *before* each accept, so past
//!   the cap new connections wait in the kernel's backlog instead of being accepted forever.
//!
//! The stream is plain TCP or TLS ([`Acceptor`]: [`PlainTcp`], [`Tls`]); the TLS handshake runs
//! in the connection's task within the header timeout. The model endpoint and the control plane
//! use it; the gateway is meant to.

mod acceptor;
mod body;
mod connection;
mod limits;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use acceptor::{Acceptor, PlainTcp, Tls};
pub use body::BodyTimeout;
pub use limits::Limits;

/// How long to wait before accepting again after the listener failed (e.g. out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting,
/// lets requests in progress finish (idle connections close at once) and returns.
///
/// `limits.max_body_bytes` is also `app`'s default body limit (axum's own default is 2 MiB); a
/// `DefaultBodyLimit` inside `app` takes precedence below the hard limit.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, PlainTcp, app, limits, shutdown).await
}

/// [`serve`] over what `acceptor` makes of each connection (e.g. [`Tls`]).
pub async fn serve_with<A: Acceptor>(
    listener: TcpListener,
    acceptor: A,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    limits.check()?;
    let app = app.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let stream = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::select! {
                        () = shutdown.as_mut() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        tokio::spawn(connection::serve(
            stream,
            acceptor.clone(),
            app.clone(),
            Arc::clone(&limits),
            stopping.clone(),
            permit,
        ));
    }
    // Closing the listener makes the kernel refuse new connections while the others finish.
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).expect("checked by Limits::check");
    let _finished = permits
        .acquire_many(all)
        .await
        .expect("the connection semaphore is never closed");
    Ok(())
}

/// Errors of one connection that `accept` reports: the peer went away before it was accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
