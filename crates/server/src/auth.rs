//! `Caller`: the extractor that turns `Authorization: Bearer <token>` into the principal it
//! speaks for (401 in the error shape otherwise), and `require`, the role check every handler
//! makes through the authorization table.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sandpit_ops::authorization::{authorize, Action};
use sandpit_ops::tokens::{self, AuthFailure, Authenticated};

use crate::error::ApiError;
use crate::AppState;

/// Who is calling: a token that checked out.
#[derive(Debug, Clone)]
pub struct Caller(pub Authenticated);

impl Caller {
    /// `Ok` when the caller's roles allow `action`; 403 naming the role needed otherwise.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        Ok(authorize(&self.0.principal, action)?)
    }
}

/// The token in an `Authorization` header: `None` when there is none; an error when the header
/// is there but says something other than `Bearer <token>`.
fn bearer(parts: &Parts) -> Result<Option<String>, AuthFailure> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthFailure::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Invalid);
    }
    Ok(Some(token.trim().to_owned()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let token = bearer(parts).map_err(ApiError::unauthorized)?;
        let authenticated = state
            .blocking(move |context| tokens::authenticate(context, token.as_deref()))
            .await?;
        authenticated.map(Caller).map_err(ApiError::unauthorized)
    }
}
