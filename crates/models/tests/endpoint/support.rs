//! Shared fixtures: the engine, artifacts packaged like sandpit packages them, and HTTP helpers.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use sandpit_models::credential::{ensure_token_file, Token};
use sandpit_models::{
    inspect, locate_onnxruntime, router, AppState, ArtifactStores, Engine, OrtEngine, ServerConfig,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The directory of the committed test models (regenerate with `make_models.py`).
pub fn model_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models")
        .join(name)
}

/// ONNX Runtime, located from `ORT_DYLIB_PATH` or the `python3` on `PATH`.
pub fn engine() -> Arc<dyn Engine> {
    static ENGINE: OnceLock<Arc<OrtEngine>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        #[allow(clippy::disallowed_methods)]
        // test code: the library itself never reads the environment
        let explicit = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
        let path = locate_onnxruntime(explicit.as_deref(), "python3")
            .unwrap_or_else(|e| panic!("{e} (the tests need `pip install onnxruntime`)"));
        Arc::new(OrtEngine::new(&path).unwrap_or_else(|e| panic!("{e}")))
    });
    Arc::clone(engine) as Arc<dyn Engine>
}

/// A model artifact on disk, as the registration API takes it.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub digest: String,
    /// The short commit in its name: the version the endpoint should say answers.
    pub version: String,
}

impl Artifact {
    pub fn registration(&self, name: &str) -> Value {
        json!({
            "name": name,
            "artifact": self.path.file_name().unwrap().to_string_lossy(),
            "digest": self.digest,
            "path": self.path,
            "file": "model.onnx",
        })
    }
}

/// Packages `tests/models/<onnx>` as `<dir>/<component>-<sha>.zip` with `model.onnx` and `model.json`.
/// The "commit" is made up from the bytes (distinct from their digest, so a test can tell which
/// one a version was taken from).
pub fn package(dir: &Path, onnx: &str, component: &str) -> Artifact {
    let bytes = std::fs::read(model_file(onnx)).unwrap();
    let metadata = inspect(engine().as_ref(), &bytes).unwrap();
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("model.json", options).unwrap();
    zip.write_all(&serde_json::to_vec_pretty(&metadata).unwrap())
        .unwrap();
    zip.start_file("model.onnx", options).unwrap();
    zip.write_all(&bytes).unwrap();
    let zipped = zip.finish().unwrap().into_inner();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&zipped)));
    let commit = hex::encode(Sha256::digest([b"commit:".as_slice(), &zipped].concat()));
    let path = dir.join(format!("{component}-{}.zip", &commit[..40]));
    std::fs::write(&path, &zipped).unwrap();
    Artifact {
        path,
        digest,
        version: commit[..12].to_string(),
    }
}

/// A server (router) with its own temporary artifact store and registration token.
pub struct Server {
    pub app: Router,
    pub state: AppState,
    /// The server's one artifact store.
    pub dir: tempfile::TempDir,
    /// Holds the token file (0600).
    pub secrets: tempfile::TempDir,
    pub token: Token,
}

/// `config` serving the store `store`, with a new token file in `secrets`.
pub fn secured(mut config: ServerConfig, store: &Path, secrets: &Path) -> (ServerConfig, Token) {
    let token_file = secrets.join("token");
    let token = ensure_token_file(&token_file).unwrap();
    config.token_file = Some(token_file);
    config.stores = ArtifactStores::new([store.to_path_buf()]);
    (config, token)
}

pub fn config() -> ServerConfig {
    ServerConfig {
        retry_after: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

impl Server {
    pub fn new(config: ServerConfig) -> Server {
        Server::with_engine(config, engine())
    }

    pub fn with_engine(config: ServerConfig, engine: Arc<dyn Engine>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let secrets = tempfile::tempdir().unwrap();
        let (config, token) = secured(config, dir.path(), secrets.path());
        let state = AppState::new(config, engine);
        Server {
            app: router(state.clone()),
            state,
            dir,
            secrets,
            token,
        }
    }

    pub fn package(&self, onnx: &str, component: &str) -> Artifact {
        package(self.dir.path(), onnx, component)
    }

    /// Registers `models` (name → artifact) for `biome` (`_base` for the base).
    pub async fn register(&self, biome: &str, models: &[(&str, &Artifact)]) {
        let body = json!({ "models": models.iter().map(|(name, a)| a.registration(name)).collect::<Vec<_>>() });
        let (status, answer) = self
            .admin(
                "PUT",
                &format!("/sandpit/biomes/{biome}/models"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// A call to the registration API with the server's token.
    pub async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let authorization = format!("Bearer {}", self.token.expose());
        self.call_with(method, uri, body, Some(&authorization))
            .await
    }

    /// A call with `authorization` as its Authorization header (none when `None`).
    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        authorization: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        self.request(request.body(body).unwrap()).await
    }

    pub async fn request(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// A call without credentials, as any local client makes it.
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, uri, body, None).await
    }

    /// `POST {prefix}/v2/models/{name}/infer` with one FP32 row `x` for the linear models.
    pub async fn linear(&self, prefix: &str, name: &str, x: [f32; 3]) -> (StatusCode, Value) {
        let body =
            json!({ "inputs": [{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": x }] });
        self.call(
            "POST",
            &format!("{prefix}/v2/models/{name}/infer"),
            Some(body),
        )
        .await
    }

    /// The single value `y` a linear model answered (asserting 200).
    pub async fn linear_y(&self, prefix: &str, name: &str, x: [f32; 3]) -> f64 {
        let (status, answer) = self.linear(prefix, name, x).await;
        assert_eq!(status, StatusCode::OK, "{prefix} {name}: {answer}");
        answer["outputs"][0]["data"][0].as_f64().unwrap()
    }

    pub async fn metrics(&self) -> String {
        let response = self
            .app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    /// A sample's value in the metrics (`series` is the name with its labels), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics().await, series)
    }

    /// name → state, from the repository index at `prefix`.
    pub async fn index(&self, prefix: &str) -> BTreeMap<String, String> {
        let (status, answer) = self
            .call("POST", &format!("{prefix}/v2/repository/index"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// y = x·[1, 2, 3] + 0.5 (linear.onnx), computed by hand in each test.
pub const V1: &str = "linear.onnx";
/// y = x·[10, 20, 30] - 1 (linear_v2.onnx).
pub const V2: &str = "linear_v2.onnx";
