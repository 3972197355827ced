//! The HTTP API, answered the same way at the root and under `/biomes/{biome}`:
//!
//! - Open Inference Protocol (KServe v2) REST: `GET /v2`, `GET /v2/health/live`,
//!   `GET /v2/health/ready`, `GET /v2/models/{name}`, `GET /v2/models/{name}/ready`,
//!   `POST /v2/models/{name}/infer`, and the same three under `/v2/models/{name}/versions/{version}`;
//! - the model repository: `POST /v2/repository/index`, `POST /v2/repository/models/{name}/load`
//!   and `/unload`;
//! - SageMaker multi-model: `POST /invocations` with `X-Amzn-SageMaker-Target-Model`.
//!
//! At the root only: sandpit's registration API (`PUT`/`DELETE /sandpit/biomes/{biome}/models`,
//! biome `_base` for the environment's base), Prometheus `GET /metrics`, and `GET /sandpit/usage`:
//! per registration, its models and the memory their loaded digests hold ([`UsageAnswer`]; each
//! digest charged once, see [`Registry::usage`]), what `sandpit ls` and `status` show as a biome's
//! model memory. It is open like `/metrics` and the repository index: the names and versions it
//! lists are what the open index lists, and the bytes are `/metrics`' loaded memory split up.
//!
//! Registration needs `Authorization: Bearer <token>`, the token in the file
//! [`ServerConfig::token_file`] ([`crate::credential`]); without it the answer is 401 and nothing
//! changes. A registered artifact must be a file inside [`ServerConfig::stores`]
//! ([`crate::stores`]): anything else is refused before it is opened, so no answer ever carries
//! a digest of a file the endpoint was not meant to read. Everything else is open to any local
//! client: answering inference is the endpoint's job.
//!
//! `GET /v2/models/{name}/ready` is 200 when the model is loaded and 400 otherwise (as Triton
//! answers for an unloaded model); models load on their first inference request or an explicit
//! repository load. Metadata is read from the artifact's `model.json`, so it does not force a load.
//!
//! Every model has one version, the one that answers its name: the short commit of its artifact
//! ([`ModelRef::version`]). Metadata's `versions`, inference responses' `model_version` and the
//! index say it; a versioned route asking for another version is 404 naming the served one.
//!
//! A biome must be registered (`sandpit up` does it, `sandpit down` undoes it) to be answered:
//! `/biomes/<biome>/…` and `<biome>.<model>` for any other biome are 404 naming the biome, on
//! every route, rather than the base's models answering for a typo or a biome taken down.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::artifact;
use crate::cache::{CacheConfig, LoadState, ModelCache};
use crate::credential;
use crate::engine::{Engine, LoadedModel};
use crate::error::ModelError;
use crate::metadata::{ModelMetadata, TensorSpec};
use crate::metrics::Metrics;
use crate::registry::{ModelRef, RegistrationUsage, Registry, Unresolved};
use crate::stores::{ArtifactStores, Confinement};
use crate::tensor::{parse_inputs, validate_inputs, JsonTensor, Tensor};

/// The biome name that stands for the environment's base in the registration API.
pub const BASE: &str = "_base";

/// The SageMaker multi-model header naming the target model.
pub const TARGET_MODEL_HEADER: &str = "x-amzn-sagemaker-target-model";

/// The binary tensor data extension's header: the length of the JSON part of the body.
pub const BINARY_HEADER: &str = "inference-header-content-length";

/// How the server is run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Memory budget of loaded models (bytes).
    pub max_memory_bytes: u64,
    /// Maximum number of loaded models.
    pub max_models: usize,
    /// How long a failed load is reported before it is tried again.
    pub retry_after: Duration,
    /// What one client may take of the server (timeouts, connections, keep-alive);
    /// `limits.max_body_bytes` is the largest request body accepted, larger ones get 413.
    pub limits: sandpit_http::Limits,
    /// The file holding the registration API's bearer token; `None` refuses every registration.
    pub token_file: Option<PathBuf>,
    /// The artifact stores registrations may point into; none refuses every artifact.
    pub stores: ArtifactStores,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        let cache = CacheConfig::default();
        ServerConfig {
            max_memory_bytes: cache.max_memory_bytes,
            max_models: cache.max_models,
            retry_after: cache.retry_after,
            limits: sandpit_http::Limits::default(),
            token_file: None,
            stores: ArtifactStores::default(),
        }
    }
}

struct Inner {
    config: ServerConfig,
    registry: RwLock<Registry>,
    cache: Arc<ModelCache>,
    metrics: Arc<Metrics>,
    /// `model.json` contents by digest, read once per digest.
    metadata: RwLock<HashMap<String, ModelMetadata>>,
}

/// The server's shared state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(config: ServerConfig, engine: Arc<dyn Engine>) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let cache = ModelCache::new(
            engine,
            CacheConfig {
                max_memory_bytes: config.max_memory_bytes,
                max_models: config.max_models,
                retry_after: config.retry_after,
            },
            Arc::clone(&metrics),
        );
        AppState {
            inner: Arc::new(Inner {
                config,
                registry: RwLock::new(Registry::new()),
                cache,
                metrics,
                metadata: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Checks `models` and makes them what `biome` (`None` = the base) serves, without loading
    /// anything; digests no longer registered anywhere are unloaded. The registration API and
    /// the restore of saved registrations both come through here. A model with a bad name or
    /// digest, a name given twice, or an artifact that is not a file inside the endpoint's
    /// stores refuses the whole registration, and nothing changes. Returns how many models
    /// `biome` now has.
    pub fn register(
        &self,
        biome: Option<&str>,
        models: Vec<RegisteredModel>,
    ) -> Result<usize, ModelError> {
        let mut checked = BTreeMap::new();
        for model in models {
            let model_ref = self.check_registered(&model)?;
            if checked.insert(model.name.clone(), model_ref).is_some() {
                return Err(ModelError::BadRequest(format!(
                    "model `{}` is registered twice",
                    model.name
                )));
            }
        }
        let count = checked.len();
        let old = self.write_registry().replace(biome, checked);
        self.unload_unused(old);
        Ok(count)
    }

    /// The reference the endpoint keeps for one registered model: its artifact's resolved
    /// path, once the path is known to be a file inside one of the stores.
    fn check_registered(&self, model: &RegisteredModel) -> Result<ModelRef, ModelError> {
        let name = &model.name;
        sandpit_domain::name::Name::parse(name)
            .map_err(|e| ModelError::BadRequest(format!("model `{name}`: {e}")))?;
        sandpit_domain::digest::Digest::parse(&model.digest)
            .map_err(|e| ModelError::BadRequest(format!("model `{name}`: {e}")))?;
        let path = model.path.display();
        let stores = &self.inner.config.stores;
        let hint = || {
            let roots: Vec<String> = stores
                .roots()
                .iter()
                .map(|r| r.display().to_string())
                .collect();
            format!(
                "\nhint: register artifacts from the stores this endpoint serves ({}); `sandpit up` and `sandpit deploy` do",
                if roots.is_empty() { "none were given".to_owned() } else { roots.join(", ") }
            )
        };
        let resolved = stores.confine(&model.path).map_err(|refusal| match refusal {
            Confinement::NotPlain => ModelError::BadRequest(format!(
                "model `{name}`: the artifact path `{path}` must be absolute and without `..`"
            )),
            Confinement::Outside => ModelError::Forbidden(format!(
                "model `{name}`: `{path}` is not inside an artifact store this endpoint serves{}",
                hint()
            )),
            Confinement::LeadsOutside => ModelError::Forbidden(format!(
                "model `{name}`: `{path}` leads outside the artifact stores this endpoint serves (through a symbolic link){}",
                hint()
            )),
            Confinement::Unresolvable(e) => ModelError::BadRequest(format!(
                "model `{name}`: artifact `{path}` cannot be opened: {e}"
            )),
            Confinement::NotAFile => {
                ModelError::BadRequest(format!("model `{name}`: `{path}` is not a file"))
            }
        })?;
        Ok(ModelRef {
            artifact: model.artifact.clone(),
            digest: model.digest.clone(),
            path: resolved,
            file: model.file.clone(),
        })
    }

    /// `Ok` when `authorization` carries the token of [`ServerConfig::token_file`].
    fn authorize(&self, authorization: Option<&HeaderValue>) -> Result<(), ModelError> {
        let Some(path) = &self.inner.config.token_file else {
            return Err(ModelError::CredentialUnavailable {
                detail: "the endpoint was started without a token file (--token-file), so it accepts no registrations".to_owned(),
            });
        };
        let token =
            credential::read_token_file(path).map_err(|e| ModelError::CredentialUnavailable {
                detail: e.to_string(),
            })?;
        credential::check_bearer(authorization.map(HeaderValue::as_bytes), &token)
            .map_err(|refusal| ModelError::Unauthorized(refusal.to_string()))
    }

    /// Serves the API on `listener` within [`ServerConfig::limits`] until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = self.inner.config.limits.clone();
        sandpit_http::serve(listener, router(self), limits, shutdown).await
    }

    /// Removes the registrations of `biome` and unloads digests no longer registered anywhere.
    pub fn unregister(&self, biome: Option<&str>) -> Vec<ModelRef> {
        let old = self.write_registry().remove(biome);
        self.unload_unused(old.clone());
        old
    }

    /// Unloads what the registration alone has loaded (its registration stays: the next request
    /// loads it again); answers how many models were loaded.
    pub fn rest(&self, biome: Option<&str>) -> usize {
        let digests = self.read_registry().digests_only_of(biome);
        digests
            .iter()
            .filter(|digest| self.inner.cache.unload(digest))
            .count()
    }

    fn unload_unused(&self, old: Vec<ModelRef>) {
        let registry = self.read_registry();
        for model_ref in old {
            if !registry.uses_digest(&model_ref.digest) {
                self.inner.cache.unload(&model_ref.digest);
                self.write_metadata().remove(&model_ref.digest);
            }
        }
    }

    fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_registry(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_metadata(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ModelMetadata>> {
        self.inner
            .metadata
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok` at the root and under a registered biome; [`ModelError::UnknownBiome`] otherwise.
    fn check_scope(&self, scope: Option<&str>) -> Result<(), ModelError> {
        self.read_registry()
            .check_scope(scope)
            .map_err(|unresolved| unresolved_error(unresolved, scope, ""))
    }

    /// The registration answering `name` under `scope`, as (model name for metrics, reference).
    fn resolve(&self, scope: Option<&str>, name: &str) -> Result<(String, ModelRef), ModelError> {
        let registry = self.read_registry();
        let resolved = registry
            .resolve(scope, name)
            .map_err(|unresolved| unresolved_error(unresolved, scope, name))?;
        Ok((metric_name(scope, name), resolved.model_ref.clone()))
    }

    /// [`AppState::resolve`] for the route `target`, which may name the version it wants.
    fn resolve_target(&self, target: &Target) -> Result<(String, ModelRef), ModelError> {
        let (label, model_ref) = self.resolve(target.scope(), target.name())?;
        if let Some(requested) = &target.version {
            let served = model_ref.version();
            if *requested != served {
                return Err(ModelError::VersionNotServed {
                    model: target.name().to_string(),
                    requested: requested.clone(),
                    served,
                });
            }
        }
        Ok((label, model_ref))
    }

    /// The loaded model of a resolved registration (loading it if needed).
    async fn load(
        &self,
        label: &str,
        model_ref: &ModelRef,
    ) -> Result<Arc<dyn LoadedModel>, ModelError> {
        self.inner.cache.get(label, model_ref).await
    }

    /// Metadata without loading when the artifact carries `model.json`.
    async fn metadata(
        &self,
        label: String,
        model_ref: ModelRef,
    ) -> Result<ModelMetadata, ModelError> {
        if let Some(model) = self.inner.cache.peek(&model_ref.digest) {
            return Ok(model.metadata().clone());
        }
        let known = self
            .inner
            .metadata
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&model_ref.digest)
            .cloned();
        if let Some(metadata) = known {
            return Ok(metadata);
        }
        let reading = model_ref.clone();
        let read = tokio::task::spawn_blocking(move || {
            let bytes = artifact::read_verified(&reading)?;
            artifact::metadata(&reading, &bytes)
        })
        .await
        .unwrap_or_else(|panic| Err(format!("reading the artifact panicked: {panic}")))
        .map_err(|reason| ModelError::LoadFailed {
            model: label.clone(),
            reason,
        })?;
        match read {
            Some(metadata) => {
                self.write_metadata()
                    .insert(model_ref.digest.clone(), metadata.clone());
                Ok(metadata)
            }
            None => Ok(self
                .inner
                .cache
                .get(&label, &model_ref)
                .await?
                .metadata()
                .clone()),
        }
    }
}

/// The error for a name nothing answers under `scope`.
fn unresolved_error(unresolved: Unresolved, scope: Option<&str>, name: &str) -> ModelError {
    match unresolved {
        Unresolved::UnknownBiome(biome) => ModelError::UnknownBiome { biome },
        Unresolved::UnknownModel => {
            let place = scope.map_or(String::new(), |b| format!(" in biome `{b}`"));
            ModelError::NotFound(format!("unknown model `{name}`{place}"))
        }
    }
}

/// The name a model is counted under in metrics: a registered name, never raw request input.
fn metric_name(scope: Option<&str>, name: &str) -> String {
    match scope {
        Some(biome) => format!("{biome}.{name}"),
        None => name.to_string(),
    }
}

/// An error answered with the protocol's shape, `{"error": "<message>"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> ApiError {
        let status = match &error {
            ModelError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ModelError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ModelError::Forbidden(_) => StatusCode::FORBIDDEN,
            ModelError::NotFound(_)
            | ModelError::UnknownBiome { .. }
            | ModelError::VersionNotServed { .. } => StatusCode::NOT_FOUND,
            ModelError::InsufficientMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ModelError::LoadFailed { .. } | ModelError::Unsupported { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ModelError::RuntimeNotFound { .. }
            | ModelError::Engine { .. }
            | ModelError::Inference(_)
            | ModelError::CredentialUnavailable { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "{error}");
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            // Someone tried to change what is served: the operator should be able to see it.
            tracing::warn!(status = status.as_u16(), "registration refused: {error}");
        }
        let message = match error {
            // The engine's run-time message is logged above; the client gets the gist.
            ModelError::Inference(_) => {
                "inference failed; the server log has the details".to_string()
            }
            // Where the token file is and what is wrong with it is for the operator, not a client.
            ModelError::CredentialUnavailable { .. } => {
                "the endpoint cannot check registration credentials; the server log has the details"
                    .to_string()
            }
            other => other.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "request body is larger than the endpoint's limit")
        } else {
            ApiError::new(status, format!("cannot read the request body: {rejection}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sandpit-models\""),
            );
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Where a request is addressed: the biome prefix (if any), the model name (if any) and the
/// version a versioned route asks for.
struct Target {
    scope: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Target, ApiError> {
        let mut target = Target {
            scope: None,
            name: None,
            version: None,
        };
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
            for (key, value) in &params {
                match key {
                    "biome" => target.scope = Some(value.to_string()),
                    "name" => target.name = Some(value.to_string()),
                    "version" => target.version = Some(value.to_string()),
                    _ => {}
                }
            }
        }
        if let Some(biome) = &target.scope {
            if let Err(e) = sandpit_domain::name::Name::parse(biome) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("biome `{biome}`: {e}"),
                ));
            }
        }
        Ok(target)
    }
}

impl Target {
    fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// The routes of the protocol, mounted at the root and under `/biomes/{biome}`.
fn protocol_routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{name}/load", post(repository_load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository_unload),
        )
        .route("/invocations", post(invocations))
}

/// The whole API for `state`.
pub fn router(state: AppState) -> Router {
    let limit = state.inner.config.limits.max_body_bytes;
    protocol_routes()
        .nest("/biomes/{biome}", protocol_routes())
        .route(
            "/sandpit/biomes/{registration}/models",
            put(register).delete(unregister),
        )
        .route("/sandpit/biomes/{registration}/unload", post(rest))
        .route("/metrics", get(metrics))
        .route("/sandpit/usage", get(usage))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    engine: Arc<dyn Engine>,
) -> std::io::Result<()> {
    serve_with_shutdown(listener, config, engine, std::future::pending()).await
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    engine: Arc<dyn Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    AppState::new(config, engine)
        .serve(listener, shutdown)
        .await
}

// Under `/biomes/{biome}` even the server-level routes need a known biome: a client pointed at a
// biome that is gone should learn so from its first request, not from its first inference.

async fn server_metadata(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    state.check_scope(target.scope())?;
    Ok(Json(json!({
        "name": "sandpit-models",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_repository"],
    })))
}

async fn live(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    state.check_scope(target.scope())?;
    Ok(Json(json!({ "live": true })))
}

async fn ready(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    state.check_scope(target.scope())?;
    Ok(Json(json!({ "ready": true })))
}

fn specs(specs: &[TensorSpec]) -> Value {
    Value::from(
        specs
            .iter()
            .map(|s| json!({ "name": s.name, "datatype": s.datatype, "shape": s.shape }))
            .collect::<Vec<_>>(),
    )
}

async fn model_metadata(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    let (label, model_ref) = state.resolve_target(&target)?;
    let version = model_ref.version();
    let metadata = state.metadata(label, model_ref).await?;
    let mut body = json!({
        "name": target.name(),
        "versions": [version],
        "platform": "onnxruntime_onnx",
        "inputs": specs(&metadata.inputs),
        "outputs": specs(&metadata.outputs),
    });
    if !metadata.skipped_outputs.is_empty() {
        body["parameters"] = json!({ "skipped_outputs": metadata.skipped_outputs });
    }
    Ok(Json(body))
}

async fn model_ready(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    let (_, model_ref) = state.resolve_target(&target)?;
    match state.inner.cache.state(&model_ref.digest) {
        LoadState::Loaded => Ok(Json(json!({ "name": target.name(), "ready": true }))),
        LoadState::Failed(reason) => Err(ApiError::new(StatusCode::BAD_REQUEST, reason)),
        LoadState::Loading => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("model `{}` is loading", target.name()),
        )),
        LoadState::Unloaded => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "model `{}` is not loaded; it loads on its first inference request or on POST /v2/repository/models/{}/load",
                target.name(),
                target.name()
            ),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<JsonTensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
struct RequestedOutput {
    name: String,
}

#[derive(Debug, Serialize)]
struct InferResponse {
    model_name: String,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<JsonTensor>,
}

/// Splits a request of the binary tensor data extension into its JSON and binary parts.
fn split_body<'b>(headers: &HeaderMap, body: &'b [u8]) -> Result<(&'b [u8], &'b [u8]), ModelError> {
    let Some(value) = headers.get(BINARY_HEADER) else {
        return Ok((body, &[]));
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|length| *length <= body.len())
        .ok_or_else(|| {
            ModelError::BadRequest(format!(
                "header Inference-Header-Content-Length must be the length of the JSON part (at most {} bytes)",
                body.len()
            ))
        })?;
    Ok(body.split_at(length))
}

async fn run_inference(
    state: &AppState,
    target: &Target,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<InferResponse> {
    // Who answers is decided before the body is read: an unknown biome, model or version says
    // so whatever the body holds.
    let (label, model_ref) = state.resolve_target(target)?;
    let (json_part, binary) = split_body(headers, &body)?;
    let request: InferRequest = serde_json::from_slice(json_part).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not a valid inference request: {e}"),
        )
    })?;
    let model = state.load(&label, &model_ref).await?;
    let inputs = parse_inputs(&request.inputs, binary)?;
    validate_inputs(model.metadata(), &inputs)?;
    let wanted = request
        .outputs
        .map(|outputs| outputs.into_iter().map(|o| o.name).collect::<Vec<_>>());
    if let Some(wanted) = &wanted {
        let known: Vec<&str> = model
            .metadata()
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        if let Some(unknown) = wanted.iter().find(|w| !known.contains(&w.as_str())) {
            return Err(ModelError::BadRequest(format!(
                "the model has no output `{unknown}`; its outputs are {}",
                known.join(", ")
            ))
            .into());
        }
    }
    let runner = Arc::clone(&model);
    let outputs = tokio::task::spawn_blocking(move || runner.infer(inputs))
        .await
        .map_err(|panic| ModelError::Inference(format!("inference panicked: {panic}")))??;
    Ok(InferResponse {
        model_name: target.name().to_string(),
        model_version: model_ref.version(),
        id: request.id,
        outputs: outputs
            .iter()
            .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(&t.name)))
            .map(Tensor::to_json)
            .collect(),
    })
}

/// Runs an inference request and counts it under the model's registered name.
async fn counted_inference(
    state: &AppState,
    target: &Target,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = match body {
        Ok(body) => run_inference(state, target, headers, body).await,
        Err(rejection) => Err(rejection.into()),
    };
    let response = match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    };
    // Unknown names are counted together so clients cannot grow the metrics without bound.
    let label = match state.resolve(target.scope(), target.name()) {
        Ok((label, _)) => label,
        Err(_) => "_unknown".to_string(),
    };
    state
        .inner
        .metrics
        .request(&label, response.status().as_u16(), started.elapsed());
    response
}

async fn infer(
    State(state): State<AppState>,
    target: Target,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    counted_inference(&state, &target, &headers, body).await
}

async fn invocations(
    State(state): State<AppState>,
    target: Target,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(rejection) = body {
        return ApiError::from(rejection).into_response();
    }
    if let Err(error) = state.check_scope(target.scope()) {
        return ApiError::from(error).into_response();
    }
    let Some(model) = headers
        .get(TARGET_MODEL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "header X-Amzn-SageMaker-Target-Model is missing: name the model (`<model>` or `<biome>.<model>`)",
        )
        .into_response();
    };
    let target = Target {
        name: Some(model),
        ..target
    };
    counted_inference(&state, &target, &headers, body).await
}

#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(
    State(state): State<AppState>,
    target: Target,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body?;
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the index request is not valid JSON: {e}"),
            )
        })?
    };
    let names = state
        .read_registry()
        .names(target.scope())
        .map_err(|unresolved| unresolved_error(unresolved, target.scope(), ""))?;
    let mut entries = Vec::new();
    for name in names {
        let Ok((_, model_ref)) = state.resolve(target.scope(), &name) else {
            continue;
        };
        let (status, reason) = match state.inner.cache.state(&model_ref.digest) {
            LoadState::Loaded => ("READY", None),
            LoadState::Loading => ("LOADING", None),
            LoadState::Failed(reason) => ("UNAVAILABLE", Some(reason)),
            LoadState::Unloaded => ("UNAVAILABLE", Some("unloaded".to_string())),
        };
        if request.ready && status != "READY" {
            continue;
        }
        let mut entry = json!({ "name": name, "version": model_ref.version(), "state": status });
        if let Some(reason) = reason {
            entry["reason"] = Value::from(reason);
        }
        entries.push(entry);
    }
    Ok(Json(Value::from(entries)))
}

async fn repository_load(State(state): State<AppState>, target: Target) -> ApiResult<Json<Value>> {
    let (label, model_ref) = state.resolve_target(&target)?;
    state.load(&label, &model_ref).await?;
    Ok(Json(json!({})))
}

async fn repository_unload(
    State(state): State<AppState>,
    target: Target,
) -> ApiResult<Json<Value>> {
    let (_, model_ref) = state.resolve_target(&target)?;
    state.inner.cache.unload(&model_ref.digest);
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct Registration {
    models: Vec<RegisteredModel>,
}

/// One model of a registration, as the registration API takes it (and saved registrations
/// hold it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredModel {
    /// The name it answers to (a DNS label).
    pub name: String,
    /// The artifact's name, e.g. `grade-<40 hex>.zip`.
    pub artifact: String,
    /// The artifact file's digest, `sha256:<hex>`.
    pub digest: String,
    /// The artifact file; it must be inside one of the endpoint's stores.
    pub path: PathBuf,
    /// The ONNX file inside the artifact.
    pub file: String,
}

/// A request that carries the registration credential; checked before the body is read, so a
/// client without it learns nothing from the registration API but that it needs one.
struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Authorized, ApiError> {
        state.authorize(parts.headers.get(header::AUTHORIZATION))?;
        Ok(Authorized)
    }
}

fn registration_biome(biome: &str) -> ApiResult<Option<&str>> {
    if biome == BASE {
        return Ok(None);
    }
    sandpit_domain::name::Name::parse(biome)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("biome `{biome}`: {e}")))?;
    Ok(Some(biome))
}

async fn register(
    _: Authorized,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let biome = registration_biome(&raw)?;
    let registration: Registration = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the registration is not valid: {e}"),
        )
    })?;
    let count = state.register(biome, registration.models)?;
    Ok(Json(json!({ "biome": raw, "models": count })))
}

async fn unregister(
    _: Authorized,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let biome = registration_biome(&raw)?;
    let removed = state.unregister(biome);
    Ok(Json(json!({ "biome": raw, "models": removed.len() })))
}

/// A sleeping biome's models: unloaded, still registered.
async fn rest(
    _: Authorized,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let biome = registration_biome(&raw)?;
    let unloaded = state.rest(biome);
    Ok(Json(json!({ "biome": raw, "unloaded": unloaded })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
}

/// `GET /sandpit/usage`: what each registration's loaded models hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAnswer {
    /// The base (`_base`) first, then the biomes by name; every registration, loaded or not.
    pub registrations: Vec<UsageOfRegistration>,
    /// Everything loaded now (the registrations' `bytes` add up to it).
    pub loaded_bytes: u64,
}

/// One registration in [`UsageAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageOfRegistration {
    /// The biome's name, or `_base`.
    pub registration: String,
    /// Memory of the loaded models charged to it.
    pub bytes: u64,
    pub models: Vec<UsageOfModel>,
}

/// One registered model in [`UsageAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageOfModel {
    pub name: String,
    pub version: String,
    pub loaded: bool,
    /// The memory its digest holds while loaded (0 when not loaded), whoever it is charged to.
    pub bytes: u64,
    /// Whether this registration is charged for it (a digest shared with the base, or with a
    /// biome earlier by name, is charged there).
    pub charged: bool,
}

impl From<RegistrationUsage> for UsageOfRegistration {
    fn from(usage: RegistrationUsage) -> UsageOfRegistration {
        UsageOfRegistration {
            registration: usage.biome.unwrap_or_else(|| BASE.to_owned()),
            bytes: usage.bytes,
            models: usage
                .models
                .into_iter()
                .map(|m| UsageOfModel {
                    name: m.name,
                    version: m.version,
                    loaded: m.loaded_bytes.is_some(),
                    bytes: m.loaded_bytes.unwrap_or(0),
                    charged: m.charged,
                })
                .collect(),
        }
    }
}

async fn usage(State(state): State<AppState>) -> Json<UsageAnswer> {
    let loaded = state.inner.cache.loaded_sizes();
    let registrations = state.read_registry().usage(&loaded);
    Json(UsageAnswer {
        registrations: registrations.into_iter().map(Into::into).collect(),
        loaded_bytes: loaded.values().sum(),
    })
}
