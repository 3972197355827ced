//! The gateway: an HTTP/1.1 reverse proxy that routes `<service>.<biome>.<project>.localhost`
//! to the loopback port of the process serving it.
//!
//! It decides nothing about biomes: for every request it asks its owner ([`Routes`], the
//! daemon) where the request's [`HostName`] goes, and the owner answers with a backend address
//! (after waking a sleeping biome, if need be — the request is held meanwhile), "unknown" (404
//! listing the valid hosts) or "unavailable" (503 with the reason). Then it
//!
//! - forwards the request over a pooled keep-alive connection (hyper-util's client) and streams
//!   both bodies frame by frame, never collecting them: no body size limit, flat memory;
//! - passes upgrades (WebSocket) through: the upgrade request is forwarded, and on the
//!   backend's `101` both upgraded connections are joined byte for byte;
//! - removes hop-by-hop headers both ways and adds `X-Forwarded-For`/`-Proto`/`-Host`, keeping
//!   `Host` as the client sent it;
//! - answers 502 itself, naming the component and why, when a backend does not answer;
//! - holds the owner's [`Activity`] until the response has been sent, so the owner counts
//!   requests in flight and knows when a biome was last used.
//!
//! It drives hyper's connections itself (as `sandpit-http` does for the API servers, whose
//! axum-specific body limits do not apply here): a header read timeout, an idle keep-alive
//! timeout, a cap on connections taken before `accept`, a backend connect timeout
//! ([`GatewayConfig`]), and a graceful shutdown.

mod answers;
mod backend_failure;
mod body;
mod config;
mod connection;
mod forwarding;
mod host;
mod proxy;
mod route;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use config::GatewayConfig;
pub use host::{HostName, PUBLIC_SUFFIX};
pub use route::{Activity, Route, RouteFuture, Routes};

/// How long to wait before accepting again after the listener failed (e.g. out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the gateway on `listener` until `shutdown` completes; then stops accepting (the
/// listener is closed, so new connections are refused), lets requests in progress finish —
/// their bodies to the end —, closes idle and upgraded connections, and returns.
///
/// Fails at once, before accepting anything, when `config` is invalid
/// ([`GatewayConfig::check`]).
pub async fn serve(
    listener: TcpListener,
    routes: Arc<dyn Routes>,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    config.check()?;
    let proxy = Arc::new(proxy::Proxy::new(routes, &config));
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        // The permit comes first: past the cap, connections wait in the kernel's backlog
        // instead of costing a file descriptor each.
        let permit = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!("the gateway cannot accept a connection: {error}");
                    tokio::select! {
                        () = shutdown.as_mut() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        tokio::spawn(connection::serve(
            stream,
            peer,
            Arc::clone(&proxy),
            Arc::clone(&config),
            stopping.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(config.max_connections).expect("checked by GatewayConfig::check");
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
