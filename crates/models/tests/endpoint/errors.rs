//! Client mistakes answer 4xx naming what was expected, and never affect other requests.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{config, Server, V1};

async fn linear_server(config: sandpit_models::ServerConfig) -> Server {
    let server = Server::new(config);
    let v1 = server.package(V1, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    server
}

fn error(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {answer}"))
}

#[tokio::test]
async fn unknown_models_are_404() {
    let server = linear_server(config()).await;
    server.register("alice", &[]).await;
    for (method, uri) in [
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("POST", "/v2/repository/models/nope/load"),
        ("GET", "/biomes/alice/v2/models/nope"),
    ] {
        let (status, answer) = server.call(method, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {answer}");
        assert!(error(&answer).contains("unknown model `nope`"), "{answer}");
    }
    let (status, answer) = server.linear("", "nope", [1.0, 2.0, 3.0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer, json!({ "error": "unknown model `nope`" }));
}

#[tokio::test]
async fn wrong_inputs_are_400_naming_what_was_expected() {
    let server = linear_server(config()).await;
    let cases = [
        (
            json!({ "name": "z", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }),
            "the model has no input `z`; its inputs are `x` FP32 [-1, 3]",
        ),
        (
            json!({ "name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3] }),
            "input `x` expects FP32 with shape [-1, 3], got FP64 [1, 3]",
        ),
        (
            json!({ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }),
            "input `x` expects FP32 with shape [-1, 3], got FP32 [1, 4]",
        ),
        (
            json!({ "name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3] }),
            "input `x` expects FP32 with shape [-1, 3], got FP32 [3]",
        ),
        (
            json!({ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2] }),
            "input `x`: shape [1, 3] needs 3 values, got 2",
        ),
        (
            json!({ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "two", 3] }),
            "input `x`: `data[1]` (`\"two\"`) is a string, not a number; FP32 data are JSON numbers, which cannot be NaN or infinite (send those in the binary tensor extension)",
        ),
    ];
    for (input, expected) in cases {
        let (status, answer) = server
            .call(
                "POST",
                "/v2/models/linear/infer",
                Some(json!({ "inputs": [input] })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(error(&answer), expected);
    }
    let (status, answer) = server
        .call(
            "POST",
            "/v2/models/linear/infer",
            Some(json!({ "inputs": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&answer).contains("input `x` (FP32 [-1, 3]) is missing"),
        "{answer}"
    );
    let bad_json = Request::post("/v2/models/linear/infer")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, answer) = server.request(bad_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&answer).contains("not a valid inference request"),
        "{answer}"
    );
    // The model still answers correctly afterwards.
    assert_eq!(server.linear_y("", "linear", [1.0, 2.0, 3.0]).await, 14.5);
    assert_eq!(
        server
            .metric("sandpit_model_requests_total{model=\"linear\",code=\"400\"}")
            .await,
        8.0
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = linear_server(sandpit_models::ServerConfig {
        limits: sandpit_models::Limits {
            max_body_bytes: 1024,
            ..Default::default()
        },
        ..config()
    })
    .await;
    let data: Vec<f32> = (0..3000).map(|i| i as f32).collect();
    let body = json!({ "inputs": [{ "name": "x", "shape": [1000, 3], "datatype": "FP32", "data": data }] });
    let (status, answer) = server
        .call("POST", "/v2/models/linear/infer", Some(body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        error(&answer).contains("larger than the endpoint's limit"),
        "{answer}"
    );
    let (status, _) = server
        .call(
            "POST",
            "/invocations",
            Some(json!({ "pad": "x".repeat(2000) })),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(server.linear_y("", "linear", [1.0, 0.0, 0.0]).await, 1.5);
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let server = linear_server(config()).await;
    let (status, answer) = server.call("GET", "/v3/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer, json!({ "error": "no such endpoint" }));
    let (status, answer) = server
        .call("GET", "/biomes/Bad_Name/v2/models/linear", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn a_corrupt_artifact_fails_that_model_only_and_is_retried() {
    let server = linear_server(sandpit_models::ServerConfig {
        retry_after: std::time::Duration::from_millis(1000),
        ..config()
    })
    .await;
    let good = server.package(crate::support::V2, "other");
    let original = std::fs::read(&good.path).unwrap();
    let mut corrupt = original.clone();
    let last = corrupt.len() - 30;
    corrupt[last] ^= 0xff;
    std::fs::write(&good.path, &corrupt).unwrap();
    let corrupt_digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&corrupt));
    server.register("alice", &[("other", &good)]).await;

    let (status, answer) = server.linear("", "alice.other", [1.0, 2.0, 3.0]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let message = error(&answer);
    assert!(message.contains("failed to load"), "{message}");
    assert!(
        message.contains(&good.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&good.digest), "{message}");
    // What the bytes hash to is the log's business: anyone may ask for inference.
    assert!(!message.contains(&corrupt_digest), "{message}");
    // Other models keep serving; the failure is reported by the index and readiness.
    assert_eq!(server.linear_y("", "linear", [1.0, 2.0, 3.0]).await, 14.5);
    let (status, answer) = server
        .call("GET", "/v2/models/alice.other/ready", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("digest"), "{answer}");
    assert_eq!(server.index("").await["alice.other"], "UNAVAILABLE");
    assert_eq!(
        server
            .metric("sandpit_model_load_failures_total{model=\"alice.other\"}")
            .await,
        1.0
    );

    // Within the backoff the failure is reported without another attempt; after it, retried.
    let (status, _) = server.linear("", "alice.other", [1.0, 2.0, 3.0]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server
            .metric("sandpit_model_load_failures_total{model=\"alice.other\"}")
            .await,
        1.0
    );
    std::fs::write(&good.path, &original).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        server.linear_y("", "alice.other", [1.0, 2.0, 3.0]).await,
        139.0
    );
}

#[tokio::test]
async fn an_artifact_that_loads_but_has_another_digest_is_never_served() {
    // The digest is checked alongside the session's creation: here the engine builds a session
    // from the bytes without complaint, and the mismatch alone must keep it from answering.
    let server = linear_server(config()).await;
    let mut other = server.package(crate::support::V2, "other");
    other.digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            b"the bytes that were registered"
        ))
    );
    server.register("alice", &[("other", &other)]).await;

    let (status, answer) = server.linear("", "alice.other", [1.0, 2.0, 3.0]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let message = error(&answer);
    assert!(
        message.contains("does not match the digest it was registered with"),
        "{message}"
    );
    assert!(message.contains(&other.digest), "{message}");
    let (status, _) = server
        .call("GET", "/v2/models/alice.other/ready", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"alice.other\"}")
            .await,
        0.0
    );
    assert_eq!(server.linear_y("", "linear", [1.0, 2.0, 3.0]).await, 14.5);
}

#[tokio::test]
async fn an_unsupported_model_fails_to_load_naming_the_operator() {
    let server = linear_server(config()).await;
    // A raw ONNX file (not a zip) is accepted too; its digest is the file's.
    let path = server.dir.path().join("unsupported.onnx");
    std::fs::copy(crate::support::model_file("unsupported.onnx"), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    let linear = server.package(V1, "linear");
    let body = json!({ "models": [
        linear.registration("linear"),
        { "name": "odd", "artifact": "odd.onnx", "digest": digest, "path": path, "file": "unsupported.onnx" },
    ] });
    let (status, answer) = server
        .admin("PUT", "/sandpit/biomes/_base/models", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = server
        .call("POST", "/v2/repository/models/odd/load", None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(error(&answer).contains("Frobnicate"), "{answer}");
    assert_eq!(server.linear_y("", "linear", [1.0, 2.0, 3.0]).await, 14.5);
}
