//! `/api/v1/whoami`: who the token speaks for.

use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::principal::Identity;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::wire::{ErrorBody, Whoami};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/whoami", get(whoami))
}

/// The token's user, roles and id (any role).
#[utoipa::path(get, path = "/api/v1/whoami", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, body = Whoami),
        (status = 401, description = "Missing, invalid, revoked or expired token", body = ErrorBody),
    ))]
pub async fn whoami(caller: Caller) -> Result<Json<Whoami>, ApiError> {
    caller.require(Action::Read)?;
    let principal = &caller.0.principal;
    let user = match &principal.identity {
        Identity::Named(name) => name.clone(),
        Identity::LocalGitUser => String::new(),
    };
    Ok(Json(Whoami {
        user,
        roles: principal
            .roles
            .iter()
            .map(|role| role.as_str().to_owned())
            .collect(),
        token_id: caller.0.token_id.clone(),
    }))
}
