//! Over real sockets, the endpoint serves within its `Limits`. Regression: 20,000 unfinished
//! requests exhausted its file descriptors and everyone's inference timed out.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{config, package, secured, V1};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_past_the_connection_cap_do_not_starve_inference() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = package(dir.path(), V1, "linear");
    let secrets = tempfile::tempdir().unwrap();
    let header_timeout = Duration::from_millis(500);
    let (config, token) = secured(
        sandpit_models::ServerConfig {
            limits: sandpit_models::Limits {
                header_read_timeout: header_timeout,
                max_connections: 8,
                ..Default::default()
            },
            ..config()
        },
        dir.path(),
        secrets.path(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandpit_models::serve_with_shutdown(
        listener,
        config,
        crate::support::engine(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("http://{address}");
    let response = client
        .put(format!("{base}/sandpit/biomes/_base/models"))
        .bearer_auth(token.expose())
        .body(json!({ "models": [v1.registration("linear")] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Twice the cap of clients that send half a request and stop.
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    let body = json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }] });
    let response = client
        .post(format!("{base}/v2/models/linear/infer"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(answer["outputs"][0]["data"][0], 14.5);
    // Two rounds of slow clients are cut off before it is accepted, and nothing more.
    assert!(
        started.elapsed() < header_timeout * 2 + Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    for stream in &mut slow {
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
            .await
            .expect("the slow connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
