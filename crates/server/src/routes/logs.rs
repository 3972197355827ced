//! `GET /api/v1/projects/{project}/logs/{target}`: `sandpit logs` over HTTP, followed by
//! polling with the page's cursor (`?after=`), which keeps the server stateless and every
//! answer a plain bounded JSON body.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::logs::Cursor;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::ApiQuery;
use crate::wire::logs::LogPage;
use crate::wire::ErrorBody;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{project}/logs/{target}", get(page))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this component's log (default: every component's, interleaved in time).
    pub component: Option<String>,
    /// Only lines written since then: RFC 3339 (`2024-05-01T12:00:00Z`) or a duration back
    /// from now (`10m`).
    pub since: Option<String>,
    /// How many of the last lines (over all the components shown together); default 100, or
    /// every line with `since`.
    pub tail: Option<usize>,
    /// The `cursor` of the previous page: only lines written after it (`since` and `tail` are
    /// then ignored). Poll with it to follow the logs.
    pub after: Option<String>,
}

/// A page of a biome's logs and the cursor of the next (`sandpit logs [-f] --json`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/logs/{target}", tag = "biomes", security(("bearer" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("target" = String, Path, description = "`BIOME`, `ENV/BIOME` or `ENV`, as one (percent-encoded) segment"),
        LogsQuery,
    ),
    responses(
        (status = 200, body = LogPage),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such project, biome or component", body = ErrorBody),
        (status = 422, description = "A `since` or `after` that does not parse", body = ErrorBody),
    ))]
pub async fn page(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, target)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    caller.require(Action::Read)?;
    let since = match &query.since {
        Some(raw) => Some(
            sandpit_runtime::logs::parse_since(raw, std::time::SystemTime::now()).map_err(
                |message| failure(ErrorKind::InvalidInput, format!("`since`: {message}")),
            )?,
        ),
        None => None,
    };
    let after = query.after.as_deref().map(Cursor::parse).transpose()?;
    let context = crate::project::reading(&state, &caller, &project).await?;
    let sources =
        sandpit_ops::logs::sources(&context, Some(&target), query.component.as_deref()).await?;
    let window = sandpit_ops::logs::window(since, query.tail);
    let answer = crate::project::blocking_in(context, move |_| {
        let page = sandpit_ops::logs::page(&sources, window, after)?;
        Ok(LogPage::new(&sources, &page))
    })
    .await?;
    Ok(Json(answer))
}
