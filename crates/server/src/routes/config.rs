//! `/api/v1/projects/{project}/config/{target}`: the `sandpit config [TARGET]` listing (GET,
//! secrets masked: a secret's value is never sent) and `config set|unset` (POST).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::config::Changed;
use sandpit_ops::ownership;
use sandpit_ops::projects::Revision;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::project::changing;
use crate::wire::changes::{ConfigChangeRequest, ConfigResult};
use crate::wire::config::ConfigListing;
use crate::wire::deployments::ProgressLog;
use crate::wire::ErrorBody;
use crate::AppState;

/// The route (under the long deadline of [`crate::CHANGE_TIMEOUT`]: a change of what runs
/// restarts components).
pub fn changes() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/config/{target}", post(change))
}

/// Sets or unsets variables of a target: deployed at once (a `config` deployment; 202 while a
/// protected environment's waits for approvals) when it runs, else stored for its next
/// deployment. Waits for the restart, for up to 15 minutes.
#[utoipa::path(post, path = "/api/v1/projects/{project}/config/{target}", tag = "config", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("target" = String, Path, description = "`ENV`, `ENV/BIOME` or `BIOME`, percent-encoded"),
    ),
    request_body = ConfigChangeRequest,
    responses(
        (status = 200, description = "Deployed, or stored for the next deployment", body = ConfigResult),
        (status = 202, description = "A `config` deployment that waits for approvals", body = ConfigResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer; a biome someone else owns; an environment without the deployer role", body = ErrorBody),
        (status = 404, description = "No such project, or a variable that is not set", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "A bad or reserved key, or an unknown component", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, target)): Path<(String, String)>,
    ApiJson(request): ApiJson<ConfigChangeRequest>,
) -> Result<(StatusCode, Json<ConfigResult>), ApiError> {
    caller.require(Action::ChangeOwnBiome)?;
    let change = request.change()?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    state
        .blocking_async(move |_| async move {
            ownership::authorize_config(&context, &target)?;
            let mut log = ProgressLog::default();
            let changed =
                sandpit_ops::config::change(&context, Some(&target), &change, &mut |c, m| {
                    log.record(c, m)
                })
                .await?;
            let pending =
                matches!(&changed, Changed::Deployed(outcome) if outcome.rollout.is_none());
            let mut answer = ConfigResult::from(&changed);
            if let ConfigResult::Deployed(deployed) = &mut answer {
                deployed.events = log.take();
            }
            let status = if pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(answer)))
        })
        .await
}

/// The read route (under the reads' deadline).
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
