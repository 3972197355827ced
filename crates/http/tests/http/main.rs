//! `sandpit_http::serve` over real sockets: slow and idle clients are cut off after the
//! configured times and cannot starve the others. Timeouts are small here; each wait is for a
//! server's answer or its closing the connection, never a fixed sleep.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use sandpit_http::{serve, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod tls;

/// Longest any test waits for something that should happen; a failing test fails, not hangs.
const GUARD: Duration = Duration::from_secs(20);

/// How late a timeout may fire on a loaded machine and still count as "after the timeout".
const SLACK: Duration = Duration::from_secs(3);

/// Limits that stay out of the way except where a test tightens them.
fn generous() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 64,
        max_requests_per_connection: 1000,
        max_body_bytes: 1024 * 1024,
    }
}

struct Server {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: Limits) -> Server {
        let app = Router::new().route("/", get(|| async { "hello" })).route(
            "/echo",
            post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        Server {
            address,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(GUARD, &mut self.task)
            .await
            .expect("the server stops")
            .unwrap()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(GUARD)
        .build()
        .unwrap()
}

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response byte by byte (so the next response on the connection stays unread).
async fn read_answer(stream: &mut TcpStream) -> Answer {
    tokio::time::timeout(GUARD, async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await.expect("a response");
            head.push(byte);
        }
        let head = String::from_utf8(head).unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    })
    .await
    .expect("an answer within the guard time")
}

/// Waits until the server closes `stream` (end of file, or a reset), insisting it sends nothing
/// more; how long that took.
async fn closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    tokio::time::timeout(GUARD, async {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&buffer[..n])
            ),
        }
    })
    .await
    .expect("the server closes the connection within the guard time");
    started.elapsed()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_timeout() {
    let timeout = Duration::from_millis(400);
    let server = Server::start(Limits {
        header_read_timeout: timeout,
        ..generous()
    })
    .await;
    let mut half = server.connect().await;
    let mut silent = server.connect().await;
    let started = Instant::now();
    half.write_all(b"GET / HTTP/1.1\r\nHost: te").await.unwrap();
    closed(&mut half).await;
    closed(&mut silent).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + SLACK,
        "cut off after {elapsed:?}"
    );
    // Whoever sends a whole header in time is served.
    let mut prompt = server.connect().await;
    prompt.write_all(GET).await.unwrap();
    let answer = read_answer(&mut prompt).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_finishes_is_answered_408_and_cut_off() {
    let timeout = Duration::from_millis(400);
    let server = Server::start(Limits {
        body_read_timeout: timeout,
        ..generous()
    })
    .await;
    let mut slow = server.connect().await;
    let started = Instant::now();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_answer(&mut slow).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(
        elapsed >= timeout && elapsed < timeout + SLACK,
        "answered after {elapsed:?}"
    );
    closed(&mut slow).await;

    // A body sent in pieces within the time is read whole.
    let mut pieces = server.connect().await;
    pieces
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\n0123456789")
        .await
        .unwrap();
    pieces.write_all(b"0123456789").await.unwrap();
    let answer = read_answer(&mut pieces).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "20 bytes"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn connections_past_the_cap_cannot_starve_a_request_once_the_slow_ones_time_out() {
    let timeout = Duration::from_millis(600);
    let cap = 4;
    let server = Server::start(Limits {
        header_read_timeout: timeout,
        max_connections: cap,
        ..generous()
    })
    .await;
    // More slow clients than the cap: half headers, and connections that send nothing.
    let mut slow = Vec::new();
    for i in 0..cap + 2 {
        let mut stream = server.connect().await;
        if i % 2 == 0 {
            stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        }
        slow.push(stream);
    }
    let started = Instant::now();
    let response = client().get(server.url("/")).send().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello");
    // It waited for the slow connections to be cut off (the cap held), and no longer.
    assert!(
        elapsed >= timeout / 2 && elapsed < timeout + SLACK,
        "answered after {elapsed:?}"
    );
    for stream in &mut slow {
        closed(stream).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(400);
    let server = Server::start(Limits {
        idle_timeout: idle,
        ..generous()
    })
    .await;
    let mut stream = server.connect().await;
    // Keep-alive works: two requests on the connection.
    for _ in 0..2 {
        stream.write_all(GET).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), None, "{answer:?}");
    }
    let waited = closed(&mut stream).await;
    // Well before the header timeout (30 s): the idle timer closed it.
    assert!(
        waited >= idle - Duration::from_millis(50) && waited < idle + SLACK,
        "closed after {waited:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_last_request_a_connection_may_make_is_answered_with_connection_close() {
    let server = Server::start(Limits {
        max_requests_per_connection: 3,
        ..generous()
    })
    .await;
    let mut stream = server.connect().await;
    for number in 1..=3 {
        stream.write_all(GET).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 200);
        let last = number == 3;
        assert_eq!(
            answer.header("connection") == Some("close"),
            last,
            "request {number}: {answer:?}"
        );
    }
    closed(&mut stream).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = Server::start(Limits {
        max_body_bytes: 1000,
        ..generous()
    })
    .await;
    let client = client();
    let response = client
        .post(server.url("/echo"))
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client
        .post(server.url("/echo"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "1000 bytes");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = Server::start(generous()).await;
    let mut stream = server.connect().await;
    stream.write_all(GET).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let address = server.address;
    server.stop().await.unwrap();
    closed(&mut stream).await;
    assert!(TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn limits_that_serve_nothing_are_refused_before_listening() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve(
        listener,
        Router::new(),
        Limits {
            max_connections: 0,
            ..generous()
        },
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("max_connections"), "{error}");
}
