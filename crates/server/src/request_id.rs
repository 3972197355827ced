//! Every request gets an id, answered as `x-request-id` and used in the log; an internal fault
//! is logged here under it, and the client gets the generic message naming it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::error::{ApiError, InternalFault};

/// The header carrying it.
pub const HEADER: &str = "x-request-id";

/// A request's id: 16 hex digits from the OS's random source (a client's own id is not
/// trusted, it would go into the log as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> RequestId {
        let mut bytes = [0u8; 8];
        // Without the OS's random bytes the id is still unique enough from the clock.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            bytes = (nanos as u64).to_be_bytes();
        }
        RequestId(hex::encode(bytes))
    }
}

/// The outermost middleware: assigns the id, logs internal faults, sets the header.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = RequestId::new();
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if let Some(InternalFault(detail)) = response.extensions_mut().remove::<InternalFault>() {
        tracing::error!(request_id = %id.0, %method, %path, "internal error: {detail}");
        let extensions = std::mem::take(response.extensions_mut());
        response = ApiError::internal_answer(&id.0).into_response();
        response.extensions_mut().extend(extensions);
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
