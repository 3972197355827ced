//! Biomes: fallback to the base, overrides, `<biome>.<model>` at the root, plain names under a
//! prefix, SageMaker's `/invocations`, unknown biomes, and which version answers.

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
    // bob's branch declares no models: he is known, and gets the base's.
    server.register("bob", &[]).await;
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
            .admin(
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

fn error(answer: &serde_json::Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {answer}"))
}

/// Regression: any biome name, existing or not, used to be answered with the base's models.
#[tokio::test]
async fn unknown_biomes_are_404_naming_the_biome_on_every_route() {
    let server = two_versions().await;
    let version = server.package(V1, "linear").version;
    let infer_body =
        json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": X }] });
    let mut requests = Vec::new();
    for (method, path) in [
        ("GET", "/v2".to_string()),
        ("GET", "/v2/health/live".to_string()),
        ("GET", "/v2/health/ready".to_string()),
        ("GET", "/v2/models/linear".to_string()),
        ("GET", "/v2/models/linear/ready".to_string()),
        ("POST", "/v2/models/linear/infer".to_string()),
        ("POST", "/v2/models/nothing/infer".to_string()),
        ("POST", "/v2/models/alice.linear/infer".to_string()),
        ("GET", format!("/v2/models/linear/versions/{version}")),
        ("GET", format!("/v2/models/linear/versions/{version}/ready")),
        (
            "POST",
            format!("/v2/models/linear/versions/{version}/infer"),
        ),
        ("POST", "/v2/repository/index".to_string()),
        ("POST", "/v2/repository/models/linear/load".to_string()),
        ("POST", "/v2/repository/models/linear/unload".to_string()),
    ] {
        requests.push((method, format!("/biomes/typo{path}"), None));
    }
    for (method, path) in [
        ("GET", "/v2/models/typo.linear".to_string()),
        ("GET", "/v2/models/typo.linear/ready".to_string()),
        ("POST", "/v2/models/typo.linear/infer".to_string()),
        ("POST", "/v2/models/typo.nothing/infer".to_string()),
        ("GET", format!("/v2/models/typo.linear/versions/{version}")),
        (
            "POST",
            format!("/v2/models/typo.linear/versions/{version}/infer"),
        ),
        ("POST", "/v2/repository/models/typo.linear/load".to_string()),
        (
            "POST",
            "/v2/repository/models/typo.linear/unload".to_string(),
        ),
    ] {
        requests.push((method, path, None));
    }
    // SageMaker: a biome prefix (with or without the header) or the header's `<biome>.<model>`.
    requests.push((
        "POST",
        "/biomes/typo/invocations".to_string(),
        Some("linear"),
    ));
    requests.push(("POST", "/biomes/typo/invocations".to_string(), None));
    requests.push(("POST", "/invocations".to_string(), Some("typo.linear")));
    for (method, uri, target) in requests {
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json");
        if let Some(target) = target {
            request = request.header("X-Amzn-SageMaker-Target-Model", target);
        }
        let body = if method == "POST" && !uri.contains("/repository/") {
            Body::from(infer_body.to_string())
        } else {
            Body::empty()
        };
        let (status, answer) = server.request(request.body(body).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
        assert!(
            error(&answer).starts_with(
                "biome `typo` is not known to this model endpoint: it was never brought up in this environment, or it has been taken down"
            ),
            "{method} {uri}: {answer}"
        );
    }
    // Nothing was loaded on behalf of the unknown biome, and it is counted as unknown.
    assert_eq!(server.metric("sandpit_models_loaded").await, 0.0);
    assert_eq!(
        server
            .metric("sandpit_model_requests_total{model=\"_unknown\",code=\"404\"}")
            .await,
        8.0
    );
    // Known biomes and the base still answer.
    assert_eq!(server.linear_y("/biomes/bob", "linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("", "alice.linear", X).await, ALICE_Y);
}

/// Regression: a biome taken down kept answering with the base's models.
#[tokio::test]
async fn an_unregistered_biome_is_unknown_afterwards() {
    let server = two_versions().await;
    assert_eq!(server.linear_y("/biomes/bob", "linear", X).await, BASE_Y);
    assert_eq!(server.linear_y("", "alice.linear", X).await, ALICE_Y);
    for biome in ["alice", "bob"] {
        let (status, _) = server
            .admin("DELETE", &format!("/sandpit/biomes/{biome}/models"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        for (prefix, name) in [
            (format!("/biomes/{biome}"), "linear".to_string()),
            (String::new(), format!("{biome}.linear")),
        ] {
            let (status, answer) = server.linear(&prefix, &name, X).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{prefix} {name}: {answer}");
            assert!(
                error(&answer).contains(&format!("biome `{biome}` is not known")),
                "{answer}"
            );
        }
    }
    assert_eq!(server.linear_y("", "linear", X).await, BASE_Y);
}

/// Regression: metadata's `versions` was always `["1"]`.
#[tokio::test]
async fn versions_say_which_artifact_answers() {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    let v2 = server.package(V2, "linear");
    assert_ne!(v1.version, v2.version);
    server.register("_base", &[("linear", &v1)]).await;
    server.register("alice", &[("linear", &v2)]).await;
    server.register("bob", &[]).await;
    // (prefix, name, the version that answers)
    let cases = [
        ("", "linear", &v1.version),
        ("", "alice.linear", &v2.version),
        ("", "bob.linear", &v1.version),
        ("/biomes/alice", "linear", &v2.version),
        ("/biomes/bob", "linear", &v1.version),
    ];
    for (prefix, name, version) in cases {
        let (status, answer) = server
            .call("GET", &format!("{prefix}/v2/models/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{prefix} {name}: {answer}");
        assert_eq!(answer["versions"], json!([version]), "{prefix} {name}");
        let (status, answer) = server.linear(prefix, name, X).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["model_version"], json!(version), "{prefix} {name}");
        assert_eq!(answer["model_name"], json!(name));

        // The versioned routes answer for that version only.
        let versioned = format!("{prefix}/v2/models/{name}/versions/{version}");
        let (status, answer) = server.call("GET", &versioned, None).await;
        assert_eq!(status, StatusCode::OK, "{versioned}: {answer}");
        assert_eq!(answer["versions"], json!([version]));
        let (status, answer) = server
            .call("GET", &format!("{versioned}/ready"), None)
            .await;
        assert_eq!(
            (status, answer),
            (StatusCode::OK, json!({ "name": name, "ready": true })),
            "{versioned}"
        );
        let body =
            json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": X }] });
        let (status, answer) = server
            .call("POST", &format!("{versioned}/infer"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{versioned}: {answer}");
        assert_eq!(answer["model_version"], json!(version));
    }
    let index = server.call("POST", "/v2/repository/index", None).await.1;
    assert_eq!(
        index
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["version"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("alice.linear", v2.version.as_str()),
            ("linear", v1.version.as_str())
        ]
    );

    // Another version (alice's at the root, the base's in alice, a made-up one) is 404 naming
    // the one that answers.
    let body =
        json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": X }] });
    for (method, uri, served) in [
        (
            "GET",
            format!("/v2/models/linear/versions/{}", v2.version),
            &v1.version,
        ),
        (
            "GET",
            format!("/v2/models/linear/versions/{}/ready", v2.version),
            &v1.version,
        ),
        (
            "POST",
            format!("/v2/models/linear/versions/{}/infer", v2.version),
            &v1.version,
        ),
        (
            "GET",
            "/v2/models/linear/versions/1".to_string(),
            &v1.version,
        ),
        (
            "POST",
            format!(
                "/biomes/alice/v2/models/linear/versions/{}/infer",
                v1.version
            ),
            &v2.version,
        ),
        (
            "GET",
            format!("/v2/models/alice.linear/versions/{}", v1.version),
            &v2.version,
        ),
    ] {
        let (status, answer) = server.call(method, &uri, Some(body.clone())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {answer}");
        assert!(
            error(&answer).contains(&format!("is served at version `{served}`")),
            "{uri}: {answer}"
        );
    }
    // An unknown model is still an unknown model, whatever version is asked for.
    let (status, answer) = server.call("GET", "/v2/models/nope/versions/1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error(&answer).contains("unknown model `nope`"), "{answer}");
}
