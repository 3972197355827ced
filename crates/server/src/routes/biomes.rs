//! `GET /api/v1/projects/{project}/biomes`: `sandpit ls` over HTTP.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::wire::biomes::BiomeList;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/biomes", get(list))
}

/// The project's biomes and environment bases on this server's machine (`sandpit ls --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/biomes", tag = "biomes", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    responses(
        (status = 200, body = BiomeList),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<BiomeList>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let listing = sandpit_ops::ls::ls(&context).await?;
    Ok(Json(BiomeList::from(&listing)))
}
