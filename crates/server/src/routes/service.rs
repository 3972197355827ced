//! The server itself: `/healthz`, `/metrics` and `/api/v1/openapi.json` (no token needed).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::wire::Health;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
}

/// Whether the server answers.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "The server answers", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Prometheus metrics: requests, their durations, biomes and pipelines by state.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Looking never starts the daemon; a stopped one means no biomes run.
    let mut biomes = BTreeMap::new();
    if let Some(client) = sandpit_ops::daemon_connection::if_running(state.context()).await {
        match client.list(None).await {
            Ok(list) => {
                for biome in list {
                    *biomes.entry(biome.state).or_insert(0) += 1;
                }
            }
            Err(error) => tracing::warn!("metrics: cannot list the daemon's biomes: {error}"),
        }
    }
    let pipelines = state
        .blocking(|context| {
            let store = sandpit_ops::deployment::state_store(context)?;
            Ok(store.pipeline_counts()?)
        })
        .await;
    let pipelines: BTreeMap<String, u64> = match pipelines {
        Ok(counts) => counts
            .into_iter()
            .map(|(state, count)| (state.as_str().to_owned(), count))
            .collect(),
        Err(error) => {
            tracing::warn!("metrics: cannot count pipelines: {}", error.message);
            BTreeMap::new()
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(&biomes, &pipelines),
    )
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API")))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
}
