//! `ApiError`: every failure the API answers, as `{"error": {"code", "message", "hint"}}` with
//! its status. The kinds of `sandpit_ops` map to codes in one exhaustive `match`; internal
//! faults are logged with the request id by [`crate::request_id`] and never sent.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandpit_ops::error::{kind_of, ErrorKind};
use sandpit_ops::tokens::AuthFailure;

use crate::wire::{ErrorBody, ErrorDetail};

/// The stable machine codes of the API's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    InvalidInput,
    NeedsApproval,
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload_too_large",
            Code::InvalidInput => "invalid_input",
            Code::NeedsApproval => "needs_approval",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Conflict | Code::NeedsApproval => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The code a use case's failure is answered with.
pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidInput => Code::InvalidInput,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict => Code::Conflict,
        ErrorKind::Unauthorized => Code::Unauthorized,
        ErrorKind::Forbidden => Code::Forbidden,
        ErrorKind::NeedsApproval => Code::NeedsApproval,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// A failure to answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    /// For [`Code::Internal`]: what happened, for the log only.
    detail: Option<String>,
}

/// The details of an internal fault, carried on the response to [`crate::request_id`], which
/// logs them with the request id and sends the generic message instead.
#[derive(Debug, Clone)]
pub(crate) struct InternalFault(pub(crate) String);

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let (message, hint) = match message.split_once("\nhint: ") {
            Some((message, hint)) => (message.to_owned(), Some(hint.replace("\nhint: ", "\n"))),
            None => (message, None),
        };
        ApiError {
            status: code.status(),
            code,
            message,
            hint,
            detail: None,
        }
    }

    /// An internal fault: `detail` goes to the log, never to the client.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(Code::Internal, "internal error")
        }
    }

    /// The answer to a token that was not accepted.
    pub fn unauthorized(failure: AuthFailure) -> ApiError {
        let hint = match failure {
            AuthFailure::Missing => "log in with `sandpit login --server URL`, or send a token",
            AuthFailure::Invalid | AuthFailure::Revoked | AuthFailure::Expired => {
                "ask an admin for a new token, then `sandpit login --server URL`"
            }
        };
        ApiError::new(Code::Unauthorized, format!("{failure}\nhint: {hint}"))
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// The generic answer to an internal fault, naming the request id the log has the details under.
    pub(crate) fn internal_answer(request_id: &str) -> ApiError {
        ApiError::new(
            Code::Internal,
            format!("internal error; see the server log (request id {request_id})"),
        )
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        match code_of(kind_of(&error)) {
            Code::Internal => ApiError::internal(format!("{error:#}")),
            code => ApiError::new(code, error.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "the request body is larger than the server's limit of {} bytes",
                    crate::BODY_LIMIT
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                Code::InvalidRequest,
                "the request body must be JSON\nhint: send `Content-Type: application/json`",
            ),
            _ => ApiError::new(
                Code::InvalidRequest,
                format!(
                    "the request body is not what this route takes: {}\nhint: GET /api/v1/openapi.json describes every route's body",
                    rejection.body_text()
                ),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message,
                hint: self.hint,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.code == Code::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sandpit\""),
            );
        }
        if let Some(detail) = self.detail {
            response.extensions_mut().insert(InternalFault(detail));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_failure_has_its_code_and_status() {
        let table = [
            (ErrorKind::InvalidInput, "invalid_input", 422),
            (ErrorKind::NotFound, "not_found", 404),
            (ErrorKind::Conflict, "conflict", 409),
            (ErrorKind::Unauthorized, "unauthorized", 401),
            (ErrorKind::Forbidden, "forbidden", 403),
            (ErrorKind::NeedsApproval, "needs_approval", 409),
            (ErrorKind::Unavailable, "unavailable", 503),
            (ErrorKind::Internal, "internal", 500),
        ];
        for (kind, code, status) in table {
            assert_eq!(code_of(kind).as_str(), code, "{kind:?}");
            assert_eq!(code_of(kind).status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.code(), code, "the CLI's --json says the same");
        }
    }

    #[test]
    fn a_hint_is_split_off_the_message_and_internal_details_stay_out_of_the_body() {
        let error = ApiError::new(Code::NotFound, "no such thing\nhint: look elsewhere");
        assert_eq!(error.message, "no such thing");
        assert_eq!(error.hint.as_deref(), Some("look elsewhere"));
        let internal = ApiError::from(anyhow::anyhow!("disk on fire at /secret/path"));
        assert_eq!(internal.code, Code::Internal);
        assert!(!internal.message.contains("/secret/path"));
        let response = internal.into_response();
        let fault = response.extensions().get::<InternalFault>().unwrap();
        assert!(fault.0.contains("/secret/path"));
    }
}
