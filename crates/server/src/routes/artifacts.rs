//! `GET /api/v1/projects/{project}/artifacts?env=E`: `sandpit artifacts` over HTTP.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::ApiQuery;
use crate::wire::artifacts::ArtifactList;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/artifacts", get(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactsQuery {
    /// List this environment's store instead of the build store.
    pub env: Option<String>,
}

/// A store's artifacts, each checked against its digest (`sandpit artifacts --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/artifacts", tag = "artifacts", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name"), ArtifactsQuery),
    responses(
        (status = 200, body = ArtifactList),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project or environment", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    ApiQuery(query): ApiQuery<ArtifactsQuery>,
) -> Result<Json<ArtifactList>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let check = crate::project::blocking_in(context, move |context| {
        sandpit_ops::artifacts::artifacts(context, query.env.as_deref())
    })
    .await?;
    Ok(Json(ArtifactList::from(&check)))
}
