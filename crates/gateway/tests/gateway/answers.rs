//! The answers the gateway gives itself: 404 for an unknown host listing the valid ones, 502
//! naming the component and why (refused, timed out, reset, closed), 503 with the owner's
//! reason. Plain text ending in a newline.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::support::{eventually, generous, Answer, Backend, Gateway, TableRoutes, Target, WEB};

const API: &str = "api.alice.shop.localhost";
const COMPONENT: &str = "service `api` of biome `alice` (project `shop`)";

fn assert_plain(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    assert!(answer.body.ends_with('\n'), "{:?}", answer.body);
}

/// A gateway whose `api` host goes to `addr`; the answer to `GET /` for it.
async fn through_gateway_to(addr: SocketAddr, config: sandpit_gateway::GatewayConfig) -> Answer {
    let routes = Arc::new(TableRoutes::default().with(
        API,
        Target::Backend {
            addr,
            component: COMPONENT.to_owned(),
        },
    ));
    let gateway = Gateway::start(routes.clone(), config).await;
    let answer = gateway.client().await.get(API, "/").await;
    // The activity of a request that failed is released with its answer.
    eventually("the failed request's activity is released", || {
        routes.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    answer
}

#[tokio::test]
async fn an_unknown_host_is_answered_404_listing_the_valid_ones() {
    let backend = Backend::start("web").await;
    let routes = TableRoutes::to(WEB, &backend).with(
        "x.localhost",
        Target::Unknown {
            message: "no project `x`".to_owned(),
            valid: vec!["http://a".to_owned(), "http://b".to_owned()],
        },
    );
    let gateway = Gateway::start(Arc::new(routes), generous()).await;
    let mut client = gateway.client().await;
    let answer = client.get("x.localhost", "/").await;
    assert_plain(&answer, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, "no project `x`\nhttp://a\nhttp://b\n");
    // A host not in the table at all: the table's own answer, with its port stripped.
    let answer = client.get("nope.alice.shop.localhost:1234", "/").await;
    assert_plain(&answer, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body,
        format!("no service answers at `nope.alice.shop.localhost`\n{WEB}\nx.localhost\n")
    );
    // The connection is still good after the gateway's own answers.
    assert_eq!(client.get(WEB, "/").await.body, "hello from web");
}

#[tokio::test]
async fn an_unavailable_route_is_answered_503_with_its_reason() {
    let routes = TableRoutes::default().with(
        API,
        Target::Unavailable("biome `alice` could not wake: service `api` exited with 3".to_owned()),
    );
    let gateway = Gateway::start(Arc::new(routes), generous()).await;
    let answer = gateway.client().await.get(API, "/").await;
    assert_plain(&answer, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.body,
        "biome `alice` could not wake: service `api` exited with 3\n"
    );
}

#[tokio::test]
async fn a_backend_that_refuses_is_answered_502_naming_it() {
    // A port nothing listens on any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let answer = through_gateway_to(addr, generous()).await;
    assert_plain(&answer, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body.starts_with(&format!(
            "{COMPONENT} did not answer at {addr}: connection refused"
        )),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("`sandpit logs`"), "{}", answer.body);
}

#[tokio::test]
async fn a_backend_that_does_not_accept_in_time_is_answered_502_timed_out() {
    // A listener whose backlog is full: the kernel drops further connection attempts, so a
    // connect hangs as it would to a wedged process.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(error)) => panic!("cannot fill the backlog: {error}"),
            Err(_) => break,
        }
        assert!(fillers.len() < 16, "the backlog never filled up");
    }
    let config = sandpit_gateway::GatewayConfig {
        backend_connect_timeout: Duration::from_millis(150),
        ..generous()
    };
    let answer = through_gateway_to(addr, config).await;
    assert_plain(&answer, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body.starts_with(&format!(
            "{COMPONENT} did not answer at {addr}: timed out (no connection within 150 ms)"
        )),
        "{}",
        answer.body
    );
    drop(listener);
}

/// A backend that reads a request's head and then hangs up: resetting the connection
/// (`SO_LINGER` 0) or closing it.
async fn hanging_up_backend(reset: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            if reset {
                stream.set_zero_linger().unwrap();
            } else {
                let _ = stream.shutdown().await;
            }
            drop(stream);
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_that_resets_is_answered_502_reset() {
    let addr = hanging_up_backend(true).await;
    let answer = through_gateway_to(addr, generous()).await;
    assert_plain(&answer, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body.starts_with(&format!(
            "{COMPONENT} did not answer at {addr}: connection reset by the service"
        )),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_backend_that_closes_without_answering_is_answered_502_closed() {
    let addr = hanging_up_backend(false).await;
    let answer = through_gateway_to(addr, generous()).await;
    assert_plain(&answer, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body.starts_with(&format!(
            "{COMPONENT} did not answer at {addr}: the service closed the connection without a complete answer"
        )),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_route_off_this_machine_is_refused_502() {
    // Documentation address (TEST-NET-3): nothing is sent, the gateway refuses before connecting.
    let addr: SocketAddr = "203.0.113.5:80".parse().unwrap();
    let answer = through_gateway_to(addr, generous()).await;
    assert_plain(&answer, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body.starts_with(&format!(
            "{COMPONENT} did not answer at {addr}: not a loopback address"
        )),
        "{}",
        answer.body
    );
}
