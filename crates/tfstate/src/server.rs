//! Terraform's http backend protocol over a [`StateStore`]: GET, POST (PUT alike), DELETE,
//! LOCK and UNLOCK on `/v1/states/<project>/<environment>/<biome or _base>/<component>`, each
//! authorised by HTTP Basic (username the state's path, password its credential) before the
//! body is read. The answers are the ones Terraform's client (`remote-state/http/client.go`)
//! understands: no state is 204 (it reads that as empty); a held lock is 423 with the holder's
//! `LockInfo` as the body, which it prints.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use tokio::net::TcpListener;

use crate::key::StateKey;
use crate::lock::{LockDecision, LockInfo, UnlockDecision};
use crate::store::{StateStore, StoreError};

/// The largest state accepted: states of big estates run to tens of megabytes.
pub const MAX_STATE_BYTES: usize = 64 * 1024 * 1024;

/// The realm a 401 names.
const REALM: &str = "Basic realm=\"sandpit terraform state\"";

/// The backend's routes over `store` (what [`serve`] serves; tests may drive it directly).
pub fn router(store: Arc<StateStore>) -> Router {
    Router::new()
        .route(
            "/v1/states/{project}/{environment}/{biome}/{component}",
            any(handle),
        )
        .fallback(|| async {
            plain(
                StatusCode::NOT_FOUND,
                "not a state address: states live at /v1/states/<project>/<environment>/<biome or _base>/<component>".to_owned(),
            )
        })
        .with_state(store)
}

/// Serves the backend on `listener` until `shutdown` completes (`sandpit_http`'s limits, with
/// bodies up to [`MAX_STATE_BYTES`]).
pub async fn serve(
    listener: TcpListener,
    store: Arc<StateStore>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = sandpit_http::Limits {
        max_body_bytes: MAX_STATE_BYTES,
        // A large state over loopback still arrives in well under this.
        body_read_timeout: std::time::Duration::from_secs(120),
        ..sandpit_http::Limits::default()
    };
    sandpit_http::serve(listener, router(store), limits, shutdown).await
}

/// The username and password of an `Authorization: Basic …` header.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn locked(holder: &LockInfo) -> Response {
    (
        StatusCode::LOCKED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(holder).expect("a LockInfo always encodes"),
    )
        .into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = plain(StatusCode::UNAUTHORIZED, message.to_owned());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    response
}

fn store_failure(error: StoreError) -> Response {
    match error {
        StoreError::NotAState { .. } => plain(StatusCode::BAD_REQUEST, error.to_string()),
        StoreError::Locked { holder } => locked(&holder),
        StoreError::LockGone { .. } => plain(StatusCode::CONFLICT, error.to_string()),
        StoreError::Io { .. } | StoreError::BadLockFile { .. } => {
            tracing::error!("terraform state backend: {error}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state store failed; the daemon's log says why".to_owned(),
            )
        }
    }
}

/// Runs a store call off the async threads (it does file I/O and may wait for a key's guard).
async fn blocking<T: Send + 'static>(
    store: &Arc<StateStore>,
    call: impl FnOnce(&StateStore) -> T + Send + 'static,
) -> T {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .expect("a state store call panicked")
}

/// Whether the request carries the key's username and credential.
async fn authorized(store: &Arc<StateStore>, key: &StateKey, headers: &HeaderMap) -> Response {
    let Some((user, password)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(basic_credentials)
    else {
        return unauthorized("this state needs HTTP Basic credentials: the username is the state's path, the password its credential");
    };
    if user != key.path() {
        return unauthorized(
            "the username must be the state's path (project/environment/biome-or-_base/component)",
        );
    }
    let key = key.clone();
    match blocking(store, move |store| store.check_credential(&key, &password)).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => unauthorized("wrong credential for this state"),
        Err(error) => store_failure(error),
    }
}

/// Terraform's lock information in a LOCK or UNLOCK body; the refusal's text otherwise.
fn parse_lock_info(body: &[u8]) -> Result<LockInfo, String> {
    serde_json::from_slice(body).map_err(|error| {
        format!("the body is not Terraform's lock information (JSON with an `ID`): {error}")
    })
}

async fn handle(
    State(store): State<Arc<StateStore>>,
    Path((project, environment, biome, component)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let key = match StateKey::from_segments(&project, &environment, &biome, &component) {
        Ok(key) => key,
        Err((part, problem)) => {
            return plain(
                StatusCode::NOT_FOUND,
                format!("not a state address: its {part} {problem}"),
            )
        }
    };
    let verdict = authorized(&store, &key, request.headers()).await;
    if verdict.status() != StatusCode::OK {
        return verdict;
    }
    let method = request.method().as_str().to_owned();
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let lock_id = query.get("ID").cloned();
    match method.as_str() {
        "GET" => match blocking(&store, move |store| store.current(&key)).await {
            Ok(Some(state)) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                state,
            )
                .into_response(),
            Ok(None) => StatusCode::NO_CONTENT.into_response(),
            Err(error) => store_failure(error),
        },
        "POST" | "PUT" => {
            match blocking(&store, move |store| {
                store.write(&key, &body, lock_id.as_deref())
            })
            .await
            {
                Ok(_) => StatusCode::OK.into_response(),
                Err(error) => store_failure(error),
            }
        }
        "DELETE" => {
            match blocking(&store, move |store| {
                store.delete_versions(&key, lock_id.as_deref())
            })
            .await
            {
                Ok(()) => StatusCode::OK.into_response(),
                Err(error) => store_failure(error),
            }
        }
        "LOCK" => {
            let requested = match parse_lock_info(&body) {
                Ok(info) => info,
                Err(problem) => return plain(StatusCode::BAD_REQUEST, problem),
            };
            match blocking(&store, move |store| store.try_lock(&key, &requested)).await {
                Ok(LockDecision::Take) => StatusCode::OK.into_response(),
                Ok(LockDecision::HeldBy(holder)) => locked(&holder),
                Err(error) => store_failure(error),
            }
        }
        "UNLOCK" => {
            // `terraform force-unlock` sends no body: it names no holder, so it is refused with
            // the holder like any other stranger (`sandpit tf unlock` is the way to clear it).
            let id = if body.is_empty() {
                String::new()
            } else {
                match parse_lock_info(&body) {
                    Ok(info) => info.id,
                    Err(problem) => return plain(StatusCode::BAD_REQUEST, problem),
                }
            };
            match blocking(&store, move |store| store.unlock(&key, &id)).await {
                Ok(UnlockDecision::Release | UnlockDecision::NotLocked) => {
                    StatusCode::OK.into_response()
                }
                Ok(UnlockDecision::HeldBy(holder)) => locked(&holder),
                Err(error) => store_failure(error),
            }
        }
        other => {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{other} is not a method of Terraform's http backend"),
            );
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, POST, PUT, DELETE, LOCK, UNLOCK"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        let encoded = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let cases = [
            (
                format!("Basic {}", encoded("geo/dev/_base/net:s3cr:et")),
                Some(("geo/dev/_base/net", "s3cr:et")),
            ),
            (format!("basic {}", encoded("u:p")), Some(("u", "p"))),
            (format!("Bearer {}", encoded("u:p")), None),
            (format!("Basic {}", encoded("no-colon")), None),
            ("Basic %%%".to_owned(), None),
            ("Basic".to_owned(), None),
            (String::new(), None),
        ];
        for (header, expected) in cases {
            let expected = expected.map(|(u, p)| (u.to_owned(), p.to_owned()));
            assert_eq!(basic_credentials(&header), expected, "{header}");
        }
    }
}
