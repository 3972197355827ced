//! A deadline for each request's handling (body included): past it the client gets 503 in the
//! error shape rather than waiting on a use case that is stuck.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::error::{ApiError, Code};

/// Answers 503 `unavailable` when `next` takes longer than `limit`.
pub async fn limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            Code::Unavailable,
            format!(
                "the request took longer than {} and was given up\nhint: try again; if it keeps happening, see the server log",
                humanize(limit)
            ),
        )
        .into_response(),
    }
}

fn humanize(limit: Duration) -> String {
    if limit.as_secs() >= 1 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_is_answered_503_in_the_error_shape() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "fine" }))
            .route_layer(axum::middleware::from_fn_with_state(
                Duration::from_secs(5),
                limit,
            ));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), 503);
        let body = axum::body::to_bytes(slow.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("5 s"),
            "{body}"
        );
        let fast = app
            .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fast.status(), 200);
    }
}
