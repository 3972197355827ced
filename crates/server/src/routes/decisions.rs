//! `/api/v1/deployments/{id}/approve` and `/reject`: decisions on pending deployments into
//! protected environments, by approvers, as the token's user (never the requester of the
//! deployment). The last approval needed runs the deployment before it is answered, under
//! [`crate::DECISION_TIMEOUT`] rather than the usual deadline; a pipeline that waited for it
//! ends with it.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::Context;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::wire::{Decision, Deployment, ErrorBody, RejectRequest};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments/{id}/approve", post(approve))
        .route("/api/v1/deployments/{id}/reject", post(reject))
}

/// Approves a pending deployment; the last approval needed runs it and answers when it is done.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/approve", tag = "deployments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The pending deployment's number")),
    responses(
        (status = 200, description = "The deployment: ran (with what its target runs now), or still waiting for more approvals", body = Decision),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not an approver, or requested this deployment", body = ErrorBody),
        (status = 404, description = "No deployment has this number", body = ErrorBody),
        (status = 409, description = "It is not pending, or this user approved it already", body = ErrorBody),
        (status = 503, description = "The rollout took longer than the server waits; it goes on", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Decision>, ApiError> {
    caller.require(Action::Approve)?;
    let principal = caller.0.principal;
    let outcome = state
        .blocking_async(move |context| async move {
            let context = Context {
                principal,
                ..(*context).clone()
            };
            sandpit_ops::approve::approve(&context, id, &mut |_, _| {}).await
        })
        .await?;
    Ok(Json(Decision::from(&outcome)))
}

/// Rejects a pending deployment.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/reject", tag = "deployments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The pending deployment's number")),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "The rejected deployment", body = Deployment),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not an approver", body = ErrorBody),
        (status = 404, description = "No deployment has this number", body = ErrorBody),
        (status = 409, description = "It is not pending", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Result<Json<Deployment>, ApiError> {
    caller.require(Action::Reject)?;
    let principal = caller.0.principal;
    let rejected = state
        .blocking(move |context| {
            let context = Context {
                principal,
                ..context.clone()
            };
            sandpit_ops::approve::reject(&context, id, request.reason.as_deref())
        })
        .await?;
    Ok(Json(Deployment::from(&rejected)))
}
