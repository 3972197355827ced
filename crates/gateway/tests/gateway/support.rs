//! What the gateway's tests stand on: a real backend (hyper over a loopback socket), the
//! gateway itself on another socket with a table of routes, and a real HTTP/1.1 client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sandpit_gateway::{GatewayConfig, HostName, Route, RouteFuture, Routes};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest any test waits for something that should happen; a failing test fails, not hangs.
pub const GUARD: Duration = Duration::from_secs(30);

/// The host every test's web service answers at.
pub const WEB: &str = "web.alice.shop.localhost";

/// A configuration that stays out of the way except where a test tightens it.
pub fn generous() -> GatewayConfig {
    GatewayConfig {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 64,
        backend_connect_timeout: Duration::from_secs(10),
        backend_idle_timeout: Duration::from_secs(30),
    }
}

/// Waits, polling every millisecond, until `condition` holds; panics after [`GUARD`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen"));
}

// ---------------------------------------------------------------------------------------------
// The backend.

/// A backend on a loopback port. Routes by path:
/// - `/headers`: the request line and headers as the backend saw them, one `name: value` line
///   each, in order; the response carries a few hop-by-hop headers of its own;
/// - `/count`: reads the whole body as it streams and answers how many bytes it was;
/// - `/download/<n>`: `n` bytes, generated as they are sent (`Content-Length` set);
/// - `/drip`: answers at once with a body whose chunks the test sends through [`Backend::drip`];
/// - anything else: `hello from <name>`.
pub struct Backend {
    pub addr: SocketAddr,
    /// Connections the backend accepted.
    pub connections: Arc<AtomicUsize>,
    drips: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let drips: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>> = Arc::default();
        let (accepted, drip_slot) = (Arc::clone(&connections), Arc::clone(&drips));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let drips = Arc::clone(&drip_slot);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(name, Arc::clone(&drips), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            addr,
            connections,
            drips,
        }
    }

    /// The sender of the next `/drip` response's chunks; the body ends when it is dropped.
    pub fn drip(&self) -> mpsc::Sender<Bytes> {
        let (sender, receiver) = mpsc::channel(4);
        *self.drips.lock().unwrap() = Some(receiver);
        sender
    }
}

type BackendBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    name: &'static str,
    drips: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
    request: Request<Incoming>,
) -> Result<Response<BackendBody>, Infallible> {
    let path = request.uri().path().to_owned();
    if path == "/headers" {
        let mut text = format!(
            "{} {} {:?}\n",
            request.method(),
            request.uri(),
            request.version()
        );
        for (header, value) in request.headers() {
            text.push_str(&format!("{header}: {}\n", value.to_str().unwrap()));
        }
        let mut response = Response::new(full(text));
        let headers = response.headers_mut();
        headers.insert("connection", HeaderValue::from_static("x-backend-hop"));
        headers.insert("x-backend-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=9"));
        headers.insert("x-backend-kept", HeaderValue::from_static("yes"));
        return Ok(response);
    }
    if path == "/count" {
        let mut body = request.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                bytes += data.len() as u64;
            }
        }
        return Ok(Response::new(full(format!("{bytes}"))));
    }
    if let Some(size) = path.strip_prefix("/download/") {
        let size: u64 = size.parse().unwrap();
        return Ok(Response::new(Zeros::exact(size).boxed()));
    }
    if path == "/drip" {
        let mut chunks = drips
            .lock()
            .unwrap()
            .take()
            .expect("the test set up a drip");
        let stream = futures_util::stream::poll_fn(move |cx| {
            chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))))
        });
        return Ok(Response::new(StreamBody::new(stream).boxed()));
    }
    Ok(Response::new(full(format!("hello from {name}"))))
}

fn full(text: String) -> BackendBody {
    http_body_util::Full::new(Bytes::from(text)).boxed()
}

/// `left` zero bytes, made as they are sent in 64 KiB frames: a large body that never exists
/// whole in memory. With `exact`, its size is known (`Content-Length`); without, it is sent
/// chunked.
pub struct Zeros {
    left: u64,
    exact: bool,
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl Zeros {
    pub fn exact(left: u64) -> Zeros {
        Zeros { left, exact: true }
    }

    pub fn chunked(left: u64) -> Zeros {
        Zeros { left, exact: false }
    }
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let size = self.left.min(ZEROS.len() as u64);
        self.left -= size;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &ZEROS[..size as usize],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.left)
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The routes and the gateway.

/// Where a test host goes.
#[derive(Clone)]
pub enum Target {
    Backend { addr: SocketAddr, component: String },
    Unknown { message: String, valid: Vec<String> },
    Unavailable(String),
}

/// A fixed table of hosts; every backend route carries an activity that counts itself in
/// `in_flight` while the gateway holds it. Hosts not in the table are unknown, listing the
/// table's hosts.
#[derive(Default)]
pub struct TableRoutes {
    table: HashMap<String, Target>,
    pub in_flight: Arc<AtomicUsize>,
    /// Every host the gateway asked about, in order.
    pub asked: Arc<Mutex<Vec<HostName>>>,
}

impl TableRoutes {
    pub fn with(mut self, host: &str, target: Target) -> TableRoutes {
        self.table.insert(host.to_owned(), target);
        self
    }

    pub fn to(host: &str, backend: &Backend) -> TableRoutes {
        TableRoutes::default().with(
            host,
            Target::Backend {
                addr: backend.addr,
                component: format!("service `{}`", host.split('.').next().unwrap()),
            },
        )
    }
}

/// Counts one request in flight until the gateway drops it.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Routes for TableRoutes {
    fn route(&self, host: &HostName) -> RouteFuture {
        self.asked.lock().unwrap().push(host.clone());
        let route = match self.table.get(&host.to_string()) {
            Some(Target::Backend { addr, component }) => {
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                Route::Backend {
                    addr: *addr,
                    component: component.clone(),
                    activity: Some(Box::new(InFlight(Arc::clone(&self.in_flight)))),
                }
            }
            Some(Target::Unknown { message, valid }) => Route::Unknown {
                message: message.clone(),
                valid_hosts: valid.clone(),
            },
            Some(Target::Unavailable(message)) => Route::Unavailable {
                message: message.clone(),
            },
            None => {
                let mut valid: Vec<String> = self.table.keys().cloned().collect();
                valid.sort();
                Route::Unknown {
                    message: format!("no service answers at `{host}`"),
                    valid_hosts: valid,
                }
            }
        };
        Box::pin(async move { route })
    }
}

/// The gateway under test, serving on its own loopback port.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub async fn start(routes: Arc<dyn Routes>, config: GatewayConfig) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sandpit_gateway::serve(
            listener,
            routes,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Gateway {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Asks the gateway to shut down; [`Gateway::stopped`] waits for it.
    pub fn shut_down(&mut self) {
        let _ = self.stop.take().expect("shut down once").send(());
    }

    /// Waits for `serve` to return.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        tokio::time::timeout(GUARD, &mut self.task)
            .await
            .expect("the gateway stops")
            .unwrap()
    }

    /// A new client connection to the gateway.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// One keep-alive HTTP/1.1 client connection (hyper's own client, no pool).
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<ClientBody>,
}

pub type ClientBody = http_body_util::Either<Empty<Bytes>, Zeros>;

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Client { sender }
    }

    /// Sends `request` and waits for the response's head.
    pub async fn send(&mut self, request: Request<ClientBody>) -> Response<Incoming> {
        tokio::time::timeout(GUARD, async {
            self.sender.ready().await.unwrap();
            self.sender.send_request(request).await.unwrap()
        })
        .await
        .expect("the gateway answers")
    }

    /// `GET path` for `host`, read whole.
    pub async fn get(&mut self, host: &str, path: &str) -> Answer {
        let request = get(host, path).body(empty()).unwrap();
        read(self.send(request).await).await
    }
}

/// A request builder for `GET path` with `Host: host`.
pub fn get(host: &str, path: &str) -> hyper::http::request::Builder {
    Request::get(path).header(HOST, host)
}

pub fn empty() -> ClientBody {
    http_body_util::Either::Left(Empty::new())
}

pub fn zeros(body: Zeros) -> ClientBody {
    http_body_util::Either::Right(body)
}

/// Reads a response whole.
pub async fn read(response: Response<Incoming>) -> Answer {
    let (head, body) = response.into_parts();
    let body = tokio::time::timeout(GUARD, body.collect())
        .await
        .expect("the body arrives")
        .unwrap()
        .to_bytes();
    Answer {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// The test process's peak resident memory so far (`VmHWM`), in bytes.
pub fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("Linux reports VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    kib * 1024
}
