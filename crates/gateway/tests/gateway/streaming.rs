//! Bodies are streamed both ways: 100 MB through the gateway each way, while the test process
//! (gateway, backend and client together) grows by far less than that.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{
    generous, peak_memory, read, zeros, Backend, Gateway, TableRoutes, Zeros, GUARD, WEB,
};

const HUNDRED_MB: u64 = 100 * 1024 * 1024;
/// What the process may grow by while 100 MB pass: buffers, not the body.
const GROWTH_ALLOWED: u64 = 50 * 1024 * 1024;

#[tokio::test]
async fn a_100_mb_upload_streams_to_the_backend() {
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    let mut client = gateway.client().await;
    let before = peak_memory();
    // Chunked: the gateway cannot know the size in advance either.
    let request = hyper::Request::post("/count")
        .header("host", WEB)
        .body(zeros(Zeros::chunked(HUNDRED_MB)))
        .unwrap();
    let answer = read(client.send(request).await).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, HUNDRED_MB.to_string());
    let grown = peak_memory().saturating_sub(before);
    assert!(grown < GROWTH_ALLOWED, "peak memory grew by {grown} bytes");
}

#[tokio::test]
async fn a_100_mb_download_streams_to_the_client() {
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    let mut client = gateway.client().await;
    let before = peak_memory();
    let request = hyper::Request::get(format!("/download/{HUNDRED_MB}"))
        .header("host", WEB)
        .body(crate::support::empty())
        .unwrap();
    let response = client.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"],
        HUNDRED_MB.to_string(),
        "the size the backend gave is kept"
    );
    let mut body = response.into_body();
    let mut received = 0u64;
    let counted = tokio::time::timeout(GUARD, async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                received += data.len() as u64;
            }
        }
    });
    counted.await.expect("the download completes");
    assert_eq!(received, HUNDRED_MB);
    let grown = peak_memory().saturating_sub(before);
    assert!(grown < GROWTH_ALLOWED, "peak memory grew by {grown} bytes");
}

#[tokio::test]
async fn an_upload_that_expects_100_continue_is_told_to_go_on() {
    // curl sends `Expect: 100-continue` before any body over 1 MB and waits for the go-ahead.
    let backend = Backend::start("web").await;
    let gateway = Gateway::start(Arc::new(TableRoutes::to(WEB, &backend)), generous()).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let body = vec![b'x'; 3 * 1024 * 1024];
    let head = format!(
        "PUT /count HTTP/1.1\r\nHost: {WEB}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_until = |needle: &'static [u8]| {
        move |received: &Vec<u8>| received.windows(needle.len()).any(|w| w == needle)
    };
    let continued = read_until(b"HTTP/1.1 100 Continue\r\n\r\n");
    tokio::time::timeout(GUARD, async {
        while !continued(&received) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("the gateway says to continue");
    stream.write_all(&body).await.unwrap();
    received.clear();
    let answered = read_until(b"3145728");
    tokio::time::timeout(GUARD, async {
        while !answered(&received) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed before the answer");
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("the backend counts the body");
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}
