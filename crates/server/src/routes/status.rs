//! `GET /api/v1/projects/{project}/status/{target}`: `sandpit status` over HTTP.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::wire::biome::BiomeDocument;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/status/{target}", get(show))
}

/// One biome's (or environment base's) components, the models it is answered with and what it
/// costs now (`sandpit status TARGET --json`). Secrets (the database URL) are never sent.
#[utoipa::path(get, path = "/api/v1/projects/{project}/status/{target}", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("target" = String, Path, description = "`BIOME`, `ENV/BIOME` or an environment's base `ENV`, as one (percent-encoded) segment"),
    ),
    responses(
        (status = 200, body = BiomeDocument),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project or biome (with a did-you-mean)", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, target)): Path<(String, String)>,
) -> Result<Json<BiomeDocument>, ApiError> {
    caller.require(Action::Read)?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let status = sandpit_ops::status::status(&context, Some(&target)).await?;
    let cost = sandpit_ops::status::cost(&context, &status).await?;
    let (models, expiry, terraform, pending) = crate::project::blocking_in(context, {
        let status = status.clone();
        move |context| {
            let models = sandpit_ops::status::models(context, &status)?;
            let expiry = sandpit_ops::expiry::of_biome(
                context,
                &status.project,
                &status.env,
                &status.biome,
            )?;
            let terraform = sandpit_ops::terraform::overview(
                context,
                &status.project,
                &status.env,
                &status.biome,
            );
            let pending = sandpit_ops::status::pending(context, &status)?;
            Ok((models, expiry, terraform, pending))
        }
    })
    .await?;
    Ok(Json(
        BiomeDocument::new(&status, None)
            .with_models(&models)
            .with_cost(&cost)
            .with_expiry(expiry.as_ref())
            .with_terraform(&terraform)
            .with_pending(&pending),
    ))
}
