//! Terraform's http backend protocol, spoken by a real HTTP client over a real socket.

use std::os::unix::fs::PermissionsExt as _;

use reqwest::StatusCode;
use sandpit_tfstate::LockInfo;

use crate::support::{key, lock_info, state, Backend};

#[tokio::test]
async fn requests_without_the_states_credential_are_refused_before_anything_happens() {
    let backend = Backend::start(10).await;
    let network = key(None, "network");
    let credential = backend.store.credential(&network).unwrap();
    let other = key(Some("feat-x"), "network");
    let other_credential = backend.store.credential(&other).unwrap();
    assert_ne!(credential, other_credential, "each state has its own");

    let missing = backend.request("GET", &network, None).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(missing.headers().contains_key("www-authenticate"));
    let wrong = backend
        .request("POST", &network, Some("not-it"))
        .body(state(1))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Another state's credential does not open this one.
    let crossed = backend
        .request("GET", &network, Some(&other_credential))
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), StatusCode::UNAUTHORIZED);
    // The right password under another state's username neither.
    let misnamed = reqwest::Client::new()
        .get(network.url(&backend.origin))
        .basic_auth(other.path(), Some(&credential))
        .send()
        .await
        .unwrap();
    assert_eq!(misnamed.status(), StatusCode::UNAUTHORIZED);
    assert!(misnamed.text().await.unwrap().contains("username"));
    // A state nobody asked a credential for accepts nothing, not even an empty password.
    let fresh = key(None, "fresh");
    let unknown = backend
        .request("GET", &fresh, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(backend.store.versions(&network).unwrap(), vec![]);

    let path = backend.dir.path().join("states/geo/dev/_base/network");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("credential")), 0o600);
    assert_eq!(mode(&backend.dir.path().join("states")), 0o700);
    assert_eq!(
        credential,
        backend.store.credential(&network).unwrap(),
        "kept"
    );
    assert_eq!(credential.len(), 43, "32 bytes as unpadded base64url");
}

#[tokio::test]
async fn a_state_is_empty_then_written_then_read_back_and_pruned_to_the_kept_versions() {
    let backend = Backend::start(3).await;
    let network = key(None, "network");
    let credential = backend.store.credential(&network).unwrap();

    let empty = backend
        .request("GET", &network, Some(&credential))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT, "Terraform's empty");
    assert!(empty.bytes().await.unwrap().is_empty());

    for serial in 1..=5 {
        let written = backend
            .request("POST", &network, Some(&credential))
            .body(state(serial))
            .send()
            .await
            .unwrap();
        assert_eq!(written.status(), StatusCode::OK, "serial {serial}");
    }
    let read = backend
        .request("GET", &network, Some(&credential))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.text().await.unwrap(), state(5));

    let versions = backend.store.versions(&network).unwrap();
    let seqs: Vec<(u64, u64)> = versions.iter().map(|v| (v.seq, v.serial)).collect();
    assert_eq!(seqs, vec![(3, 3), (4, 4), (5, 5)]);
    assert!(versions.iter().all(|v| v.lineage == "line-1"));
    assert_eq!(versions[2].bytes, state(5).len() as u64);

    // Not a state: refused, saying why, and nothing changes.
    for (body, why) in [
        ("garbage", "not JSON"),
        (r#"{"serial":6}"#, "no `lineage`"),
        (r#"{"lineage":"x"}"#, "no `serial`"),
    ] {
        let refused = backend
            .request("POST", &network, Some(&credential))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(refused.text().await.unwrap().contains(why), "{body}");
    }
    assert_eq!(
        backend.store.current(&network).unwrap().unwrap(),
        state(5).as_bytes()
    );

    let deleted = backend
        .request("DELETE", &network, Some(&credential))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(backend.store.current(&network).unwrap(), None);
    // The credential outlives a DELETE; `remove` takes everything.
    assert!(backend
        .store
        .check_credential(&network, &credential)
        .unwrap());
    assert_eq!(
        backend.store.keys_of(&network.project).unwrap(),
        vec![network.clone()]
    );
    backend.store.remove(&network).unwrap();
    assert!(!backend
        .store
        .check_credential(&network, &credential)
        .unwrap());
    assert_eq!(backend.store.keys_of(&network.project).unwrap(), vec![]);
    assert!(
        !backend.dir.path().join("states/geo").exists(),
        "empty parents go too"
    );
}

#[tokio::test]
async fn a_held_lock_is_shown_to_others_and_only_its_holder_writes_and_unlocks() {
    let backend = Backend::start(10).await;
    let network = key(Some("feat-x"), "network");
    let credential = backend.store.credential(&network).unwrap();
    let alice = lock_info("lock-alice", "alice@laptop");
    let bob = lock_info("lock-bob", "bob@desktop");
    let send = |method: &str, body: String, query: &str| {
        let mut request = backend
            .request(method, &network, Some(&credential))
            .body(body);
        if !query.is_empty() {
            request = request.query(&[("ID", query)]);
        }
        request.send()
    };
    let json = |info: &LockInfo| serde_json::to_string(info).unwrap();

    assert_eq!(
        send("LOCK", json(&alice), "").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(backend.store.lock(&network).unwrap(), Some(alice.clone()));

    let held = send("LOCK", json(&bob), "").await.unwrap();
    assert_eq!(held.status(), StatusCode::LOCKED);
    let holder: LockInfo = held.json_or_panic().await;
    assert_eq!(
        holder, alice,
        "the holder's LockInfo, which terraform prints"
    );

    // Writes: only with the holder's ID.
    for id in ["", "lock-bob"] {
        let refused = send("POST", state(1), id).await.unwrap();
        assert_eq!(refused.status(), StatusCode::LOCKED, "ID {id:?}");
    }
    assert_eq!(backend.store.current(&network).unwrap(), None);
    assert_eq!(
        send("POST", state(1), "lock-alice").await.unwrap().status(),
        StatusCode::OK
    );

    // Unlocks: only by the holder's ID; anyone else is shown the holder.
    let refused = send("UNLOCK", json(&bob), "").await.unwrap();
    assert_eq!(refused.status(), StatusCode::LOCKED);
    assert_eq!(refused.json_or_panic::<LockInfo>().await, alice);
    // `terraform force-unlock`'s UNLOCK has no body.
    let anonymous = send("UNLOCK", String::new(), "").await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::LOCKED);
    assert_eq!(anonymous.json_or_panic::<LockInfo>().await, alice);
    let bad = send("UNLOCK", "{}".to_owned(), "").await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(backend.store.lock(&network).unwrap(), Some(alice.clone()));
    assert_eq!(
        send("UNLOCK", json(&alice), "").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(backend.store.lock(&network).unwrap(), None);
    // Unlocking what is unlocked is done already.
    assert_eq!(
        send("UNLOCK", json(&alice), "").await.unwrap().status(),
        StatusCode::OK
    );

    // A writer whose lock was force-unlocked meanwhile is refused: its plan may be stale.
    assert_eq!(
        send("LOCK", json(&bob), "").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        backend.store.force_unlock(&network).unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        backend.store.force_unlock(&network).unwrap(),
        None,
        "nothing left"
    );
    let stale = send("POST", state(2), "lock-bob").await.unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert!(stale.text().await.unwrap().contains("force-unlock"));
    assert_eq!(
        backend.store.current(&network).unwrap().unwrap(),
        state(1).as_bytes()
    );

    let not_lock_info = send("LOCK", "nope".to_owned(), "").await.unwrap();
    assert_eq!(not_lock_info.status(), StatusCode::BAD_REQUEST);
    let other_method = send("PATCH", String::new(), "").await.unwrap();
    assert_eq!(other_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn addresses_that_name_no_state_are_answered_plainly() {
    let backend = Backend::start(10).await;
    let client = reqwest::Client::new();
    for path in [
        "/v1/states/geo/dev/_base",
        "/v1/states/Geo/dev/_base/network",
        "/v1/states/geo/dev/_nope/network",
        "/elsewhere",
    ] {
        let answer = client
            .get(format!("{}{path}", backend.origin))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            answer.text().await.unwrap().contains("not a state address"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_large_state_is_accepted() {
    let backend = Backend::start(10).await;
    let network = key(None, "network");
    let credential = backend.store.credential(&network).unwrap();
    // Past axum's 2 MiB and sandpit_http's 16 MiB defaults.
    let padding = "x".repeat(20 * 1024 * 1024);
    let big = format!(r#"{{"serial":1,"lineage":"l","padding":"{padding}"}}"#);
    let written = backend
        .request("POST", &network, Some(&credential))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    assert_eq!(
        backend.store.current(&network).unwrap().unwrap().len(),
        big.len()
    );
}

/// `Response::json` needs reqwest's `json` feature; this reads the body with serde instead.
trait JsonOrPanic {
    async fn json_or_panic<T: serde::de::DeserializeOwned>(self) -> T;
}

impl JsonOrPanic for reqwest::Response {
    async fn json_or_panic<T: serde::de::DeserializeOwned>(self) -> T {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    }
}
