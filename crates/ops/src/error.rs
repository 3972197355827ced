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
    if cause.is::<crate::build::UncommittedChanges>() {
        return Some(ErrorKind::Conflict);
    }
    if let Some(error) = cause.downcast_ref::<sandpit_build::git::GitError>() {
        return matches!(error, sandpit_build::git::GitError::UnknownRevision { .. })
            .then_some(ErrorKind::NotFound);
    }
    if cause.is::<sandpit_domain::NameError>() || cause.is::<sandpit_spec::Diagnostics>() {
        return Some(ErrorKind::InvalidInput);
    }
    None
}

fn state_error_kind(error: &StateError) -> ErrorKind {
    match error {
        StateError::NotFound { .. } | StateError::TokenNotFound { .. } => ErrorKind::NotFound,
        StateError::NotPending { .. }
        | StateError::NoApprovalNeeded { .. }
        | StateError::AlreadyApproved { .. }
        | StateError::QueueTimeout { .. }
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
        | StateError::Sqlite { .. } => ErrorKind::Internal,
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
