//! `GET /api/v1/projects/{project}/trace/{needle}`: `sandpit trace` over HTTP.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::wire::trace::Trace;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/trace/{needle}", get(trace))
}

/// Where a commit, digest or artifact runs, every deployment that included it, its stored
/// copies and its provenance (`sandpit trace NEEDLE --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/trace/{needle}", tag = "deployments", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("needle" = String, Path, description = "A commit (7 to 40 hex), a digest (`sha256:…`) or an artifact name (`<component>-<sha>.zip`)"),
    ),
    responses(
        (status = 200, body = Trace),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "Not a commit, digest or artifact name", body = ErrorBody),
    ))]
pub async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, needle)): Path<(String, String)>,
) -> Result<Json<Trace>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let report = sandpit_ops::trace::trace(&context, &needle).await?;
    Ok(Json(Trace::from(&report)))
}
