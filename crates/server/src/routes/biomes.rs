//! `/api/v1/projects/{project}/biomes…`: `sandpit ls` over HTTP, and the changes of one biome —
//! `up` (POST), `down` (DELETE), `restart`, `extend`, `sleep`, `wake`.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use sandpit_build::execute::NoProgress;
use sandpit_ops::authorization::Action;
use sandpit_ops::build::BuildOptions;
use sandpit_ops::ownership;
use sandpit_ops::projects::Revision;
use sandpit_ops::up::UpOptions;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::project::{changing, reading, revision};
use crate::wire::biome::BiomeDocument;
use crate::wire::biomes::BiomeList;
use crate::wire::changes::{
    DownResult, ExtendRequest, ExtendResult, RestartRequest, RestartResult, UpRequest, UpResult,
};
use crate::wire::deployments::ProgressLog;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/biomes", get(list))
}

/// The routes that change biomes (under the long deadline of [`crate::CHANGE_TIMEOUT`]).
pub fn changes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project}/biomes", post(up))
        .route("/api/v1/projects/{project}/biomes/{biome}", delete(down))
        .route(
            "/api/v1/projects/{project}/biomes/{biome}/restart",
            post(restart),
        )
        .route(
            "/api/v1/projects/{project}/biomes/{biome}/extend",
            post(extend),
        )
        .route(
            "/api/v1/projects/{project}/biomes/{biome}/sleep",
            post(sleep),
        )
        .route("/api/v1/projects/{project}/biomes/{biome}/wake", post(wake))
}

/// The project's biomes and environment bases on this server's machine (`sandpit ls --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/biomes", tag = "biomes", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    responses(
        (status = 200, body = BiomeList),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<BiomeList>, ApiError> {
    caller.require(Action::Read)?;
    let context = reading(&state, &caller, &project).await?;
    let listing = sandpit_ops::ls::ls(&context).await?;
    Ok(Json(BiomeList::from(&listing)))
}

/// `sandpit up`: builds exactly a pushed commit (`sha`, `branch`, or the project's branch) and
/// brings the biome up at it, requested by the token's user, who then owns the biome. Waits
/// until the biome has converged, for up to 15 minutes (this route's deadline; reads have 30 s).
#[utoipa::path(post, path = "/api/v1/projects/{project}/biomes", tag = "biomes", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = UpRequest,
    responses(
        (status = 200, description = "The biome runs the commit (the answer's `events` are the rollout's progress)", body = UpResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project, branch or commit (\"commit … is not in <url>; push it first\")", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Both `sha` and `branch`, a bad name, or an invalid sandpit.toml at the commit", body = ErrorBody),
        (status = 503, description = "The repository or the daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn up(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    ApiJson(request): ApiJson<UpRequest>,
) -> Result<Json<UpResult>, ApiError> {
    caller.require(Action::ChangeOwnBiome)?;
    let revision = revision(request.sha.clone(), request.branch.clone())?;
    let biome = sandpit_ops::up::parse_biome_name(&request.biome)?;
    let context = changing(&state, &caller, &project, revision).await?;
    let answer = state
        .blocking_async(move |_| async move {
            ownership::authorize_biome(&context, &biome)?;
            let options = UpOptions {
                biome: Some(biome.to_string()),
                env: request.env,
                build: BuildOptions::default(),
                reset_db: request.reset_db,
                overlay: request.overlay,
            };
            let mut log = ProgressLog::default();
            let outcome =
                sandpit_ops::up::up(&context, &options, &mut NoProgress, |c, m| log.record(c, m))
                    .await?;
            let mut answer = UpResult::from(&outcome);
            answer.events = log.take();
            Ok(answer)
        })
        .await?;
    Ok(Json(answer))
}

/// `sandpit down BIOME`: stops the biome and drops its database, as the token's user.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/biomes/{biome}", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("biome" = String, Path, description = "`BIOME` or `ENV/BIOME`, percent-encoded"),
    ),
    responses(
        (status = 200, body = DownResult),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project or biome", body = ErrorBody),
        (status = 409, description = "Already down", body = ErrorBody),
        (status = 422, description = "A bad name, or an environment's (use `env destroy`, local only)", body = ErrorBody),
        (status = 503, description = "The daemon or the database cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn down(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, biome)): Path<(String, String)>,
) -> Result<Json<DownResult>, ApiError> {
    caller.require(Action::ChangeOwnBiome)?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    let answer = state
        .blocking_async(move |_| async move {
            ownership::authorize_biome_target(&context, &biome)?;
            let mut log = ProgressLog::default();
            let outcome =
                sandpit_ops::down::down(&context, Some(&biome), |c, m| log.record(c, m)).await?;
            let mut answer = DownResult::from(&outcome);
            answer.events = log.take();
            Ok(answer)
        })
        .await?;
    Ok(Json(answer))
}

/// `sandpit restart BIOME [COMPONENT]`: restarts one component or every service, and waits
/// until they are healthy.
#[utoipa::path(post, path = "/api/v1/projects/{project}/biomes/{biome}/restart", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("biome" = String, Path, description = "`BIOME` or `ENV/BIOME`, percent-encoded"),
    ),
    request_body = RestartRequest,
    responses(
        (status = 200, body = RestartResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project, biome or component", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, biome)): Path<(String, String)>,
    ApiJson(request): ApiJson<RestartRequest>,
) -> Result<Json<RestartResult>, ApiError> {
    change_biome(
        state,
        caller,
        project,
        biome,
        BiomeChange::Restart(request.component),
    )
    .await
}

/// `sandpit extend BIOME SPAN`: the biome expires `span` later (from now when it already
/// expired), as the token's user. Environment bases never expire.
#[utoipa::path(post, path = "/api/v1/projects/{project}/biomes/{biome}/extend", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("biome" = String, Path, description = "`BIOME` or `ENV/BIOME`, percent-encoded"),
    ),
    request_body = ExtendRequest,
    responses(
        (status = 200, body = ExtendResult),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project or biome (with a did-you-mean)", body = ErrorBody),
        (status = 422, description = "A span that is not one, a bad name, or an environment (bases do not expire)", body = ErrorBody),
    ))]
pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, biome)): Path<(String, String)>,
    ApiJson(request): ApiJson<ExtendRequest>,
) -> Result<Json<ExtendResult>, ApiError> {
    caller.require(Action::ChangeOwnBiome)?;
    let span = sandpit_domain::Span::parse(&request.span).map_err(|error| {
        sandpit_ops::error::failure(
            sandpit_ops::error::ErrorKind::InvalidInput,
            error.to_string(),
        )
    })?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    let answer = state
        .blocking_async(move |_| async move {
            ownership::authorize_biome_target(&context, &biome)?;
            let outcome = sandpit_ops::expiry::extend(&context, &biome, span).await?;
            Ok(ExtendResult::from(&outcome))
        })
        .await?;
    Ok(Json(answer))
}

/// `sandpit sleep BIOME`: stops every process of the biome and unloads its models, keeping its
/// data and database; the next request through the gateway (or `wake`) brings it back.
#[utoipa::path(post, path = "/api/v1/projects/{project}/biomes/{biome}/sleep", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("biome" = String, Path, description = "`BIOME` or `ENV/BIOME`, percent-encoded"),
    ),
    responses(
        (status = 200, description = "The biome, now `sleeping`", body = RestartResult),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project or biome", body = ErrorBody),
        (status = 422, description = "An environment's base that does not opt in to sleeping", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached", body = ErrorBody),
    ))]
pub async fn sleep(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, biome)): Path<(String, String)>,
) -> Result<Json<RestartResult>, ApiError> {
    change_biome(state, caller, project, biome, BiomeChange::Sleep).await
}

/// `sandpit wake BIOME`: brings a sleeping biome back and answers once its services are healthy.
#[utoipa::path(post, path = "/api/v1/projects/{project}/biomes/{biome}/wake", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("biome" = String, Path, description = "`BIOME` or `ENV/BIOME`, percent-encoded"),
    ),
    responses(
        (status = 200, description = "The biome, awake", body = RestartResult),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a developer, or the biome is someone else's and the caller no deployer", body = ErrorBody),
        (status = 404, description = "No such project or biome", body = ErrorBody),
        (status = 503, description = "The daemon cannot be reached, or the 15-minute deadline passed", body = ErrorBody),
    ))]
pub async fn wake(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, biome)): Path<(String, String)>,
) -> Result<Json<RestartResult>, ApiError> {
    change_biome(state, caller, project, biome, BiomeChange::Wake).await
}

/// What `restart`, `sleep` and `wake` do to one biome: each answers the biome's document.
enum BiomeChange {
    /// One component (a job runs again), or every service.
    Restart(Option<String>),
    Sleep,
    Wake,
}

/// Runs `change` on the biome as the token's user, as the owner or a deployer may.
async fn change_biome(
    state: AppState,
    caller: Caller,
    project: String,
    biome: String,
    change: BiomeChange,
) -> Result<Json<RestartResult>, ApiError> {
    caller.require(Action::ChangeOwnBiome)?;
    let context = changing(&state, &caller, &project, Revision::Default).await?;
    let answer = state
        .blocking_async(move |_| async move {
            ownership::authorize_biome_target(&context, &biome)?;
            let mut log = ProgressLog::default();
            let on_event = |c: Option<&sandpit_domain::Name>, m: &str| log.record(c, m);
            let status = match &change {
                BiomeChange::Restart(component) => {
                    sandpit_ops::restart::restart(
                        &context,
                        Some(&biome),
                        component.as_deref(),
                        on_event,
                    )
                    .await?
                }
                BiomeChange::Sleep => {
                    sandpit_ops::sleep::sleep(&context, Some(&biome), on_event).await?
                }
                BiomeChange::Wake => {
                    sandpit_ops::sleep::wake(&context, Some(&biome), on_event).await?
                }
            };
            Ok(RestartResult {
                biome: BiomeDocument::new(&status, None),
                events: log.take(),
            })
        })
        .await?;
    Ok(Json(answer))
}
