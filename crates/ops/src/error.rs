//! What kind of failure an error is — not found, conflict, forbidden, needs approval, invalid
//! input, unavailable — told from the error's type, never from its text. The CLI prints the
//! kind as `--json`'s `error.code`; a server maps it to an HTTP status.

use sandpit_state::StateError;

/// The kinds of failure a caller can act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (a malformed name, an invalid `sandpit.toml`, a bad query).
    InvalidInput,
    /// What was asked about does not exist (a biome, a deployment, an environment, a commit).
    NotFound,
    /// The request clashes with the current state (uncommitted changes, a deployment that is no
    /// longer pending, a queue that did not move).
    Conflict,
    /// The caller did not say who they are, or a server did not accept who they said (a
    /// missing, unknown, revoked or expired token).
    Unauthorized,
    /// The caller may not do this (e.g. approve their own deployment).
    Forbidden,
    /// It will happen once someone else approves it.
    NeedsApproval,
    /// Something it depends on is not there now (the daemon is stopped).
    Unavailable,
    /// Anything else: a fault to report, not the caller's to fix.
    Internal,
}

impl ErrorKind {
    /// The stable name of the kind, as `--json` and the API print it.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NeedsApproval => "needs_approval",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A use case's failure of a known kind; its message is what the user reads (hint included).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

/// An error of `kind` saying `message`.
pub fn failure(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    Failure {
        kind,
        message: message.into(),
    }
    .into()
}

/// A name typed on the command line that is not one, with its hint: invalid input.
pub fn name_refused(error: sandpit_domain::NameError) -> anyhow::Error {
    failure(
        ErrorKind::InvalidInput,
        format!("{error}\nhint: {}", error.hint()),
    )
}

/// `bail!` with a kind: returns early with a [`Failure`] of that kind.
#[macro_export]
macro_rules! fail {
    ($kind:ident, $($message:tt)+) => {
        return Err($crate::error::failure($crate::error::ErrorKind::$kind, format!($($message)+)))
    };
}

/// The kind of `error`: that of the outermost error in its chain whose type says one.
pub fn kind_of(error: &anyhow::Error) -> ErrorKind {
    error
        .chain()
        .find_map(kind_of_cause)
        .unwrap_or(ErrorKind::Internal)
}

fn kind_of_cause(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(failure) = cause.downcast_ref::<Failure>() {
        return Some(failure.kind);
    }
    if let Some(error) = cause.downcast_ref::<StateError>() {
        return Some(state_error_kind(error));
    }
    if cause.is::<crate::daemon_connection::DaemonNotRunning>() {
        return Some(ErrorKind::Unavailable);
    }
    if let Some(error) = cause.downcast_ref::<sandpit_runtime::ClientError>() {
        return Some(match error {
            sandpit_runtime::ClientError::NotRunning(_)
            | sandpit_runtime::ClientError::Disconnected(_) => ErrorKind::Unavailable,
            sandpit_runtime::ClientError::Refused(_)
            | sandpit_runtime::ClientError::UnexpectedAnswer { .. } => ErrorKind::Internal,
        });
    }
    if cause.is::<crate::terraform::PlanRefused>() {
        return Some(ErrorKind::Conflict);
    }
    if cause.is::<crate::build::UncommittedChanges>() {
        return Some(ErrorKind::Conflict);
    }
    if let Some(error) = cause.downcast_ref::<sandpit_build::git::GitError>() {
        return Some(git_error_kind(error));
    }
    if let Some(error) = cause.downcast_ref::<sandpit_build::MirrorError>() {
        return Some(mirror_error_kind(error));
    }
    if cause.is::<sandpit_domain::NameError>() || cause.is::<sandpit_spec::Diagnostics>() {
        return Some(ErrorKind::InvalidInput);
    }
    None
}

fn mirror_error_kind(error: &sandpit_build::MirrorError) -> ErrorKind {
    use sandpit_build::MirrorError;
    match error {
        MirrorError::UnsafeUrl { .. }
        | MirrorError::InvalidBranch { .. }
        | MirrorError::InvalidCommitId { .. } => ErrorKind::InvalidInput,
        MirrorError::BranchNotFound { .. } | MirrorError::CommitNotFound { .. } => {
            ErrorKind::NotFound
        }
        // The project's repository cannot be reached (or read) now.
        MirrorError::FetchFailed { .. } => ErrorKind::Unavailable,
        MirrorError::NotAMirror { .. } | MirrorError::Io { .. } => ErrorKind::Internal,
        MirrorError::Git(error) => git_error_kind(error),
    }
}

fn git_error_kind(error: &sandpit_build::git::GitError) -> ErrorKind {
    use sandpit_build::git::GitError;
    match error {
        // A `--sha` (or a commit asked of a mirror) that names no commit there.
        GitError::UnknownRevision { .. } => ErrorKind::NotFound,
        // `-C DIR` pointed at a directory outside any repository.
        GitError::NotARepository { .. } => ErrorKind::InvalidInput,
        GitError::GitMissing { .. } => ErrorKind::Unavailable,
        // Something that needs a working tree asked of a server's bare mirror.
        GitError::NoWorkingTree { .. } => ErrorKind::InvalidInput,
        GitError::CommandFailed { .. }
        | GitError::UnexpectedOutput { .. }
        | GitError::Scratch { .. } => ErrorKind::Internal,
    }
}

fn state_error_kind(error: &StateError) -> ErrorKind {
    match error {
        StateError::NotFound { .. }
        | StateError::PipelineNotFound { .. }
        | StateError::ProjectNotFound { .. }
        | StateError::TokenNotFound { .. } => ErrorKind::NotFound,
        StateError::ProjectExists { .. } => ErrorKind::Conflict,
        StateError::NotPending { .. }
        | StateError::NoApprovalNeeded { .. }
        | StateError::AlreadyApproved { .. }
        | StateError::QueueTimeout { .. }
        | StateError::PipelineTransition { .. }
        | StateError::TokenAlreadyRevoked { .. } => ErrorKind::Conflict,
        StateError::SelfApproval { .. } => ErrorKind::Forbidden,
        StateError::ApprovalsMissing { .. } => ErrorKind::NeedsApproval,
        StateError::BadQuery { .. } => ErrorKind::InvalidInput,
        StateError::InvalidTransition { .. }
        | StateError::Invalid { .. }
        | StateError::Empty { .. }
        | StateError::Corrupt { .. }
        | StateError::SchemaTooNew { .. }
        | StateError::Io { .. }
        | StateError::Database { .. }
        | StateError::Unreachable { .. } => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn lookup(found: bool) -> anyhow::Result<()> {
        if !found {
            fail!(NotFound, "there is no biome `{}`", "nope");
        }
        Ok(())
    }

    #[test]
    fn the_kind_comes_from_the_type_through_any_context() {
        let error = lookup(false).unwrap_err();
        assert_eq!(kind_of(&error), ErrorKind::NotFound);
        assert_eq!(error.to_string(), "there is no biome `nope`");
        let wrapped = lookup(false).context("while listing").unwrap_err();
        assert_eq!(kind_of(&wrapped), ErrorKind::NotFound);

        let table: Vec<(anyhow::Error, ErrorKind)> = vec![
            (StateError::NotFound { id: 3 }.into(), ErrorKind::NotFound),
            (
                StateError::SelfApproval {
                    id: 3,
                    user: "a@x".into(),
                }
                .into(),
                ErrorKind::Forbidden,
            ),
            (
                StateError::ApprovalsMissing { id: 3, missing: 1 }.into(),
                ErrorKind::NeedsApproval,
            ),
            (
                StateError::QueueTimeout {
                    id: 3,
                    blocking_id: 2,
                }
                .into(),
                ErrorKind::Conflict,
            ),
            (
                crate::daemon_connection::DaemonNotRunning { home: "/h".into() }.into(),
                ErrorKind::Unavailable,
            ),
            (
                sandpit_domain::Name::parse("Bad Name").unwrap_err().into(),
                ErrorKind::InvalidInput,
            ),
            (
                sandpit_build::RemoteUrl::parse("ext::sh")
                    .unwrap_err()
                    .into(),
                ErrorKind::InvalidInput,
            ),
            (
                sandpit_build::MirrorError::CommitNotFound {
                    commit: "abc1234".into(),
                    url: "/srv/x.git".into(),
                }
                .into(),
                ErrorKind::NotFound,
            ),
            (
                sandpit_build::MirrorError::FetchFailed {
                    url: "/srv/x.git".into(),
                    stderr: "fatal".into(),
                }
                .into(),
                ErrorKind::Unavailable,
            ),
            (
                StateError::ProjectExists {
                    name: "shop".into(),
                    added_by: "a@x".into(),
                    added_at: "t".into(),
                }
                .into(),
                ErrorKind::Conflict,
            ),
            (
                StateError::ProjectNotFound {
                    name: "shop".into(),
                }
                .into(),
                ErrorKind::NotFound,
            ),
            // Text that reads like a kind is not one: only types say.
            (
                anyhow::anyhow!("there is no biome `x` (not found)"),
                ErrorKind::Internal,
            ),
        ];
        for (error, kind) in table {
            assert_eq!(kind_of(&error), kind, "{error:#}");
        }
    }

    /// The refusals a server answers with a status: each use case's own, told by type.
    #[test]
    fn refusals_of_use_cases_have_the_kind_a_server_answers_with() {
        use crate::target::Target;
        let spec = sandpit_spec::parse(
            "[project]\nname = \"p\"\n[environments.dev]\nbiomes = true\n[environments.prod]\n[jobs.j]\npath = \".\"\nrun = \"true\"\n",
        )
        .unwrap();
        let no_biomes =
            sandpit_spec::parse("[project]\nname = \"p\"\n[environments.prod]\n").unwrap();
        let dev = sandpit_domain::Name::parse("dev").unwrap();
        let commit = sandpit_domain::CommitId::parse(&"a".repeat(40)).unwrap();
        let table: Vec<(&str, anyhow::Error, ErrorKind)> = vec![
            (
                "unknown environment for biomes",
                crate::project::biome_environment(&spec, Some("staging")).unwrap_err(),
                ErrorKind::NotFound,
            ),
            (
                "environment that hosts no biomes",
                crate::project::biome_environment(&spec, Some("prod")).unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "no environment hosts biomes",
                crate::project::biome_environment(&no_biomes, None).unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "malformed environment name",
                crate::project::biome_environment(&spec, Some("Dev Env")).unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "malformed target",
                Target::parse("dev/Bad Name").unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "biome in another environment",
                Target::parse("prod/alice")
                    .unwrap()
                    .check_env(&dev)
                    .unwrap_err(),
                ErrorKind::NotFound,
            ),
            (
                "malformed biome name",
                crate::up::parse_biome_name("///").unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "unknown environment to deploy to",
                crate::deploy::environment(&spec, "staging").unwrap_err(),
                ErrorKind::NotFound,
            ),
            (
                "malformed environment to deploy to",
                crate::deploy::environment(&spec, "Prod!").unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "malformed component name",
                name_refused(sandpit_domain::Name::parse("Web").unwrap_err()),
                ErrorKind::InvalidInput,
            ),
            (
                "uncommitted changes",
                crate::build::UncommittedChanges {
                    commit: commit.clone(),
                    files: vec!["app.py".into()],
                    deploying: None,
                }
                .into(),
                ErrorKind::Conflict,
            ),
            (
                "revision that names no commit",
                anyhow::Error::new(sandpit_build::git::GitError::UnknownRevision {
                    rev: "nope".into(),
                    repo: "/r".into(),
                    hint: "",
                })
                .context("cannot build"),
                ErrorKind::NotFound,
            ),
            (
                "directory outside any repository",
                sandpit_build::git::GitError::NotARepository { dir: "/tmp".into() }.into(),
                ErrorKind::InvalidInput,
            ),
        ];
        for (what, error, kind) in table {
            assert_eq!(kind_of(&error), kind, "{what}: {error:#}");
        }
    }

    #[test]
    fn codes_are_stable_names() {
        let codes: Vec<&str> = [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NeedsApproval,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ]
        .iter()
        .map(|k| k.code())
        .collect();
        assert_eq!(
            codes,
            [
                "invalid_input",
                "not_found",
                "conflict",
                "unauthorized",
                "forbidden",
                "needs_approval",
                "unavailable",
                "internal"
            ]
        );
    }
}
