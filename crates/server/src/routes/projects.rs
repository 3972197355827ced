//! `/api/v1/projects`: register a project from git (admin; its `sandpit.toml` checked at the
//! branch head), list and show them (any role), remove one (admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::projects;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::wire::{AddProjectRequest, ErrorBody, Project, ProjectList, RemovedProject};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects", get(list).post(add))
        .route("/api/v1/projects/{project}", get(show).delete(remove))
}

/// Registers a project: its repository is mirrored and fetched, and the branch head's
/// `sandpit.toml` must be valid and name the project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = AddProjectRequest,
    responses(
        (status = 201, body = Project),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 409, description = "A project of this name is registered", body = ErrorBody),
        (status = 422, description = "A bad name, URL or branch, a repository that cannot be fetched, or an invalid sandpit.toml (its diagnostics in `message`)", body = ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<AddProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    caller.require(Action::ManageProjects)?;
    let principal = caller.0.principal;
    let added = state
        .blocking(move |context| {
            projects::add_with(
                context,
                &principal,
                &request.name,
                &request.git,
                &request.branch,
                &projects::WebhookSettings {
                    secret: request.webhook_secret.clone(),
                    allow_forks: request.allow_forks,
                },
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Project::from(&added))))
}

/// Every registered project, by name.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    responses(
        (status = 200, body = ProjectList),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectList>, ApiError> {
    caller.require(Action::Read)?;
    let principal = caller.0.principal;
    let list = state
        .blocking(move |context| projects::list(context, &principal))
        .await?;
    Ok(Json(ProjectList {
        projects: list.projects.iter().map(Project::from).collect(),
    }))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    responses(
        (status = 200, body = Project),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No project has this name", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Project>, ApiError> {
    caller.require(Action::Read)?;
    let principal = caller.0.principal;
    let project = state
        .blocking(move |context| projects::show(context, &principal, &name))
        .await?;
    Ok(Json(Project::from(&project)))
}

/// Unregisters a project and deletes its mirror; its artifacts and history are kept.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    responses(
        (status = 200, body = RemovedProject),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No project has this name", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RemovedProject>, ApiError> {
    caller.require(Action::ManageProjects)?;
    let principal = caller.0.principal;
    let removed = state
        .blocking(move |context| projects::remove(context, &principal, &name))
        .await?;
    Ok(Json(RemovedProject::from(&removed)))
}
