//! The `Context` a project route runs its use case in: the server's settings, the caller as
//! principal, and the project read from the server's own mirror — as of its last fetch for
//! reads, at a freshly fetched commit for changes.

use sandpit_ops::projects::{self, Revision};
use sandpit_ops::{Context, Source};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// For a read of `project`: its mirror at the branch head of its last fetch.
pub async fn reading(
    state: &AppState,
    caller: &Caller,
    project: &str,
) -> Result<Context, ApiError> {
    let project = project.to_owned();
    let source = state
        .blocking(move |context| projects::at_last_fetch(context, &project))
        .await?;
    Ok(as_caller(state, caller, source))
}

/// For a change of `project` at `revision`: fetched first, refused unless the commit is pushed
/// and its definition valid.
pub async fn changing(
    state: &AppState,
    caller: &Caller,
    project: &str,
    revision: Revision,
) -> Result<Context, ApiError> {
    let project = project.to_owned();
    let (repo, commit) = state
        .blocking(move |context| projects::commit(context, &project, revision))
        .await?;
    Ok(as_caller(state, caller, Source::Commit { repo, commit }))
}

fn as_caller(state: &AppState, caller: &Caller, source: Source) -> Context {
    Context {
        source,
        principal: caller.0.principal.clone(),
        ..state.context().clone()
    }
}

/// The commit a change names: `sha` or `branch` (not both), else the project's branch.
pub fn revision(sha: Option<String>, branch: Option<String>) -> Result<Revision, ApiError> {
    let given = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    match (given(sha), given(branch)) {
        (Some(_), Some(_)) => Err(ApiError::from(sandpit_ops::error::failure(
            sandpit_ops::error::ErrorKind::InvalidInput,
            "`sha` and `branch` name two commits; give one of them\nhint: `--sha REV` or `--branch B`, not both",
        ))),
        (Some(sha), None) => Ok(Revision::Sha(sha.trim().to_owned())),
        (None, Some(branch)) => Ok(Revision::Branch(branch.trim().to_owned())),
        (None, None) => Ok(Revision::Default),
    }
}

/// Runs a use case that blocks (SQLite, files) in `context` (a request's, from [`reading`] or
/// [`changing`]) off the async workers.
pub async fn blocking_in<T: Send + 'static>(
    context: Context,
    work: impl FnOnce(&Context) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(move || work(&context)).await {
        Ok(result) => Ok(result?),
        Err(error) => Err(ApiError::internal(format!(
            "a request's work panicked: {error}"
        ))),
    }
}
