//! The limits: a client that sends half a header or sits idle is cut off after the configured
//! time, connections past the cap wait in the backlog, and shutdown stops accepting while the
//! requests in progress finish.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::StatusCode;
use sandpit_gateway::GatewayConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{empty, eventually, generous, get, Backend, Gateway, TableRoutes, GUARD, WEB};

/// Reads until the gateway closes the connection; returns what it sent before.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(GUARD, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the gateway closes the connection");
    String::from_utf8_lossy(&received).into_owned()
}

fn raw_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {WEB}\r\n\r\n")
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_is_cut_off() {
    let backend = Backend::start("web").await;
    let config = GatewayConfig {
        header_read_timeout: Duration::from_millis(100),
        ..generous()
    };
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), config).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web.al")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(!received.contains("hello"), "{received}");
    assert_eq!(backend.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let backend = Backend::start("web").await;
    let config = GatewayConfig {
        idle_timeout: Duration::from_millis(100),
        ..generous()
    };
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), config).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(raw_get("/").as_bytes()).await.unwrap();
    // The answer arrives, the connection stays open for more (keep-alive), and then closes.
    let received = read_until_closed(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.ends_with("hello from web"), "{received}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let backend = Backend::start("web").await;
    let config = GatewayConfig {
        max_connections: 1,
        ..generous()
    };
    let routes = Arc::new(TableRoutes::to(WEB, &backend));
    let gateway = Gateway::start(routes.clone(), config).await;
    let mut first = gateway.client().await;
    assert_eq!(first.get(WEB, "/").await.status, StatusCode::OK);
    // The second connection is made by the kernel (backlog) but not served yet.
    let mut second = TcpStream::connect(gateway.addr).await.unwrap();
    second.write_all(raw_get("/").as_bytes()).await.unwrap();
    // The first is still served meanwhile; the second's request was never read.
    assert_eq!(first.get(WEB, "/").await.status, StatusCode::OK);
    assert_eq!(routes.asked.lock().unwrap().len(), 2);
    let mut nothing = [0u8; 1];
    assert!(
        matches!(second.try_read(&mut nothing), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the second connection was answered past the cap"
    );
    drop(first);
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(GUARD, second.read(&mut answer))
        .await
        .expect("the waiting connection is served once the first closes")
        .unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_lets_requests_in_progress_finish() {
    let backend = Backend::start("web").await;
    let routes = Arc::new(TableRoutes::to(WEB, &backend));
    let mut gateway = Gateway::start(routes.clone(), generous()).await;
    let mut idle = TcpStream::connect(gateway.addr).await.unwrap();
    let mut busy = gateway.client().await;
    let drip = backend.drip();
    let response = busy.send(get(WEB, "/drip").body(empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);

    gateway.shut_down();
    // Stopped accepting: the listener is closed, so connecting is refused.
    let addr = gateway.addr;
    let mut refused = false;
    tokio::time::timeout(GUARD, async {
        while !refused {
            match TcpStream::connect(addr).await {
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = true;
                }
                // Made while the listener was still open: in its backlog, then reset as it
                // closed, or accepted just before.
                Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .await
    .expect("new connections are refused");
    // The idle connection is closed without an answer.
    assert_eq!(read_until_closed(&mut idle).await, "");
    // The request in progress still gets its whole body.
    drip.send(Bytes::from_static(b"still ")).await.unwrap();
    drip.send(Bytes::from_static(b"here")).await.unwrap();
    drop(drip);
    let body = tokio::time::timeout(GUARD, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(body, "still here");
    gateway.stopped().await.unwrap();
    eventually("the last activity is released", || {
        routes.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = GatewayConfig {
        max_connections: 0,
        ..generous()
    };
    let error = sandpit_gateway::serve(
        listener,
        Arc::new(TableRoutes::default()),
        config,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("max_connections"), "{error}");
}
