//! One client connection: hyper's HTTP/1 connection (keep-alive, upgrades, its header timer),
//! and around it what hyper does not have — the idle timeout and the graceful close on shutdown.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::proxy::{self, Proxy};
use crate::GatewayConfig;

/// Whether a request is in progress on the connection.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Nothing in progress since then: the previous response was sent (or the connection
    /// accepted).
    Idle(Instant),
    /// A request was read and its response is not sent yet.
    Busy,
}

/// Marks its connection busy while it lives: taken when a request arrives, dropped with the
/// response body once it is sent (or given up).
pub(crate) struct Busy(Arc<watch::Sender<State>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_replace(State::Idle(Instant::now()));
    }
}

/// What a request's handler knows about its connection.
pub(crate) struct Connection {
    /// The client's address (for `X-Forwarded-For`).
    pub(crate) peer: SocketAddr,
    state: Arc<watch::Sender<State>>,
    /// The connection's place under `max_connections`: an upgraded connection outlives hyper's
    /// connection, so its tunnel holds a clone until it closes.
    pub(crate) permit: Arc<OwnedSemaphorePermit>,
    /// Turns true when the gateway shuts down (upgraded connections close then).
    pub(crate) stopping: watch::Receiver<bool>,
}

impl Connection {
    pub(crate) fn busy(&self) -> Busy {
        self.state.send_replace(State::Busy);
        Busy(Arc::clone(&self.state))
    }
}

/// Serves one connection until it closes: the client leaves, a timeout closes it, or
/// `stopping` turns true (then a request in progress finishes and the connection closes).
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    config: Arc<GatewayConfig>,
    stopping: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    // Responses are forwarded as they come: Nagle would only hold their last segment back.
    let _ = stream.set_nodelay(true);
    let state = Arc::new(watch::Sender::new(State::Idle(Instant::now())));
    let watched = state.subscribe();
    let connection = Arc::new(Connection {
        peer,
        state,
        permit: Arc::new(permit),
        stopping: stopping.clone(),
    });
    let service = hyper::service::service_fn(move |request| {
        proxy::handle(Arc::clone(&proxy), Arc::clone(&connection), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut served = pin!(builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades());
    // Both futures live as long as the connection: nothing is set up again per request.
    let mut idle = pin!(idle_expired(watched, config.idle_timeout));
    let mut stopping = stopping;
    let mut stop = pin!(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                // Clients leaving and timeouts end connections all the time: not worth a warning.
                if let Err(error) = result {
                    tracing::debug!("connection from {peer} closed: {error}");
                }
                return;
            }
            // Closes an idle connection at once, one mid-request after its response.
            () = idle.as_mut(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            () = stop.as_mut(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Completes once the connection has been idle for `idle_timeout`. It sleeps until the
/// deadline the last idle moment gives and looks again, rather than waking on every request:
/// requests come and go many times per deadline.
async fn idle_expired(mut watched: watch::Receiver<State>, idle_timeout: Duration) {
    loop {
        let state = *watched.borrow_and_update();
        match state {
            State::Idle(since) => {
                let deadline = since + idle_timeout;
                if deadline <= Instant::now() {
                    return;
                }
                tokio::time::sleep_until(deadline).await;
            }
            State::Busy => {
                if watched.changed().await.is_err() {
                    // The connection is gone: nothing left to time.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
