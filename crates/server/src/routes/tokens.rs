//! `/api/v1/tokens`: create (the secret is in the answer, once), list, revoke; admin only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::principal::Role;
use sandpit_ops::tokens;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::wire::{CreateTokenRequest, CreatedToken, ErrorBody, Token, TokenList};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{id}", delete(revoke))
}

/// Creates a token; the answer holds its secret, which is never shown again.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, body = CreatedToken),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "An unknown role, an empty user or a bad expiry", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(Action::ManageTokens)?;
    let roles = request
        .roles
        .iter()
        .map(|name| Role::parse(name).map_err(|message| failure(ErrorKind::InvalidInput, message)))
        .collect::<anyhow::Result<Vec<Role>>>()?;
    let expires = request
        .expires_in
        .as_deref()
        .map(tokens::parse_expiry)
        .transpose()?;
    let principal = caller.0.principal;
    let created = state
        .blocking(move |context| {
            tokens::create(context, &principal, &request.user, &roles, expires)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken::from(&created))))
}

/// Every token, oldest first, revoked ones included (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, body = TokenList),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, ApiError> {
    caller.require(Action::ManageTokens)?;
    let principal = caller.0.principal;
    let records = state
        .blocking(move |context| tokens::list(context, &principal))
        .await?;
    Ok(Json(TokenList {
        tokens: records.iter().map(Token::from).collect(),
    }))
}

/// Revokes a token: every request with it is refused from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's id, `tok_` and 12 hex digits")),
    responses(
        (status = 200, description = "The token, with `revoked_at`", body = Token),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No token has this id", body = ErrorBody),
        (status = 409, description = "It was already revoked", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Token>, ApiError> {
    caller.require(Action::ManageTokens)?;
    let principal = caller.0.principal;
    let record = state
        .blocking(move |context| tokens::revoke(context, &principal, &id))
        .await?;
    Ok(Json(Token::from(&record)))
}
