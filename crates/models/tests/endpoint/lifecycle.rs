//! Loading, eviction, the memory budget, single-flight loads, the repository API and unregistering.

use std::time::Duration;

use axum::http::StatusCode;
use sandpit_models::{OrtEngine, ServerConfig};
use serde_json::json;

use crate::support::{config, Server, V1, V2};

const X: [f32; 3] = [1.0, 2.0, 3.0];

/// Three models with distinct digests: a (v1), b (v2), c (v1 registered from another zip name
/// but identical bytes would share a digest, so c is the datatypes model).
async fn three_models(config: ServerConfig) -> Server {
    let server = Server::new(config);
    let a = server.package(V1, "a");
    let b = server.package(V2, "b");
    let c = server.package("datatypes.onnx", "c");
    server
        .register("_base", &[("a", &a), ("b", &b), ("c", &c)])
        .await;
    server
}

async fn use_c(server: &Server) {
    let (status, answer) = server
        .call("POST", "/v2/repository/models/c/load", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn check_lru(server: &Server) {
    assert_eq!(server.linear_y("", "a", X).await, 14.5);
    assert_eq!(server.linear_y("", "b", X).await, 139.0);
    assert_eq!(server.linear_y("", "a", X).await, 14.5); // a is now the most recently used
    assert_eq!(server.metric("sandpit_model_evictions_total").await, 0.0);
    use_c(server).await; // evicts b, the least recently used
    let index = server.index("").await;
    assert_eq!(index["a"], "READY");
    assert_eq!(index["b"], "UNAVAILABLE");
    assert_eq!(index["c"], "READY");
    let metrics = server.metrics().await;
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_model_evictions_total"),
        1.0
    );
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_models_loaded"),
        2.0
    );
    // b comes back on demand (evicting a, now the least recently used) with the same answer.
    assert_eq!(server.linear_y("", "b", X).await, 139.0);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"b\"}")
            .await,
        2.0
    );
    assert_eq!(server.metric("sandpit_model_evictions_total").await, 2.0);
    assert_eq!(server.index("").await["a"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_third_model_evicts_the_least_recently_used_by_count() {
    check_lru(
        &three_models(ServerConfig {
            max_models: 2,
            ..config()
        })
        .await,
    )
    .await;
}

#[tokio::test]
async fn a_third_model_evicts_the_least_recently_used_by_memory() {
    let datatypes = std::fs::metadata(crate::support::model_file("datatypes.onnx"))
        .unwrap()
        .len() as usize;
    // Room for two of the models (the largest twice), not three.
    let budget = 2 * OrtEngine::estimate_memory(datatypes) + 16;
    let server = three_models(ServerConfig {
        max_memory_bytes: budget,
        ..config()
    })
    .await;
    check_lru(&server).await;
    assert!(server.metric("sandpit_models_memory_bytes").await <= budget as f64);
}

#[tokio::test]
async fn a_model_that_cannot_fit_is_507_and_others_are_kept() {
    let server = Server::new(ServerConfig {
        max_memory_bytes: OrtEngine::estimate_memory(200),
        ..config()
    });
    let small = server.package(V1, "small");
    let big = server.package("datatypes.onnx", "big");
    server
        .register("_base", &[("small", &small), ("big", &big)])
        .await;
    assert_eq!(server.linear_y("", "small", X).await, 14.5);
    let (status, answer) = server
        .call("POST", "/v2/repository/models/big/load", None)
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("budget"),
        "{answer}"
    );
    let body = json!({ "inputs": [] });
    let (status, _) = server
        .call("POST", "/v2/models/big/infer", Some(body))
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    // Nothing was evicted for a model that could never fit.
    assert_eq!(server.metric("sandpit_model_evictions_total").await, 0.0);
    assert_eq!(server.index("").await["small"], "READY");
}

#[tokio::test]
async fn repository_load_ready_and_unload() {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    let (status, answer) = server.call("POST", "/v2/repository/index", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!([{ "name": "linear", "version": v1.version, "state": "UNAVAILABLE", "reason": "unloaded" }])
    );
    let (status, _) = server.call("GET", "/v2/models/linear/ready", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = server
        .call(
            "POST",
            "/v2/repository/index",
            Some(json!({ "ready": true })),
        )
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!([])));

    let (status, _) = server
        .call("POST", "/v2/repository/models/linear/load", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = server.call("GET", "/v2/models/linear/ready", None).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({ "name": "linear", "ready": true }))
    );
    assert_eq!(server.index("").await["linear"], "READY");
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"linear\"}")
            .await,
        1.0
    );
    assert!(server.metric("sandpit_model_load_seconds_count").await >= 1.0);
    // Each phase of the load is timed: the artifact is a zip, so extracting takes time too.
    let metrics = server.metrics().await;
    for phase in ["read", "verify", "extract", "session"] {
        let series = |suffix: &str| {
            format!("sandpit_model_load_phase_seconds_{suffix}{{phase=\"{phase}\"}}")
        };
        assert_eq!(
            crate::support::metric(&metrics, &series("count")),
            1.0,
            "{phase}\n{metrics}"
        );
        assert!(
            crate::support::metric(&metrics, &series("sum")) > 0.0,
            "{phase}\n{metrics}"
        );
    }

    let (status, _) = server
        .call("POST", "/v2/repository/models/linear/unload", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.call("GET", "/v2/models/linear/ready", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(server.metric("sandpit_models_loaded").await, 0.0);
    // The next request loads it again.
    assert_eq!(server.linear_y("", "linear", X).await, 14.5);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"linear\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn unregistering_a_biome_unloads_its_models_but_not_shared_digests() {
    let server = Server::new(config());
    let v1 = server.package(V1, "linear");
    let v2 = server.package(V2, "linear");
    server.register("_base", &[("linear", &v1)]).await;
    server.register("alice", &[("linear", &v2)]).await;
    server.register("bob", &[("linear", &v1)]).await;
    assert_eq!(server.linear_y("", "alice.linear", X).await, 139.0);
    assert_eq!(server.linear_y("/biomes/bob", "linear", X).await, 14.5);
    assert_eq!(server.metric("sandpit_models_loaded").await, 2.0);

    let (status, answer) = server
        .admin("DELETE", "/sandpit/biomes/alice/models", None)
        .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({ "biome": "alice", "models": 1 }))
    );
    assert_eq!(server.metric("sandpit_models_loaded").await, 1.0);
    // alice is now unknown: the base does not answer in her name.
    let (status, answer) = server.linear("/biomes/alice", "linear", X).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("biome `alice` is not known"),
        "{answer}"
    );
    // Registered again with no models of her own, she falls back to the base's version.
    server.register("alice", &[]).await;
    assert_eq!(server.linear_y("/biomes/alice", "linear", X).await, 14.5);

    // bob's digest is also the base's: it stays loaded.
    let (status, _) = server
        .admin("DELETE", "/sandpit/biomes/bob/models", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.call("GET", "/v2/models/linear/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"linear\"}")
            .await,
        0.0
    );

    // Re-registering the base without the model unloads it and makes it unknown.
    let (status, _) = server
        .admin(
            "PUT",
            "/sandpit/biomes/_base/models",
            Some(json!({ "models": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.metric("sandpit_models_loaded").await, 0.0);
    let (status, _) = server.linear("", "linear", X).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Over a real socket: 20 concurrent first requests share one load, and a slow load does not hold
/// up another model.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_load_once_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = crate::support::package(dir.path(), V1, "linear");
    let secrets = tempfile::tempdir().unwrap();
    let (config, token) = crate::support::secured(config(), dir.path(), secrets.path());
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
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("http://{address}");
    let registration = json!({ "models": [v1.registration("linear")] });
    let response = client
        .put(format!("{base}/sandpit/biomes/_base/models"))
        .bearer_auth(token.expose())
        .body(registration.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    let requests = (0..20).map(|i| {
        let client = client.clone();
        let url = format!("{base}/v2/models/linear/infer");
        tokio::spawn(async move {
            let x = i as f32;
            let body = json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": [x, 0, 1] }] });
            let response = client.post(url).body(body.to_string()).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            let answer: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            // x·[1, 2, 3] + 0.5 with x = [i, 0, 1]
            assert_eq!(answer["outputs"][0]["data"][0].as_f64().unwrap(), f64::from(x) + 3.5);
        })
    });
    for request in requests.collect::<Vec<_>>() {
        request.await.unwrap();
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        crate::support::metric(&metrics, "sandpit_model_loads_total{model=\"linear\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        crate::support::metric(
            &metrics,
            "sandpit_model_requests_total{model=\"linear\",code=\"200\"}"
        ),
        20.0
    );
    let live = client
        .get(format!("{base}/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), reqwest::StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// ONNX Runtime, but loading the model of `slow_len` bytes takes `delay`; counts loads.
struct SlowEngine {
    inner: std::sync::Arc<dyn sandpit_models::Engine>,
    slow_len: usize,
    delay: Duration,
    loads: std::sync::atomic::AtomicUsize,
}

impl sandpit_models::Engine for SlowEngine {
    fn load(
        &self,
        onnx: &[u8],
    ) -> Result<Box<dyn sandpit_models::LoadedModel>, sandpit_models::ModelError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if onnx.len() == self.slow_len {
            std::thread::sleep(self.delay);
        }
        self.inner.load(onnx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_load_is_shared_and_blocks_no_other_model() {
    let slow_len = std::fs::metadata(crate::support::model_file("datatypes.onnx"))
        .unwrap()
        .len() as usize;
    let engine = std::sync::Arc::new(SlowEngine {
        inner: crate::support::engine(),
        slow_len,
        delay: Duration::from_millis(1500),
        loads: Default::default(),
    });
    let server = std::sync::Arc::new(Server::with_engine(config(), engine.clone()));
    let fast = server.package(V1, "fast");
    let slow = server.package("datatypes.onnx", "slow");
    server
        .register("_base", &[("fast", &fast), ("slow", &slow)])
        .await;
    assert_eq!(server.linear_y("", "fast", X).await, 14.5);

    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call("POST", "/v2/repository/models/slow/load", None)
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.index("").await["slow"], "LOADING");
    let started = std::time::Instant::now();
    assert_eq!(server.linear_y("", "fast", X).await, 14.5);
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "fast waited {:?}",
        started.elapsed()
    );
    for request in waiting {
        let (status, answer) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // One load of `fast` and one of `slow`, however many asked.
    assert_eq!(engine.loads.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"slow\"}")
            .await,
        1.0
    );
}
