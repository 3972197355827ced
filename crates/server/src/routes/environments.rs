//! `/api/v1/projects/{project}/environments/{env}/…`: the deployments into an environment's
//! base — `deploy` (a pushed commit), `promote` (what runs in the one before), `rollback`. Into
//! a protected environment each is a request: recorded, answered 202, run once approved.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sandpit_build::execute::NoProgress;
use sandpit_ops::authorization::Action;
use sandpit_ops::deploy::{DeployOptions, DeployOutcome};
use sandpit_ops::ownership;
use sandpit_ops::projects::Revision;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::project::{changing, revision};
use crate::wire::changes::{DeployRequest, PromoteRequest, RollbackRequest};
use crate::wire::deployments::{DeploymentResult, ProgressLog};
use crate::wire::ErrorBody;
use crate::AppState;

/// The routes (under the long deadline of [`crate::CHANGE_TIMEOUT`]).
pub fn changes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project}/environments/{env}/deployments",
            post(deploy),
        )
        .route(
            "/api/v1/projects/{project}/environments/{env}/promotions",
            post(promote),
        )
        .route(
            "/api/v1/projects/{project}/environments/{env}/rollbacks",
            post(rollback),
        )
}

/// 202 while it waits for approvals, 200 once it ran.
pub(crate) fn answered(
    outcome: &DeployOutcome,
    log: &mut ProgressLog,
) -> (StatusCode, Json<DeploymentResult>) {
    let mut answer = DeploymentResult::from(outcome);
    answer.events = log.take();
    let status = if answer.is_pending() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    (status, Json(answer))
}

/// `sandpit deploy ENV`: builds (or reuses) exactly a pushed commit and deploys it into the
/// environment's base, requested by the token's user. Waits for the rollout, for up to 15
/// minutes (this route's deadline; reads have 30 s).
#[utoipa::path(post, path = "/api/v1/projects/{project}/environments/{env}/deployments", tag = "deployments", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "The environment"),
    ),
    request_body = DeployRequest,
    responses(
        (status = 200, description = "Deployed (the answer's `events` are the rollout's progress)", body = DeploymentResult),
        (status = 202, description = "Recorded; waits for approvals (a protected environment)", body = DeploymentResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a deployer", body = ErrorBody),
        (status = 404, description = "No such project, environment, branch or commit (\"commit … is not in <url>; push it first\")", body = ErrorBody),
        (status = 409, description = "Older than what runs (without `allow_older`)", body = ErrorBody),
        (status = 422, description = "Both `sha` and `branch`, an environment that takes only promotions, or an invalid sandpit.toml", body = ErrorBody),
        (status = 503, description = "The repository or the daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<(StatusCode, Json<DeploymentResult>), ApiError> {
    caller.require(Action::DeployUnprotected)?;
    let revision = revision(request.sha.clone(), request.branch.clone())?;
    let context = changing(&state, &caller, &project, revision).await?;
    state
        .blocking_async(move |_| async move {
            ownership::authorize_environment(&context, &env, false)?;
            let options = DeployOptions {
                env,
                rev: None,
                allow_older: request.allow_older,
            };
            let mut log = ProgressLog::default();
            let (_, outcome) =
                sandpit_ops::deploy::deploy(&context, &options, &mut NoProgress, &mut |c, m| {
                    log.record(c, m)
                })
                .await?;
            Ok(answered(&outcome, &mut log))
        })
        .await
}

/// `sandpit promote FROM ENV`: the exact artifacts running in `from` deployed into `env`,
/// never rebuilt.
#[utoipa::path(post, path = "/api/v1/projects/{project}/environments/{env}/promotions", tag = "deployments", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "The environment promoted into"),
    ),
    request_body = PromoteRequest,
    responses(
        (status = 200, body = DeploymentResult),
        (status = 202, description = "Recorded; waits for approvals (a protected environment)", body = DeploymentResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a deployer", body = ErrorBody),
        (status = 404, description = "No such project or environment", body = ErrorBody),
        (status = 409, description = "Nothing healthy runs in `from`", body = ErrorBody),
        (status = 422, description = "`env` does not take promotions from `from`", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    ApiJson(request): ApiJson<PromoteRequest>,
) -> Result<(StatusCode, Json<DeploymentResult>), ApiError> {
    caller.require(Action::PromoteUnprotected)?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    state
        .blocking_async(move |_| async move {
            ownership::authorize_environment(&context, &env, true)?;
            let mut log = ProgressLog::default();
            let outcome =
                sandpit_ops::promote::promote(&context, &request.from, &env, &mut |c, m| {
                    log.record(c, m)
                })
                .await?;
            Ok(answered(&outcome, &mut log))
        })
        .await
}

/// `sandpit rollback ENV [--to ID]`: the artifacts of an earlier successful deployment,
/// deployed again as a new deployment.
#[utoipa::path(post, path = "/api/v1/projects/{project}/environments/{env}/rollbacks", tag = "deployments", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "The environment rolled back"),
    ),
    request_body = RollbackRequest,
    responses(
        (status = 200, body = DeploymentResult),
        (status = 202, description = "Recorded; waits for approvals (a protected environment)", body = DeploymentResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a deployer", body = ErrorBody),
        (status = 404, description = "No such project, environment or deployment", body = ErrorBody),
        (status = 409, description = "Nothing to roll back to", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    ApiJson(request): ApiJson<RollbackRequest>,
) -> Result<(StatusCode, Json<DeploymentResult>), ApiError> {
    caller.require(Action::DeployUnprotected)?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    state
        .blocking_async(move |_| async move {
            ownership::authorize_environment(&context, &env, false)?;
            let mut log = ProgressLog::default();
            let outcome =
                sandpit_ops::rollback::rollback(&context, &env, request.to, &mut |c, m| {
                    log.record(c, m)
                })
                .await?;
            Ok(answered(&outcome, &mut log))
        })
        .await
}
