//! What the backend sees of a request, and the client of a response: hop-by-hop headers gone,
//! `X-Forwarded-*` added, `Host` untouched; keep-alive on both sides.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::StatusCode;
use sandpit_gateway::HostName;

use crate::support::{empty, generous, get, read, Backend, Gateway, TableRoutes, WEB};

#[tokio::test]
async fn the_backend_sees_forwarding_headers_and_no_hop_by_hop_ones() {
    let backend = Backend::start("web").await;
    let routes = Arc::new(TableRoutes::to(WEB, &backend));
    let gateway = Gateway::start(routes.clone(), generous()).await;
    let mut client = gateway.client().await;
    let host = format!("Web.Alice.Shop.localhost:{}", gateway.addr.port());
    let request = get(&host, "/headers?x=1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-kept", "yes")
        .body(empty())
        .unwrap();
    let answer = read(client.send(request).await).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen: Vec<&str> = answer.body.lines().collect();
    assert_eq!(seen[0], "GET /headers?x=1 HTTP/1.1", "{seen:?}");
    for expected in [
        format!("host: {host}"),
        "x-forwarded-for: 203.0.113.9, 127.0.0.1".to_owned(),
        "x-forwarded-proto: http".to_owned(),
        format!("x-forwarded-host: {host}"),
        "x-kept: yes".to_owned(),
    ] {
        assert!(seen.contains(&expected.as_str()), "{expected} in {seen:?}");
    }
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(
            !seen
                .iter()
                .any(|line| line.starts_with(&format!("{gone}:"))),
            "{gone} passed: {seen:?}"
        );
    }
    // The response lost the backend's hop-by-hop headers.
    assert_eq!(answer.headers["x-backend-kept"], "yes");
    for gone in ["x-backend-hop", "keep-alive"] {
        assert!(!answer.headers.contains_key(gone), "{:?}", answer.headers);
    }
    // The owner was asked about the host as parsed.
    assert_eq!(
        routes.asked.lock().unwrap().as_slice(),
        [HostName::Service {
            service: "web".to_owned(),
            biome: "alice".to_owned(),
            project: "shop".to_owned()
        }]
    );
}

#[tokio::test]
async fn keep_alive_connections_are_reused_on_both_sides() {
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    // One client connection carries every request: had the gateway closed it, the next send
    // would fail.
    let mut client = gateway.client().await;
    const REQUESTS: usize = 20;
    for _ in 0..REQUESTS {
        let answer = client.get(WEB, "/").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "hello from web");
    }
    // Pooled: a connection goes back to the pool a moment after its response ends (a task of
    // the pooled client's), so a quick next request may open another now and then, but not
    // one each.
    let connections = backend.connections.load(Ordering::SeqCst);
    assert!(
        connections <= REQUESTS / 2,
        "{connections} backend connections for {REQUESTS} requests"
    );
}

#[tokio::test]
async fn an_absolute_request_target_routes_by_its_authority_and_sets_host() {
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    let mut client = gateway.client().await;
    let request = hyper::Request::get(format!("http://{WEB}/headers"))
        .header("host", "ignored.localhost")
        .body(empty())
        .unwrap();
    let answer = read(client.send(request).await).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body.starts_with("GET /headers HTTP/1.1\n"),
        "{}",
        answer.body
    );
    // The host that routed it is the one the backend sees.
    assert!(
        answer.body.contains(&format!("\nhost: {WEB}\n")),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains("ignored"), "{}", answer.body);
}

#[tokio::test]
async fn backend_connections_are_shared_by_client_connections_and_empty_answers() {
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    for _ in 0..3 {
        let mut client = gateway.client().await;
        assert_eq!(client.get(WEB, "/").await.body, "hello from web");
        // HEAD: an answer with no body to stream still gives its connection back.
        let head = hyper::Request::head("/")
            .header("host", WEB)
            .body(empty())
            .unwrap();
        let answer = read(client.send(head).await).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "");
    }
    // Six requests from three client connections; pooled, as above.
    let connections = backend.connections.load(Ordering::SeqCst);
    assert!(connections <= 3, "{connections} backend connections");
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_replaced_without_failing_a_request() {
    // A backend that answers one request per connection and then closes it, without saying
    // `Connection: close`: the gateway's pooled connection is dead when it next wants it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let routes = TableRoutes::default().with(
        WEB,
        crate::support::Target::Backend {
            addr,
            component: "service `web`".to_owned(),
        },
    );
    let gateway = Gateway::start(Arc::new(routes), generous()).await;
    let mut client = gateway.client().await;
    for _ in 0..5 {
        let answer = client.get(WEB, "/").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}
