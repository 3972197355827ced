//! Pipelines: run one for a project (deployer; the commit must be pushed and its `sandpit.toml`
//! valid, or nothing is queued), list and show them, read a log in chunks (so a client follows
//! it by asking again from `next_offset`), and retry a finished one.

use std::io::{Read as _, Seek as _, SeekFrom};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sandpit_ops::authorization::Action;
use sandpit_ops::fail;
use sandpit_ops::pipeline::{self, PipelineRequest, Target};
use sandpit_ops::projects::Revision;
use sandpit_state::Trigger;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::query::ApiQuery;
use crate::wire::{ErrorBody, Pipeline, PipelineList, PipelineLogChunk, RunPipelineRequest};
use crate::AppState;

/// The most of a log one answer carries.
pub const LOG_CHUNK_BYTES: usize = 256 * 1024;
/// How many pipelines a list shows when the request does not say.
const DEFAULT_LIMIT: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project}/pipelines", post(run))
        .route("/api/v1/pipelines", get(list))
        .route("/api/v1/pipelines/{id}", get(show))
        .route("/api/v1/pipelines/{id}/log", get(log))
        .route("/api/v1/pipelines/{id}/retry", post(retry))
}

/// Which commit a request names.
fn revision(request: &RunPipelineRequest) -> anyhow::Result<Revision> {
    match (&request.sha, &request.branch) {
        (Some(_), Some(_)) => fail!(
            InvalidInput,
            "a pipeline runs one commit: give `sha` or `branch`, not both\nhint: leave both out for the head of the project's branch"
        ),
        (Some(sha), None) => Ok(Revision::Sha(sha.trim().to_owned())),
        (None, Some(branch)) => Ok(Revision::Branch(branch.trim().to_owned())),
        (None, None) => Ok(Revision::Default),
    }
}

/// What a request acts on.
fn target(request: &RunPipelineRequest) -> anyhow::Result<Target> {
    match (&request.biome, request.down) {
        (None, true) => fail!(
            InvalidInput,
            "`down` takes a biome down: name it with `biome`"
        ),
        (None, false) => Ok(Target::Environments),
        (Some(name), down) => {
            let name = sandpit_ops::up::parse_biome_name(name.trim())?.to_string();
            Ok(if down {
                Target::BiomeDown { name }
            } else {
                Target::Biome { name }
            })
        }
    }
}

/// Queues a pipeline for a pushed commit (the head of the project's branch by default).
#[utoipa::path(post, path = "/api/v1/projects/{project}/pipelines", tag = "pipelines", security(("bearer" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = RunPipelineRequest,
    responses(
        (status = 201, description = "The queued pipeline", body = Pipeline),
        (status = 400, description = "Malformed JSON or a body of the wrong shape", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not a deployer", body = ErrorBody),
        (status = 404, description = "No such project, branch or pushed commit", body = ErrorBody),
        (status = 422, description = "Both `sha` and `branch`, `down` without `biome`, a biome name that is invalid, or the commit's sandpit.toml is invalid (its diagnostics in `message`)", body = ErrorBody),
        (status = 503, description = "The project's repository cannot be fetched now", body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    ApiJson(request): ApiJson<RunPipelineRequest>,
) -> Result<(StatusCode, Json<Pipeline>), ApiError> {
    caller.require(Action::RunPipeline)?;
    let request = PipelineRequest {
        project,
        revision: revision(&request)?,
        trigger: Trigger::Manual,
        target: target(&request)?,
    };
    let principal = caller.0.principal;
    let queued = state
        .blocking(move |context| pipeline::request(context, &principal, &request))
        .await?;
    state.pipeline_queued();
    Ok((StatusCode::CREATED, Json(Pipeline::from(&queued))))
}

/// `GET /api/v1/pipelines`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this project's pipelines.
    pub project: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<usize>,
}

/// Pipelines, newest first.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = PipelineList),
        (status = 400, description = "A query parameter that does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<PipelineList>, ApiError> {
    caller.require(Action::Read)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let pipelines = state
        .blocking(move |context| pipeline::list(context, query.project.as_deref(), limit))
        .await?;
    Ok(Json(PipelineList {
        pipelines: pipelines.iter().map(Pipeline::from).collect(),
    }))
}

/// One pipeline, with its stages.
#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The pipeline's number")),
    responses(
        (status = 200, body = Pipeline),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No pipeline has this number", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Pipeline>, ApiError> {
    caller.require(Action::Read)?;
    let (shown, reports) = state
        .blocking(move |context| {
            Ok((
                pipeline::show(context, id)?,
                sandpit_ops::report::counts(context, id)?,
            ))
        })
        .await?;
    let mut answer = Pipeline::from(&shown);
    answer.reports = reports.map(Into::into);
    Ok(Json(answer))
}

/// `GET /api/v1/pipelines/{id}/log`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The byte to read from (default 0): the `next_offset` of the previous chunk.
    pub offset: Option<u64>,
}

/// A pipeline's log from `offset` on, at most 256 KiB at a time.
#[utoipa::path(get, path = "/api/v1/pipelines/{id}/log", tag = "pipelines", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The pipeline's number"), LogQuery),
    responses(
        (status = 200, body = PipelineLogChunk),
        (status = 400, description = "An offset that does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No pipeline has this number", body = ErrorBody),
        (status = 422, description = "The offset is past the log's end", body = ErrorBody),
    ))]
pub async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<PipelineLogChunk>, ApiError> {
    caller.require(Action::Read)?;
    let offset = query.offset.unwrap_or(0);
    let chunk = state
        .blocking(move |context| {
            // The state first: a pipeline seen finished has written its last line by then.
            let finished = pipeline::show(context, id)?.state.is_finished();
            let (bytes, length) = read_from(&pipeline::log_path(context, id), offset)?;
            let (text, consumed) = whole_characters(&bytes);
            let next_offset = offset + consumed as u64;
            Ok(PipelineLogChunk {
                text,
                next_offset,
                finished: finished && next_offset >= length,
            })
        })
        .await?;
    Ok(Json(chunk))
}

/// Up to [`LOG_CHUNK_BYTES`] of the file from `offset`, and the file's length (an absent log
/// is empty: the pipeline has not started).
fn read_from(path: &std::path::Path, offset: u64) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if offset > 0 {
                fail!(
                    InvalidInput,
                    "offset {offset} is past the end of the log (it is empty)\nhint: start at offset 0"
                );
            }
            return Ok((Vec::new(), 0));
        }
        Err(error) => return Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    };
    let length = file.metadata()?.len();
    if offset > length {
        fail!(
            InvalidInput,
            "offset {offset} is past the end of the log ({length} bytes)\nhint: ask from the `next_offset` of the previous chunk, or 0"
        );
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(LOG_CHUNK_BYTES as u64).read_to_end(&mut bytes)?;
    Ok((bytes, length))
}

/// The text of `bytes` up to the last whole character, and how many bytes that is: a chunk
/// that ends inside a character leaves it to the next chunk. Bytes that are not UTF-8 at all
/// are shown as U+FFFD and consumed.
fn whole_characters(bytes: &[u8]) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), bytes.len()),
        Err(error) if error.error_len().is_none() => {
            let whole = error.valid_up_to();
            (String::from_utf8_lossy(&bytes[..whole]).into_owned(), whole)
        }
        Err(_) => {
            // A cut character at the very end still waits for its rest.
            let cut = bytes
                .iter()
                .rev()
                .take(3)
                .position(|b| b & 0xC0 != 0x80)
                .filter(|&at| {
                    let lead = bytes[bytes.len() - 1 - at];
                    let needs = match lead {
                        0xC0..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF7 => 4,
                        _ => 1,
                    };
                    needs > at + 1
                })
                .map_or(0, |at| at + 1);
            let whole = bytes.len() - cut;
            (String::from_utf8_lossy(&bytes[..whole]).into_owned(), whole)
        }
    }
}

/// Queues a new pipeline that runs a finished one's commit again.
#[utoipa::path(post, path = "/api/v1/pipelines/{id}/retry", tag = "pipelines", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The finished pipeline's number")),
    responses(
        (status = 201, description = "The queued pipeline", body = Pipeline),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The caller is not a deployer", body = ErrorBody),
        (status = 404, description = "No pipeline has this number", body = ErrorBody),
        (status = 409, description = "It has not finished", body = ErrorBody),
        (status = 422, description = "The commit's sandpit.toml is invalid now", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Pipeline>), ApiError> {
    caller.require(Action::RunPipeline)?;
    let principal = caller.0.principal;
    let queued = state
        .blocking(move |context| pipeline::retry(context, &principal, id))
        .await?;
    state.pipeline_queued();
    Ok((StatusCode::CREATED, Json(Pipeline::from(&queued))))
}

#[cfg(test)]
mod tests {
    use super::whole_characters;

    #[test]
    fn a_chunk_ends_on_a_whole_character() {
        let e_acute = "é".as_bytes(); // two bytes
        let euro = "€".as_bytes(); // three bytes
        let cases: Vec<(Vec<u8>, &str, usize)> = vec![
            (b"plain\n".to_vec(), "plain\n", 6),
            (Vec::new(), "", 0),
            ([b"ab".as_slice(), &e_acute[..1]].concat(), "ab", 2),
            ([b"x".as_slice(), &euro[..2]].concat(), "x", 1),
            ([b"x".as_slice(), euro].concat(), "x€", 4),
            // Not UTF-8 in the middle: replaced and consumed; a cut character at the end waits.
            ([b"a\xFFb".as_slice(), &euro[..1]].concat(), "a\u{FFFD}b", 3),
            (b"a\xFFb".to_vec(), "a\u{FFFD}b", 3),
        ];
        for (bytes, text, consumed) in cases {
            assert_eq!(
                whole_characters(&bytes),
                (text.to_owned(), consumed),
                "{bytes:?}"
            );
        }
    }
}
