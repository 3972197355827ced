//! `ApiQuery`: a request's query string, refused in the error shape (400 `invalid_request`)
//! when it does not parse into what the route takes.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// The query string of a request, as a `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(
                Code::InvalidRequest,
                format!(
                    "the query string is not what this route takes: {}\nhint: GET /api/v1/openapi.json describes every route's parameters",
                    rejection.body_text()
                ),
            )),
        }
    }
}
