//! One accepted connection: hyper's HTTP/1 connection with its header timer, and around it the
//! limits hyper does not have — the body deadline, the idle timeout, requests per connection.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::body::{DeadlineBody, TrackedBody};
use crate::{Acceptor, Limits};

/// Whether a request is in progress on the connection.
#[derive(Debug, Clone, Copy)]
enum Activity {
    /// Nothing in progress since then: the previous response was sent (or the connection
    /// accepted).
    Idle(Instant),
    /// A request was read and its response is not sent yet.
    Busy,
}

/// Serves one connection until it closes: the client leaves, a limit closes it, or `stopping`
/// turns true (then in-progress requests finish and the connection closes). `_permit` is the
/// connection's place under `max_connections`, given back when this returns.
pub(crate) async fn serve<A: Acceptor>(
    stream: TcpStream,
    acceptor: A,
    app: Router,
    limits: Arc<Limits>,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Answers are written whole; Nagle would only hold their last segment back.
    let _ = stream.set_nodelay(true);
    // A handshake (TLS) counts against the header timeout: a client that opens a connection and
    // says nothing is dropped either way.
    let stream = tokio::select! {
        handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.handshake(stream)) => {
            match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!("handshake failed: {error}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("handshake timed out");
                    return;
                }
            }
        }
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    let activity = Arc::new(watch::Sender::new(Activity::Idle(Instant::now())));
    let mut watched = activity.subscribe();
    let served = Arc::new(AtomicU64::new(0));
    let service = {
        let limits = Arc::clone(&limits);
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request| {
            let number = served.fetch_add(1, Ordering::Relaxed) + 1;
            handle(
                app.clone(),
                Arc::clone(&limits),
                Arc::clone(&activity),
                number,
                request,
            )
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut closing = false;
    loop {
        let idle_deadline = match *watched.borrow_and_update() {
            Activity::Idle(since) if !closing => Some(since + limits.idle_timeout),
            _ => None,
        };
        tokio::select! {
            result = connection.as_mut() => {
                // Clients leaving and timeouts end connections all the time: not worth a warning.
                if let Err(error) = result {
                    tracing::debug!("connection closed: {error}");
                }
                return;
            }
            () = sleep_until(idle_deadline) => {
                // A request may have started as the timer fired; then the next turn waits again.
                if matches!(*watched.borrow(), Activity::Idle(since) if since + limits.idle_timeout <= Instant::now()) {
                    // Closes an idle connection at once; one mid-request after its response.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = watched.changed() => {}
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Answers one request with `app`, holding its body to the deadline and the size limit.
async fn handle(
    app: Router,
    limits: Arc<Limits>,
    activity: Arc<watch::Sender<Activity>>,
    number: u64,
    request: Request<Incoming>,
) -> Result<Response<TrackedBody<impl FnMut() + Unpin>>, Infallible> {
    activity.send_replace(Activity::Busy);
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Limited::new(
            DeadlineBody::new(body, limits.body_read_timeout, Arc::clone(&timed_out)),
            limits.max_body_bytes,
        )
    });
    let mut response = match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Relaxed) {
        // The app saw its body fail and answered; the client learns why, and the rest of a
        // body that may never come is not waited for.
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        close_after(&mut response);
    }
    if number >= limits.max_requests_per_connection {
        close_after(&mut response);
    }
    let on_sent = move || {
        activity.send_replace(Activity::Idle(Instant::now()));
    };
    Ok(response.map(|body| TrackedBody::new(body, on_sent)))
}

/// Makes `response` the connection's last: hyper closes it once the response is written.
fn close_after<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}
