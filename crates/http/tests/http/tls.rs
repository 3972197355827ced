//! `serve_with` over TLS: a certificate made by rcgen, a rustls (ring) client that trusts only
//! it; a client that opens a connection and never starts the handshake is dropped after the
//! header timeout.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use sandpit_http::{serve_with, Limits, Tls};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::{generous, GUARD, SLACK};

/// A self-signed certificate for `localhost` written as PEM files into `dir`: (cert, key, PEM).
pub fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key, made.cert.pem())
}

#[tokio::test]
async fn tls_serves_https_and_drops_a_silent_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path());
    let tls = Tls::from_pem_files(&cert, &key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..generous()
    };
    let app = Router::new().route("/", get(|| async { "hello over tls" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, tls, app, limits, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let answer = tokio::time::timeout(
        GUARD,
        client.get(format!("https://localhost:{port}/")).send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello over tls");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .is_err());

    // A silent client is cut off after the header timeout, handshake or not.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(GUARD, silent.read(&mut buffer))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK);

    stop.send(()).unwrap();
    tokio::time::timeout(GUARD, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn unreadable_or_mismatched_pem_files_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(dir.path());
    let missing = dir.path().join("nope.pem");
    let error = Tls::from_pem_files(&missing, &key).unwrap_err();
    assert!(
        error.to_string().contains("TLS certificate") && error.to_string().contains("nope.pem"),
        "{error}"
    );
    let error = Tls::from_pem_files(&cert, &cert).unwrap_err();
    assert!(error.to_string().contains("TLS key"), "{error}");
    let other = tempfile::tempdir().unwrap();
    let (_, other_key, _) = certificate(other.path());
    let error = Tls::from_pem_files(&cert, &other_key).unwrap_err();
    assert!(error.to_string().contains("does not go with"), "{error}");
}

#[test]
fn the_workspace_has_one_rustls_backend_ring() {
    // aws-lc-rs beside ring would make rustls' default provider ambiguous and doubles the C
    // code built; the lock file shows whatever any crate of the workspace pulls in.
    let lock = include_str!("../../../../Cargo.lock");
    let packages: Vec<&str> = lock
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .map(|rest| rest.trim_end_matches('"'))
        .collect();
    assert!(packages.contains(&"ring"), "rustls runs on ring");
    let aws: Vec<&&str> = packages
        .iter()
        .filter(|p| p.starts_with("aws-lc"))
        .collect();
    assert!(
        aws.is_empty(),
        "Cargo.lock has {aws:?}; use rustls' `ring` feature only"
    );
}
