//! Biomes: fallback to the base, overrides, `<biome>.<model>` at the root, plain names under a
//! prefix, and SageMaker's `/invocations`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{config, Server, V1, V2};

const X: [f32; 3] = [1.0, 2.0, 3.0];
/// [1, 2, 3]·[1, 2, 3] + 0.5
const BASE_Y: f64 = 14.5;
/// [1, 2, 3]·[10, 20, 30] - 1
const ALICE_Y: f64 = 139.0;

async fn two_versions() -> Server {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    let v2 = server.package(V2, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    server.register("alice", &[("linear", &v2)]).await;
    server
}

#[tokio::test]
async fn biomes_override_or_fall_back_to_the_base() {
    let server = two_versions().await;
    assert_eq!(server.linear_y("", "linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("", "alice.linear", X).await, ALICE_Y);
    assert_eq!(server.linear_y("", "bob.linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("/biomes/alice", "linear", X).await, ALICE_Y);
    assert_eq!(server.linear_y("/biomes/bob", "linear", X).await, BASE_Y);
    // Under a prefix only plain names resolve.
    let (status, _) = server.linear("/biomes/bob", "alice.linear", X).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Metadata and readiness answer under the prefix too.
    let (status, answer) = server
        .call("GET", "/biomes/alice/v2/models/linear", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = server
        .call("GET", "/biomes/alice/v2/health/ready", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Two digests, however many names used them.
    assert_eq!(server.metric("sandpit_models_loaded").await, 2.0);
    assert_eq!(
        server.index("").await.keys().cloned().collect::<Vec<_>>(),
        ["alice.linear", "linear"]
    );
    assert_eq!(
        server
            .index("/biomes/bob")
            .await
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["linear"]
    );
}

#[tokio::test]
async fn identical_digests_are_loaded_once() {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    server
        .register("bob", &[("linear", &v1), ("other", &v1)])
        .await;
    assert_eq!(server.linear_y("", "linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("", "bob.linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("/biomes/bob", "other", X).await, BASE_Y);
    let metrics = server.metrics().await;
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_models_loaded"),
        1.0
    );
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_model_loads_total{model=\"linear\"}"),
        1.0
    );
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_model_cache_hits_total"),
        2.0
    );
}

async fn invoke(
    server: &Server,
    prefix: &str,
    target: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let body =
        json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": X }] });
    let mut request =
        Request::post(format!("{prefix}/invocations")).header("content-type", "application/json");
    if let Some(target) = target {
        request = request.header("X-Amzn-SageMaker-Target-Model", target);
    }
    server
        .request(request.body(Body::from(body.to_string())).unwrap())
        .await
}

#[tokio::test]
async fn sagemaker_invocations_take_either_header_form() {
    let server = two_versions().await;
    for (prefix, target, expected) in [
        ("", "linear", BASE_Y),
        ("", "alice.linear", ALICE_Y),
        ("", "bob.linear", BASE_Y),
        ("/biomes/alice", "linear", ALICE_Y),
    ] {
        let (status, answer) = invoke(&server, prefix, Some(target)).await;
        assert_eq!(status, StatusCode::OK, "{prefix} {target}: {answer}");
        assert_eq!(
            answer["outputs"][0]["data"][0].as_f64().unwrap(),
            expected,
            "{prefix} {target}"
        );
    }
    let (status, answer) = invoke(&server, "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("X-Amzn-SageMaker-Target-Model"));
    let (status, _) = invoke(&server, "", Some("nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let metrics = server.metrics().await;
    // `alice.linear` at the root and `linear` under /biomes/alice are the same address.
    assert_eq!(
        crate::support::metric(
            &metrics,
            "sandpit_model_requests_total{model=\"alice.linear\",code=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        crate::support::metric(
            &metrics,
            "sandpit_model_requests_total{model=\"_unknown\",code=\"404\"}"
        ),
        1.0
    );
    assert!(
        metrics.contains("sandpit_model_request_seconds_count{model=\"linear\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn registration_is_validated() {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    for (biome, body, needle) in [
        (
            "Not_A_Name",
            json!({ "models": [v1.registration("linear")] }),
            "biome",
        ),
        (
            "alice",
            json!({ "models": [v1.registration("Bad Name")] }),
            "Bad Name",
        ),
        (
            "alice",
            json!({ "models": [{ "name": "m", "artifact": "a", "digest": "md5:x", "path": "/x", "file": "f" }] }),
            "`m`",
        ),
        (
            "alice",
            json!({ "models": [v1.registration("linear"), v1.registration("linear")] }),
            "twice",
        ),
        ("alice", json!({ "nope": 1 }), "not valid"),
    ] {
        let (status, answer) = server
            .call(
                "PUT",
                &format!("/sandpit/biomes/{biome}/models"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{needle}: {answer}"
        );
    }
}
