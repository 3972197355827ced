//! Webhooks: `POST /hooks/gitlab/{project}` and `/hooks/github/{project}`, where a forge's
//! secret (not a bearer token) is the credential; `POST /api/v1/projects/{project}/ci`, where
//! a GitLab CI job's `sandpit ci` asks for what the hook would have done; and
//! `GET /api/v1/hooks`, the recorded deliveries.
//!
//! A delivery is answered once its event is recorded and its pipeline queued — nothing is
//! fetched or built on the request path, so GitLab (which waits 10 s and disables hooks that
//! keep failing) gets its answer in milliseconds. A wrong or missing secret is 401 and nothing
//! else happens: no record, no pipeline.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use sandpit_ops::authorization::Action;
use sandpit_ops::forge::{self, ci::CiJob, Delivered, Forge, ForgeEvent};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::{ApiError, Code};
use crate::query::ApiQuery;
use crate::wire::hooks::{CiJobRequest, HookAnswer, HookDelivery, HookDeliveryList};
use crate::wire::ErrorBody;
use crate::AppState;

/// The largest delivery read: 25 MB, GitLab's own limit for a webhook payload.
pub const HOOK_BODY_LIMIT: usize = 25_000_000;
/// How many deliveries a list shows when the request does not say.
const DEFAULT_LIMIT: usize = 50;

/// The forges' routes, with their own body limit.
pub fn hooks() -> Router<AppState> {
    Router::new()
        .route("/hooks/gitlab/{project}", post(gitlab))
        .route("/hooks/github/{project}", post(github))
        .layer(axum::extract::DefaultBodyLimit::max(HOOK_BODY_LIMIT))
}

/// The API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hooks", get(list))
        .route("/api/v1/projects/{project}/ci", post(ci))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The key a redelivery repeats: the forge's delivery id, else an `Idempotency-Key`; at most
/// 200 printable characters, or refused.
fn delivery_key(headers: &HeaderMap, forge_header: &str) -> Result<Option<String>, ApiError> {
    let key = header(headers, forge_header).or_else(|| header(headers, "idempotency-key"));
    match key {
        None | Some("") => Ok(None),
        Some(key) if key.len() <= 200 && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        Some(_) => Err(ApiError::new(
            Code::InvalidRequest,
            format!("the delivery key ({forge_header} or Idempotency-Key) must be 1 to 200 printable characters"),
        )),
    }
}

fn unauthorized(what: &str) -> ApiError {
    ApiError::new(
        Code::Unauthorized,
        format!("{what}\nhint: the hook's secret is the one `sandpit projects add` showed; add the project again to get a new one"),
    )
}

/// The project's secret, or 404 for a project that is not registered.
async fn secret_of(state: &AppState, project: &str) -> Result<String, ApiError> {
    let name = project.to_owned();
    let secret = state
        .blocking(move |context| sandpit_ops::projects::webhook_secret(context, &name))
        .await?;
    secret.ok_or_else(|| {
        unauthorized(&format!(
            "project `{project}` was registered before webhooks existed and has no webhook secret"
        ))
    })
}

/// Whether `given` is `secret`, in time that does not depend on where they differ (both are
/// hashed first, so not even their lengths leak).
pub fn secret_matches(given: &str, secret: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let secret = Sha256::digest(secret.as_bytes());
    given.ct_eq(&secret).into()
}

/// `sha256=<hex>`: the signature GitHub sends for `body` under `secret` (for tests and the
/// benchmark, which deliver as GitHub does).
pub fn github_signature(body: &[u8], secret: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, checked
/// in constant time.
pub fn signature_matches(signature: &str, body: &[u8], secret: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// GitLab's webhook.
#[utoipa::path(post, path = "/hooks/gitlab/{project}", tag = "hooks",
    params(
        ("project" = String, Path, description = "The project's name"),
        ("X-Gitlab-Token" = String, Header, description = "The project's webhook secret"),
        ("X-Gitlab-Event" = String, Header, description = "`Push Hook`, `Tag Push Hook` or `Merge Request Hook`; others are ignored"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "The delivery's id: a redelivery is answered with the first answer"),
    ),
    request_body(content = String, description = "GitLab's payload (JSON, at most 25 MB)", content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded; a pipeline was queued", body = HookAnswer),
        (status = 200, description = "Recorded; nothing to do (`ignored` says why), or a redelivery", body = HookAnswer),
        (status = 400, description = "Malformed JSON, or `object_kind` disagrees with the event header", body = ErrorBody),
        (status = 401, description = "A wrong or missing X-Gitlab-Token: nothing was recorded", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 413, description = "A payload over 25 MB", body = ErrorBody),
        (status = 422, description = "The event cannot start what it asks for (its reason in `message`)", body = ErrorBody),
    ))]
pub async fn gitlab(
    State(state): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    let secret = secret_of(&state, &project).await?;
    let token = header(&headers, "x-gitlab-token").unwrap_or_default();
    if token.is_empty() {
        return Err(unauthorized("the delivery has no X-Gitlab-Token header"));
    }
    if !secret_matches(token, &secret) {
        return Err(unauthorized(
            "the delivery's X-Gitlab-Token is not this project's webhook secret",
        ));
    }
    let event_name = header(&headers, "x-gitlab-event")
        .unwrap_or_default()
        .to_owned();
    let event = forge::gitlab::parse(&event_name, &body).map_err(payload_refused)?;
    let key = delivery_key(&headers, "x-gitlab-event-uuid")?;
    deliver(&state, project, Forge::Gitlab, event_name, key, event, None).await
}

/// GitHub's webhook.
#[utoipa::path(post, path = "/hooks/github/{project}", tag = "hooks",
    params(
        ("project" = String, Path, description = "The project's name"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the HMAC-SHA256 of the body under the webhook secret"),
        ("X-GitHub-Event" = String, Header, description = "`push` or `pull_request`; others are ignored"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "The delivery's id: a redelivery is answered with the first answer"),
    ),
    request_body(content = String, description = "GitHub's payload (JSON, at most 25 MB)", content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded; a pipeline was queued", body = HookAnswer),
        (status = 200, description = "Recorded; nothing to do (`ignored` says why), or a redelivery", body = HookAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "A wrong or missing signature: nothing was recorded", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 413, description = "A payload over 25 MB", body = ErrorBody),
        (status = 422, description = "The event cannot start what it asks for", body = ErrorBody),
    ))]
pub async fn github(
    State(state): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    let secret = secret_of(&state, &project).await?;
    let Some(signature) = header(&headers, "x-hub-signature-256") else {
        return Err(unauthorized(
            "the delivery has no X-Hub-Signature-256 header",
        ));
    };
    if !signature_matches(signature, &body, &secret) {
        return Err(unauthorized(
            "the delivery's X-Hub-Signature-256 is not the body's HMAC under this project's webhook secret",
        ));
    }
    let event_name = header(&headers, "x-github-event")
        .unwrap_or_default()
        .to_owned();
    let event = forge::github::parse(&event_name, &body).map_err(payload_refused)?;
    let key = delivery_key(&headers, "x-github-delivery")?;
    deliver(&state, project, Forge::Github, event_name, key, event, None).await
}

fn payload_refused(error: forge::gitlab::PayloadError) -> ApiError {
    ApiError::new(Code::InvalidRequest, error.to_string())
}

async fn deliver(
    state: &AppState,
    project: String,
    forge: Forge,
    event_name: String,
    delivery_key: Option<String>,
    event: ForgeEvent,
    requested_by: Option<String>,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    let delivered = Delivered {
        project,
        forge,
        event_name,
        delivery_key,
        event,
        requested_by,
    };
    let applied = state
        .blocking(move |context| forge::apply(context, &delivered))
        .await?;
    let mut answer = HookAnswer::from(&applied.delivery);
    if applied.redelivered {
        answer.redelivered = true;
        return Ok((StatusCode::OK, Json(answer)));
    }
    if answer.pipeline.is_some() {
        state.pipeline_queued();
        return Ok((StatusCode::ACCEPTED, Json(answer)));
    }
    Ok((StatusCode::OK, Json(answer)))
}

/// What a GitLab CI job's `sandpit ci` asks for: what the matching webhook would do.
#[utoipa::path(post, path = "/api/v1/projects/{project}/ci", tag = "hooks", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = CiJobRequest,
    responses(
        (status = 202, description = "A pipeline was queued", body = HookAnswer),
        (status = 200, description = "Nothing to do (`ignored` says why), or the same job asked again", body = HookAnswer),
        (status = 400, description = "A body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not a deployer", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "Variables that describe no job (`message` says which)", body = ErrorBody),
    ))]
pub async fn ci(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    ApiJson(request): ApiJson<CiJobRequest>,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    caller.require(Action::RunPipeline)?;
    let job = CiJob {
        pipeline_source: request.pipeline_source.clone(),
        commit_sha: request.commit_sha.clone(),
        commit_ref_name: request.commit_ref_name.clone(),
        commit_tag: request.commit_tag.clone(),
        merge_request_iid: request.merge_request_iid,
        merge_request_source_project_id: request.merge_request_source_project_id,
        merge_request_project_id: request.merge_request_project_id,
        user_login: request.user_login.clone(),
        stop: request.stop,
        received_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    let event = forge::ci::event(&job).map_err(|why| ApiError::new(Code::InvalidInput, why))?;
    // A retried request of the same job is the same delivery; a retried job is a new one.
    let key = match (request.pipeline_id, request.job_id) {
        (Some(pipeline), Some(job)) => Some(format!(
            "gitlab-ci:{pipeline}:{job}{}",
            if request.stop { ":stop" } else { "" }
        )),
        _ => None,
    };
    let requested_by = match &caller.0.principal.identity {
        sandpit_ops::principal::Identity::Named(name) => Some(name.clone()),
        sandpit_ops::principal::Identity::LocalGitUser => None,
    };
    let event_name = request.pipeline_source.clone();
    deliver(
        &state,
        project,
        Forge::GitlabCi,
        event_name,
        key,
        event,
        requested_by,
    )
    .await
}

/// `GET /api/v1/hooks`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this project's deliveries.
    pub project: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<usize>,
}

/// Recorded deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/hooks", tag = "hooks", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = HookDeliveryList),
        (status = 400, description = "A query parameter that does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<HookDeliveryList>, ApiError> {
    caller.require(Action::Read)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let deliveries = state
        .blocking(move |context| {
            Ok(sandpit_ops::deployment::state_store(context)?
                .deliveries(query.project.as_deref(), limit)?)
        })
        .await?;
    Ok(Json(HookDeliveryList {
        deliveries: deliveries.iter().map(HookDelivery::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_itself() {
        let secret = "0123456789abcdef0123";
        assert!(secret_matches(secret, secret));
        for wrong in [
            "",
            "0123456789abcdef012",
            "0123456789abcdef01234",
            "x123456789abcdef0123",
        ] {
            assert!(!secret_matches(wrong, secret), "{wrong}");
        }
    }

    #[test]
    fn a_signature_is_the_bodys_hmac_under_the_secret() {
        // The example GitHub documents for validating deliveries.
        let secret = "It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_matches(good, body, secret));
        assert_eq!(github_signature(body, secret), good);
        assert!(!signature_matches(good, b"Hello, World?", secret));
        assert!(!signature_matches(good, body, "another secret"));
        for malformed in ["", "sha1=757107", "sha256=zz", &good[7..]] {
            assert!(!signature_matches(malformed, body, secret), "{malformed}");
        }
    }
}
