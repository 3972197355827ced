//! `GET /api/v1/projects/{project}/history?target=T`: `sandpit history` over HTTP.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::ApiQuery;
use crate::wire::deployments::DeploymentList;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/history", get(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `ENV`, `ENV/BIOME` or `BIOME`.
    pub target: String,
}

/// The deployments into a target, newest first (`sandpit history TARGET --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/history", tag = "deployments", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name"), HistoryQuery),
    responses(
        (status = 200, body = DeploymentList),
        (status = 400, description = "No target", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project, environment or biome", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<DeploymentList>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let deployments = crate::project::blocking_in(context, move |context| {
        sandpit_ops::history::history(context, &query.target)
    })
    .await?;
    Ok(Json(DeploymentList::from(deployments.as_slice())))
}
