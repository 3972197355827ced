//! One request through the gateway: ask the owner where its host goes, then forward it to that
//! backend over a pooled keep-alive connection and stream the answer back — or answer 404, 502
//! or 503 itself. An upgrade (WebSocket) becomes a tunnel between the two upgraded connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Scheme, Uri};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::answers;
use crate::backend_failure::BackendFailure;
use crate::body::{Done, ProxyBody};
use crate::connection::{Busy, Connection};
use crate::forwarding;
use crate::route::{Activity, Route, Routes};
use crate::{GatewayConfig, HostName};

/// What every request shares: the owner's routes and the pooled client to the backends.
pub(crate) struct Proxy {
    routes: Arc<dyn Routes>,
    client: Client<HttpConnector, Incoming>,
    connect_timeout: Duration,
}

impl Proxy {
    pub(crate) fn new(routes: Arc<dyn Routes>, config: &GatewayConfig) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.backend_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.backend_idle_timeout)
            // Without a timer, idle pooled connections are only noticed when next checked out.
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Proxy {
            routes,
            client,
            connect_timeout: config.backend_connect_timeout,
        }
    }
}

/// Answers one request; never fails (every failure is an answer).
pub(crate) async fn handle(
    proxy: Arc<Proxy>,
    connection: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let busy = connection.busy();
    let host = HostName::parse(&requested_host(&request));
    match proxy.routes.route(&host).await {
        Route::Backend {
            addr,
            component,
            activity,
        } => Ok(forward(
            &proxy,
            &connection,
            request,
            addr,
            &component,
            activity,
            busy,
        )
        .await),
        Route::Unknown {
            message,
            valid_hosts,
        } => Ok(own(
            StatusCode::NOT_FOUND,
            answers::unknown_host_text(&message, &valid_hosts),
            busy,
        )),
        Route::Unavailable { message } => Ok(own(
            StatusCode::SERVICE_UNAVAILABLE,
            answers::unavailable_text(&message),
            busy,
        )),
    }
}

/// The host a request is for: the request target's authority when the client sent an
/// absolute URI (which takes precedence over Host, RFC 9112 §3.2.2), else the Host header.
fn requested_host(request: &Request<Incoming>) -> String {
    if let Some(authority) = request.uri().authority() {
        return authority.as_str().to_owned();
    }
    request
        .headers()
        .get(header::HOST)
        .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
        .unwrap_or_default()
}

async fn forward(
    proxy: &Proxy,
    connection: &Connection,
    mut request: Request<Incoming>,
    addr: SocketAddr,
    component: &str,
    activity: Option<Activity>,
    busy: Busy,
) -> Response<ProxyBody> {
    if !addr.ip().is_loopback() {
        // Backends are this machine's processes: a route elsewhere is the owner's mistake, and
        // following it would let any client reach whatever that address is.
        return own(
            StatusCode::BAD_GATEWAY,
            answers::bad_gateway_text(
                component,
                addr,
                "not a loopback address: the gateway forwards only to this machine",
            ),
            busy,
        );
    }
    let upgrade = forwarding::wants_upgrade(request.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut request));
    match backend_uri(addr, request.uri()) {
        Some(uri) => {
            // An absolute-form target routed the request, whatever Host said (RFC 9112
            // §3.2.2): the backend gets that host too, never a different one (nor, without any
            // Host, the backend's address the pooled client would fill in).
            if let Some(host) = request
                .uri()
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            {
                request.headers_mut().insert(header::HOST, host);
            }
            *request.uri_mut() = uri;
        }
        None => {
            return own(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request target `{}` cannot be forwarded: send a path such as `/`\n",
                    request.uri()
                ),
                busy,
            )
        }
    }
    forwarding::rewrite_request(request.headers_mut(), connection.peer.ip(), upgrade);
    // HTTP/1.0 clients too reach the backend over a pooled HTTP/1.1 connection.
    *request.version_mut() = Version::HTTP_11;
    let mut response = match proxy.client.request(request).await {
        Ok(response) => response,
        Err(error) => {
            let failure = BackendFailure::of(&error);
            tracing::debug!("{component} at {addr}: {error:?}");
            return own(
                StatusCode::BAD_GATEWAY,
                answers::bad_gateway_text(
                    component,
                    addr,
                    &failure.describe(proxy.connect_timeout),
                ),
                busy,
            );
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return own(
                StatusCode::BAD_GATEWAY,
                answers::bad_gateway_text(
                    component,
                    addr,
                    "it switched protocols (101) although the request asked for no upgrade",
                ),
                busy,
            );
        };
        let backend_side = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(
            client_side,
            backend_side,
            activity,
            Arc::clone(&connection.permit),
            connection.stopping.clone(),
        ));
        forwarding::rewrite_response(response.headers_mut(), true);
        return response.map(|_| {
            ProxyBody::own(
                Bytes::new(),
                Done {
                    activity: None,
                    busy,
                },
            )
        });
    }
    forwarding::rewrite_response(response.headers_mut(), false);
    response.map(|body| ProxyBody::streamed(body, Done { activity, busy }))
}

/// `http://<addr><path and query>`: where the pooled client sends the request. `None` for a
/// target with no path (`CONNECT`'s authority form).
fn backend_uri(addr: SocketAddr, original: &Uri) -> Option<Uri> {
    let path_and_query = original.path_and_query()?.clone();
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(addr.to_string())
        .path_and_query(path_and_query)
        .build()
        .ok()
}

/// The gateway's own answer, releasing `busy` once sent.
fn own(status: StatusCode, text: String, busy: Busy) -> Response<ProxyBody> {
    answers::plain(status, text).map(|bytes| {
        ProxyBody::own(
            bytes,
            Done {
                activity: None,
                busy,
            },
        )
    })
}

/// Joins the client's and the backend's upgraded connections until either side closes (or the
/// gateway shuts down); then the owner's `activity` and the connection's permit are released.
async fn tunnel(
    client_side: OnUpgrade,
    backend_side: OnUpgrade,
    activity: Option<Activity>,
    _permit: Arc<OwnedSemaphorePermit>,
    mut stopping: watch::Receiver<bool>,
) {
    let (client, backend) = match tokio::try_join!(client_side, backend_side) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!("an upgrade did not complete: {error}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(error) = copied {
                tracing::debug!("an upgraded connection ended: {error}");
            }
        }
        // An upgraded connection has no request boundary to finish at: shutdown closes it.
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    drop(activity);
}
