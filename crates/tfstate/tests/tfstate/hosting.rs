//! The daemon's hosting: a port chosen once and kept, and a move (said) when it is taken.

use std::net::SocketAddr;

use reqwest::StatusCode;

use crate::support::key;

async fn answers(addr: SocketAddr, home: &std::path::Path) -> StatusCode {
    let store = sandpit_tfstate::home_store(home);
    let network = key(None, "network");
    let credential = store.credential(&network).unwrap();
    reqwest::Client::new()
        .get(network.url(&format!("http://{addr}")))
        .basic_auth(network.path(), Some(credential))
        .send()
        .await
        .unwrap()
        .status()
}

/// A runtime standing for one daemon's life.
fn daemon_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_backend_keeps_its_port_and_moves_saying_so_when_it_is_taken() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(sandpit_tfstate::endpoint(home.path()).unwrap(), None);

    let first_daemon = daemon_runtime();
    let first = first_daemon
        .block_on(sandpit_tfstate::host(home.path()))
        .unwrap();
    assert_eq!(first.moved, None);
    assert!(first.addr.ip().is_loopback());
    assert_eq!(
        sandpit_tfstate::endpoint(home.path()).unwrap(),
        Some(first.addr)
    );
    assert_eq!(
        first_daemon.block_on(answers(first.addr, home.path())),
        StatusCode::NO_CONTENT
    );
    // A daemon restart: the old one's runtime ends, the new one binds the same port.
    drop(first_daemon);
    let second_daemon = daemon_runtime();
    let again = second_daemon
        .block_on(sandpit_tfstate::host(home.path()))
        .unwrap();
    assert_eq!(again.addr, first.addr);
    assert_eq!(again.moved, None);

    // Someone else holds the kept port now (the backend above): a new one, and a notice.
    let third_daemon = daemon_runtime();
    let moved = third_daemon
        .block_on(sandpit_tfstate::host(home.path()))
        .unwrap();
    assert_ne!(moved.addr, first.addr);
    let notice = moved.moved.expect("the move is said");
    assert!(notice.contains(&first.addr.port().to_string()), "{notice}");
    assert_eq!(
        sandpit_tfstate::endpoint(home.path()).unwrap(),
        Some(moved.addr)
    );
    assert_eq!(
        third_daemon.block_on(answers(moved.addr, home.path())),
        StatusCode::NO_CONTENT
    );
}

#[test]
fn an_unreadable_endpoint_file_is_an_error_saying_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("runtime")).unwrap();
    std::fs::write(home.path().join(sandpit_tfstate::ENDPOINT_FILE), "nope").unwrap();
    let error = sandpit_tfstate::endpoint(home.path()).unwrap_err();
    assert!(
        error.to_string().contains("restarting the daemon"),
        "{error}"
    );
}
