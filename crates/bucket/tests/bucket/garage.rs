//! The Garage launcher, and what Garage really does with the writes the stores rely on.

use bytes::Bytes;
use sandpit_bucket::garage::{GarageServer, Permissions};
use sandpit_bucket::{Bucket, BucketLocation, Created};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bucket(server: &GarageServer, name: &str, credentials: &sandpit_bucket::Credentials) -> Bucket {
    let location = BucketLocation::parse(&format!("s3://{name}/store")).unwrap();
    Bucket::connect(&location, &server.settings(credentials)).unwrap()
}

#[test]
fn a_started_server_stores_and_lists_objects_and_survives_a_restart() {
    let mut server = GarageServer::start().unwrap();
    let credentials = server.create_bucket("sp-launch").unwrap();
    let store = bucket(&server, "sp-launch", &credentials);
    let rt = runtime();
    assert_eq!(
        rt.block_on(store.create("a/one", Bytes::from_static(b"1")))
            .unwrap(),
        Created::Written
    );
    assert_eq!(
        rt.block_on(store.list("a")).unwrap(),
        vec!["a/one".to_owned()]
    );

    server.restart().unwrap();
    let again = bucket(&server, "sp-launch", &credentials);
    assert_eq!(
        rt.block_on(again.read("a/one")).unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(rt.block_on(again.read("a/none")).unwrap(), None);
}

#[test]
fn a_read_only_key_cannot_write_and_a_stopped_server_is_an_error_naming_the_location() {
    let mut server = GarageServer::start().unwrap();
    server.create_bucket("sp-perms").unwrap();
    let reader = server
        .create_key(&["sp-perms"], Permissions::READ_ONLY)
        .unwrap();
    let store = bucket(&server, "sp-perms", &reader);
    let rt = runtime();
    let refused = rt
        .block_on(store.create("x", Bytes::from_static(b"x")))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("s3://sp-perms/store"), "{refused}");
    assert_eq!(rt.block_on(store.read("x")).unwrap(), None);

    server.stop();
    let down = rt.block_on(store.read("x")).unwrap_err().to_string();
    assert!(down.contains("could not read"), "{down}");
}

/// Garage v2.5.0 ignores `If-None-Match: *` on PutObject: a second create-only write with other
/// bytes replaces the first. The artifact store therefore must not rely on `Bucket::create` alone
/// for "two writers never clobber" on Garage. If this test starts failing, Garage has learned
/// conditional writes and the store may use them directly.
#[test]
fn garage_does_not_refuse_a_create_only_write_over_an_existing_key() {
    let mut server = GarageServer::start().unwrap();
    let credentials = server.create_bucket("sp-ifnonematch").unwrap();
    let store = bucket(&server, "sp-ifnonematch", &credentials);
    let rt = runtime();
    rt.block_on(store.create("k", Bytes::from_static(b"first")))
        .unwrap();
    let second = rt
        .block_on(store.create("k", Bytes::from_static(b"second")))
        .unwrap();
    assert_eq!(second, Created::Written);
    assert_eq!(
        rt.block_on(store.read("k")).unwrap().as_deref(),
        Some(&b"second"[..])
    );
}
