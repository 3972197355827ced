//! Who may register what. Regressions: any local user could register a file of their own (the
//! endpoint, running as root, loaded it and a biome answered with it), unregister anyone's
//! models, and learn the sha256 of a file only root can read from a wrong-digest registration.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::support::{config, package, Server, V1, V2};

const X: [f32; 3] = [1.0, 2.0, 3.0];
/// linear.onnx at X: 1 + 4 + 9 + 0.5.
const V1_Y: f64 = 14.5;
/// linear_v2.onnx at X: 10 + 40 + 90 - 1.
const V2_Y: f64 = 139.0;

fn error(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {answer}"))
}

/// The base serves v1 as `linear`; alice serves v1 as hers.
async fn served() -> Server {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    server.register("alice", &[("linear", &v1)]).await;
    server
}

/// What the base and alice answer, and which biomes are known.
async fn assert_unchanged(server: &Server) {
    assert_eq!(server.linear_y("", "linear", X).await, V1_Y);
    assert_eq!(server.linear_y("/biomes/alice", "linear", X).await, V1_Y);
    let (status, _) = server.linear("/biomes/mallory", "linear", X).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn registering_or_unregistering_without_the_token_is_401_and_changes_nothing() {
    let server = served().await;
    // The attacker's own model, in a directory of their own.
    let theirs = tempfile::tempdir().unwrap();
    let attacker = package(theirs.path(), V2, "linear");
    let wrong_token = format!("Bearer {}x", server.token.expose());
    let credentials = [
        (None, "needs a credential"),
        (Some("Bearer not-the-token"), "not this endpoint's"),
        (Some(wrong_token.as_str()), "not this endpoint's"),
        (Some("Basic YWRtaW46YWRtaW4="), "must be `Bearer <token>`"),
        (Some(server.token.expose()), "must be `Bearer <token>`"),
    ];
    for (authorization, needle) in credentials {
        let calls = [
            (
                "PUT",
                "/sandpit/biomes/_base/models",
                Some(json!({ "models": [attacker.registration("linear")] })),
            ),
            (
                "PUT",
                "/sandpit/biomes/mallory/models",
                Some(json!({ "models": [attacker.registration("linear")] })),
            ),
            // Even a body that is not a registration learns nothing but that it needs the token.
            (
                "PUT",
                "/sandpit/biomes/alice/models",
                Some(json!({ "nope": 1 })),
            ),
            ("DELETE", "/sandpit/biomes/alice/models", None),
            ("DELETE", "/sandpit/biomes/_base/models", None),
        ];
        for (method, uri, body) in calls {
            let (status, answer) = server.call_with(method, uri, body, authorization).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {authorization:?}: {answer}"
            );
            let message = error(&answer);
            assert!(message.contains(needle), "{authorization:?}: {message}");
            assert!(message.contains("\nhint: "), "{message}");
            assert!(!message.contains(server.token.expose()), "{message}");
        }
    }
    assert_unchanged(&server).await;

    // With the token, the same registration is taken (from the server's store).
    let v2 = server.package(V2, "linear");
    let (status, answer) = server
        .admin(
            "PUT",
            "/sandpit/biomes/alice/models",
            Some(json!({ "models": [v2.registration("linear")] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(server.linear_y("/biomes/alice", "linear", X).await, V2_Y);
    let (status, _) = server
        .admin("DELETE", "/sandpit/biomes/alice/models", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.linear("/biomes/alice", "linear", X).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_401_says_how_to_authenticate() {
    let server = Server::new(config());
    let response = tower::ServiceExt::oneshot(
        server.app.clone(),
        axum::http::Request::delete("/sandpit/biomes/alice/models")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"sandpit-models\""
    );
}

#[tokio::test]
async fn a_token_file_others_can_read_is_not_trusted() {
    let server = served().await;
    let token_file = server.secrets.path().join("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, answer) = server
        .admin("DELETE", "/sandpit/biomes/alice/models", None)
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let message = error(&answer);
    assert!(
        message.contains("cannot check registration credentials"),
        "{message}"
    );
    // Where the file is, and why it is refused, is for the log.
    assert!(
        !message.contains(&token_file.display().to_string()),
        "{message}"
    );
    assert_unchanged(&server).await;
    // Private again (as sandpit rewrites it), it is honoured again.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, _) = server
        .admin("DELETE", "/sandpit/biomes/alice/models", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// A file outside the server's store holding `bytes`, readable by its owner only (like a file
/// only root may read), and its real digest.
fn private_file(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, hex::encode(Sha256::digest(bytes)))
}

fn registration(name: &str, path: &Path, digest: &str) -> Value {
    json!({ "name": name, "artifact": format!("{name}.zip"), "digest": digest, "path": path, "file": "model.onnx" })
}

const MADE_UP: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Every answer about `name` (inference, readiness, metadata, load, the index), so a test can
/// insist none of them carries a digest.
async fn answers_about(server: &Server, prefix: &str, name: &str) -> String {
    let mut all = Vec::new();
    all.push(server.linear(prefix, name, X).await);
    for (method, uri) in [
        ("GET", format!("{prefix}/v2/models/{name}/ready")),
        ("GET", format!("{prefix}/v2/models/{name}")),
        ("POST", format!("{prefix}/v2/repository/models/{name}/load")),
        ("POST", format!("{prefix}/v2/repository/index")),
    ] {
        all.push(server.call(method, &uri, None).await);
    }
    format!("{all:?}")
}

#[tokio::test]
async fn artifacts_outside_the_stores_are_refused_without_reading_them() {
    let server = served().await;
    let outside = tempfile::tempdir().unwrap();
    // A real model, packaged outside the store: before the fix it loaded and answered.
    let foreign = package(outside.path(), V2, "linear");
    let (secret, secret_digest) = private_file(outside.path(), "secret", b"root's eyes only\n");
    let linked = server.dir.path().join("linear-link.zip");
    std::os::unix::fs::symlink(&foreign.path, &linked).unwrap();
    let secret_link = server.dir.path().join("secret-link.zip");
    std::os::unix::fs::symlink(&secret, &secret_link).unwrap();
    let store = server.dir.path().display().to_string();
    let escape = PathBuf::from(format!("{store}/../{}", outside.path().display()));

    // (registered path, digest, status, what the message says)
    let cases: Vec<(PathBuf, String, StatusCode, &str)> = vec![
        (
            PathBuf::from("/etc/passwd"),
            MADE_UP.to_owned(),
            StatusCode::FORBIDDEN,
            "is not inside an artifact store this endpoint serves",
        ),
        (
            secret.clone(),
            MADE_UP.to_owned(),
            StatusCode::FORBIDDEN,
            "is not inside an artifact store this endpoint serves",
        ),
        (
            foreign.path.clone(),
            foreign.digest.clone(),
            StatusCode::FORBIDDEN,
            "is not inside an artifact store this endpoint serves",
        ),
        (
            linked.clone(),
            foreign.digest.clone(),
            StatusCode::FORBIDDEN,
            "leads outside the artifact stores",
        ),
        (
            secret_link.clone(),
            MADE_UP.to_owned(),
            StatusCode::FORBIDDEN,
            "leads outside the artifact stores",
        ),
        (
            escape.join("secret"),
            MADE_UP.to_owned(),
            StatusCode::BAD_REQUEST,
            "must be absolute and without `..`",
        ),
        (
            PathBuf::from("secret"),
            MADE_UP.to_owned(),
            StatusCode::BAD_REQUEST,
            "must be absolute and without `..`",
        ),
    ];
    let v1 = server.package(V1, "linear");
    for (path, digest, status, needle) in cases {
        // Alone, and beside a good model: either way the whole registration is refused.
        for models in [
            vec![registration("linear", &path, &digest)],
            vec![
                v1.registration("good"),
                registration("linear", &path, &digest),
            ],
        ] {
            let (got, answer) = server
                .admin(
                    "PUT",
                    "/sandpit/biomes/alice/models",
                    Some(json!({ "models": models })),
                )
                .await;
            assert_eq!(got, status, "{}: {answer}", path.display());
            let message = error(&answer);
            assert!(message.contains(needle), "{}: {message}", path.display());
            assert!(!message.contains(&secret_digest), "{message}");
        }
    }
    let refused_hint = server
        .admin(
            "PUT",
            "/sandpit/biomes/alice/models",
            Some(json!({ "models": [registration("linear", &secret, MADE_UP)] })),
        )
        .await
        .1;
    assert!(
        error(&refused_hint).contains(&format!(
            "\nhint: register artifacts from the stores this endpoint serves ({store})"
        )),
        "{refused_hint}"
    );

    assert_unchanged(&server).await;
    let (status, _) = server.linear("/biomes/alice", "good", X).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the good model beside a refused one is not taken"
    );
    let said = answers_about(&server, "/biomes/alice", "linear").await;
    assert!(!said.contains(&secret_digest), "{said}");
}

#[tokio::test]
async fn a_registered_artifact_is_read_where_it_resolved_not_through_a_link_put_there_later() {
    let server = served().await;
    let v2 = server.package(V2, "linear");
    let (status, answer) = server
        .admin(
            "PUT",
            "/sandpit/biomes/bob/models",
            Some(json!({ "models": [v2.registration("linear")] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The artifact is swapped for a link to a private file before its first load.
    let outside = tempfile::tempdir().unwrap();
    let (secret, secret_digest) = private_file(outside.path(), "secret", b"root's eyes only\n");
    std::fs::remove_file(&v2.path).unwrap();
    std::os::unix::fs::symlink(&secret, &v2.path).unwrap();
    let said = answers_about(&server, "/biomes/bob", "linear").await;
    assert!(!said.contains(&secret_digest), "{said}");
    let (status, answer) = server.linear("/biomes/bob", "linear", X).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
}

/// The restore of saved registrations at start (`sandpit model-server --registrations`) goes
/// through `AppState::register`, the same checks as the API.
#[tokio::test]
async fn restoring_saved_registrations_refuses_files_outside_the_stores_too() {
    let server = Server::new(config());
    let outside = tempfile::tempdir().unwrap();
    let foreign = package(outside.path(), V2, "linear");
    let (secret, secret_digest) = private_file(outside.path(), "secret", b"root's eyes only\n");
    let inside = server.dir.path().join("link.zip");
    std::os::unix::fs::symlink(&secret, &inside).unwrap();
    let saved = |path: &Path, digest: &str| sandpit_models::RegisteredModel {
        name: "linear".to_owned(),
        artifact: "linear.zip".to_owned(),
        digest: digest.to_owned(),
        path: path.to_path_buf(),
        file: "model.onnx".to_owned(),
    };
    for (biome, model) in [
        ("mallory", saved(&foreign.path, &foreign.digest)),
        ("trudy", saved(&inside, MADE_UP)),
        ("eve", saved(Path::new("/etc/passwd"), MADE_UP)),
    ] {
        let refusal = server
            .state
            .register(Some(biome), vec![model])
            .unwrap_err()
            .to_string();
        assert!(
            refusal.contains("outside the artifact stores")
                || refusal.contains("not inside an artifact store"),
            "{biome}: {refusal}"
        );
        assert!(!refusal.contains(&secret_digest), "{refusal}");
        let (status, answer) = server
            .linear(&format!("/biomes/{biome}"), "linear", X)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{biome}: {answer}");
        assert!(error(&answer).contains(&format!("biome `{biome}` is not known")));
    }
    // A saved registration inside the store is restored as before.
    let v1 = server.package(V1, "linear");
    let restored = server
        .state
        .register(None, vec![saved(&v1.path, &v1.digest)])
        .unwrap();
    assert_eq!(restored, 1);
    assert_eq!(server.linear_y("", "linear", X).await, V1_Y);
}
