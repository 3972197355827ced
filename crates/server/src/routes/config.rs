//! `GET /api/v1/projects/{project}/config/{target}`: the `sandpit config [TARGET]` listing over
//! HTTP, secrets masked (a secret's value is never sent).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::wire::config::ConfigListing;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/config/{target}", get(list))
}

/// A target's variables and secrets (values of secrets `null`), whether what runs has them, and
/// the changes waiting for approvals (`sandpit config TARGET --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/config/{target}", tag = "config", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("target" = String, Path, description = "`ENV`, `ENV/BIOME` or `BIOME`, as one (percent-encoded) segment"),
    ),
    responses(
        (status = 200, body = ConfigListing),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project, environment or biome", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, target)): Path<(String, String)>,
) -> Result<Json<ConfigListing>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let listing = crate::project::blocking_in(context, move |context| {
        sandpit_ops::config::show(context, Some(&target), false)
    })
    .await?;
    Ok(Json(ConfigListing::from(&listing)))
}
