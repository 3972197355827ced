//! The team control plane's HTTP API (`sandpit server`): tokens and roles, then the use cases
//! of `sandpit-ops` over HTTP. The contract is `docs/openapi.json`, generated from this crate.
//!
//! [`app`] builds the whole [`Router`] from an [`AppState`], so handlers are tested with
//! `tower::ServiceExt::oneshot` without a socket; `sandpit_http::serve_with` serves it with
//! its limits, over plain TCP or TLS. Around every route, outermost first: the request id
//! ([`request_id`]: `x-request-id`, internal faults logged under it), the metrics, the body
//! limit, and inside routing the per-request deadline ([`timeout`]): [`REQUEST_TIMEOUT`] for
//! reads, [`CHANGE_TIMEOUT`] for the routes that build, roll out or approve (`up`, `deploy`,
//! `approve`, …). [`queue`] runs the pipelines handlers queue; [`reports`] sends what they
//! report back to GitLab.

pub mod auth;
pub mod body;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod project;
pub mod query;
pub mod queue;
pub mod reports;
pub mod request_id;
pub mod routes;
pub mod timeout;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::Router;
use sandpit_ops::Context;

use crate::error::{ApiError, Code};
use crate::metrics::Metrics;

/// The largest request body read (1 MiB); more is answered 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long one request may take to be handled before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a change (`up`, `down`, `restart`, `deploy`, `promote`, `rollback`, `config`, and
/// an approval, whose last one runs the deployment) may take: it builds, migrates a database
/// and waits for health, which takes minutes, not seconds. Past it the client gets 503 while
/// the change goes on; `sandpit history` shows its end.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The `$SANDPIT_HOME` served, and the settings the use cases need.
    context: Arc<Context>,
    /// The counters `/metrics` shows.
    metrics: Metrics,
    /// See [`REQUEST_TIMEOUT`].
    request_timeout: Duration,
    /// The pipeline queue's worker, told when a pipeline is queued (none in handler tests:
    /// pipelines stay queued).
    queue: Option<queue::Queue>,
}

impl AppState {
    pub fn new(context: Context) -> AppState {
        AppState::with_timeout(context, REQUEST_TIMEOUT)
    }

    pub fn with_timeout(context: Context, request_timeout: Duration) -> AppState {
        AppState::build(context, request_timeout, None)
    }

    /// What `sandpit server` serves: with the pipeline queue's worker.
    pub fn serving(context: Context, queue: queue::Queue) -> AppState {
        AppState::build(context, REQUEST_TIMEOUT, Some(queue))
    }

    fn build(context: Context, request_timeout: Duration, queue: Option<queue::Queue>) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                context: Arc::new(context),
                metrics: Metrics::default(),
                request_timeout,
                queue,
            }),
        }
    }

    /// Tells the queue's worker a pipeline was queued.
    pub fn pipeline_queued(&self) {
        if let Some(queue) = &self.inner.queue {
            queue.wake();
        }
    }

    pub fn context(&self) -> &Context {
        &self.inner.context
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs a use case that blocks (SQLite, files) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Context) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let context = Arc::clone(&self.inner.context);
        match tokio::task::spawn_blocking(move || work(&context)).await {
            Ok(result) => Ok(result?),
            Err(error) => Err(ApiError::internal(format!(
                "a request's work panicked: {error}"
            ))),
        }
    }

    /// Runs a use case whose future cannot move between threads (it reports progress through
    /// a `&mut dyn FnMut`) on a blocking thread, driven by the server's runtime.
    pub async fn blocking_async<T, F>(
        &self,
        work: impl FnOnce(Arc<Context>) -> F + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        let context = Arc::clone(&self.inner.context);
        let runtime = tokio::runtime::Handle::current();
        match tokio::task::spawn_blocking(move || runtime.block_on(work(context))).await {
            Ok(result) => Ok(result?),
            Err(error) => Err(ApiError::internal(format!(
                "a request's work panicked: {error}"
            ))),
        }
    }
}

/// The limits the server is served with: `sandpit_http`'s defaults, with the webhooks' body
/// limit ([`routes::hooks::HOOK_BODY_LIMIT`]); the API's routes keep [`BODY_LIMIT`].
pub fn limits() -> sandpit_http::Limits {
    sandpit_http::Limits {
        max_body_bytes: routes::hooks::HOOK_BODY_LIMIT,
        ..sandpit_http::Limits::default()
    }
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let request_timeout = state.inner.request_timeout;
    let changes = Router::new()
        .merge(routes::biomes::changes())
        .merge(routes::environments::changes())
        .merge(routes::config::changes())
        .merge(routes::decisions::router())
        .route_layer(middleware::from_fn_with_state(
            request_timeout.max(CHANGE_TIMEOUT),
            timeout::limit,
        ));
    Router::new()
        .merge(routes::service::router())
        .merge(routes::whoami::router())
        .merge(routes::tokens::router())
        .merge(routes::projects::router())
        .merge(routes::pipelines::router())
        .merge(routes::biomes::router())
        .merge(routes::status::router())
        .merge(routes::history::router())
        .merge(routes::trace::router())
        .merge(routes::artifacts::router())
        .merge(routes::logs::router())
        .merge(routes::config::router())
        .merge(routes::hooks::router())
        .merge(routes::hooks::hooks())
        .route_layer(middleware::from_fn_with_state(
            request_timeout,
            timeout::limit,
        ))
        // Merged after the reads' deadline, so only their own applies to them.
        .merge(changes)
        .route_layer(middleware::from_fn(metrics::label))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!(
            "there is no route {method} {}\nhint: GET /api/v1/openapi.json lists the routes",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::InvalidRequest,
        format!(
            "{} does not take {method}\nhint: GET /api/v1/openapi.json lists each route's methods",
            uri.path()
        ),
    )
    .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
}
