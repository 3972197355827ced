//! What `up` does with each component (and `ensure_instance` with an instance) given what the
//! supervisor holds for it: keep it, adopt a process that outlived the daemon, start it, or replace
//! it; whether a job runs again; which components left the biome; what a stopped record reports.
//! Pure: the facts come in as plain data, the supervisor acts on the answer.

use sandpit_domain::{ComponentState, Name};

use crate::process::ProcessIdentity;
use crate::protocol::ComponentSpec;

/// What the supervisor holds for a component or instance it is asked to run, as plain facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    /// The record is what is wanted now: the same fingerprint (a service) or the same
    /// specification (an instance).
    pub(super) unchanged: bool,
    /// Its watcher task is still running (one that returned, after a stop or a replacement, is not).
    pub(super) watched: bool,
    /// Its recorded process, when that very process (pid and start time) still runs.
    pub(super) alive: Option<ProcessIdentity>,
}

/// What to do to make a service or instance run what is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Convergence {
    /// It runs what is wanted under a watcher: nothing to do.
    Keep,
    /// It runs what is wanted but nobody watches it (the daemon restarted): watch this process
    /// instead of starting another.
    Adopt(ProcessIdentity),
    /// What is wanted does not run (no record, or its process is gone): start it.
    Start,
    /// The record is for something else (another fingerprint or specification): stop it, then
    /// start what is wanted.
    Replace,
}

/// The step that brings a service or instance to what is wanted, given what is `held` for it
/// (`None`: nothing yet).
pub(super) fn convergence(held: Option<Held>) -> Convergence {
    match held {
        None => Convergence::Start,
        Some(held) if !held.unchanged => Convergence::Replace,
        Some(Held { watched: true, .. }) => Convergence::Keep,
        Some(Held {
            alive: Some(identity),
            ..
        }) => Convergence::Adopt(identity),
        Some(_) => Convergence::Start,
    }
}

/// Whether a job runs on `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobAction {
    /// It last succeeded with this very fingerprint: not run again.
    AlreadySucceeded,
    Run,
}

/// A job runs unless its last success (`succeeded_with`) was with `fingerprint`.
pub(super) fn job_action(succeeded_with: Option<&str>, fingerprint: &str) -> JobAction {
    if succeeded_with == Some(fingerprint) {
        JobAction::AlreadySucceeded
    } else {
        JobAction::Run
    }
}

/// The components the supervisor holds (`held`) that `wanted` no longer declares, in the order
/// held: they are stopped and forgotten before the biome converges.
pub(super) fn removed_components<'a>(
    held: impl IntoIterator<Item = &'a Name>,
    wanted: &[ComponentSpec],
) -> Vec<Name> {
    held.into_iter()
        .filter(|name| !wanted.iter().any(|c| &c.name == *name))
        .cloned()
        .collect()
}

/// What a record reports once its process is stopped: a finished job keeps its outcome (it
/// decides whether the job runs again), anything else is stopped.
pub(super) fn state_after_stop(state: ComponentState) -> ComponentState {
    match state {
        ComponentState::Succeeded | ComponentState::Failed => state,
        _ => ComponentState::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use sandpit_domain::ComponentKind;

    use super::*;

    const PID: ProcessIdentity = ProcessIdentity {
        pid: 4242,
        start_ticks: 17,
    };

    fn held(unchanged: bool, watched: bool, alive: bool) -> Option<Held> {
        Some(Held {
            unchanged,
            watched,
            alive: alive.then_some(PID),
        })
    }

    #[test]
    fn a_service_is_kept_adopted_started_or_replaced() {
        use Convergence::*;
        let table: &[(&str, Option<Held>, Convergence)] = &[
            ("nothing held yet", None, Start),
            ("unchanged and watched", held(true, true, true), Keep),
            (
                "unchanged and watched, its process between restarts",
                held(true, true, false),
                Keep,
            ),
            (
                "unchanged, alive, nobody watches it (the daemon restarted)",
                held(true, false, true),
                Adopt(PID),
            ),
            (
                "unchanged, its watcher finished and its process is gone",
                held(true, false, false),
                Start,
            ),
            ("changed while watched", held(false, true, true), Replace),
            (
                "changed, alive but unwatched: never adopted",
                held(false, false, true),
                Replace,
            ),
            ("changed and gone", held(false, false, false), Replace),
        ];
        for (situation, held, expected) in table {
            assert_eq!(convergence(*held), *expected, "{situation}");
        }
    }

    #[test]
    fn a_job_runs_again_unless_it_succeeded_with_this_fingerprint() {
        let table: &[(&str, Option<&str>, &str, JobAction)] = &[
            ("never succeeded", None, "aaa", JobAction::Run),
            (
                "succeeded with this fingerprint",
                Some("aaa"),
                "aaa",
                JobAction::AlreadySucceeded,
            ),
            (
                "succeeded with an older fingerprint",
                Some("old"),
                "aaa",
                JobAction::Run,
            ),
        ];
        for (situation, succeeded_with, fingerprint, expected) in table {
            assert_eq!(
                job_action(*succeeded_with, fingerprint),
                *expected,
                "{situation}"
            );
        }
    }

    fn component(name: &str) -> ComponentSpec {
        super::super::test_support::component_spec(name, ComponentKind::Service, &[])
    }

    #[test]
    fn components_no_longer_declared_are_removed() {
        type Row<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str]);
        // (held, wanted, removed)
        let table: &[Row] = &[
            (&[], &["api"], &[]),
            (&["api"], &["api"], &[]),
            (&["api", "old"], &["api"], &["old"]),
            (&["a", "b"], &[], &["a", "b"]),
            // A component added to the spec is not "removed".
            (&["api"], &["api", "web"], &[]),
        ];
        for (held, wanted, removed) in table {
            let held: Vec<Name> = held.iter().map(|n| Name::parse(n).unwrap()).collect();
            let wanted: Vec<ComponentSpec> = wanted.iter().map(|n| component(n)).collect();
            let got = removed_components(&held, &wanted);
            let got: Vec<&str> = got.iter().map(Name::as_str).collect();
            assert_eq!(got, *removed, "held {held:?}");
        }
    }

    #[test]
    fn a_stopped_job_keeps_its_outcome() {
        use ComponentState::*;
        for (before, after) in [
            (Starting, Stopped),
            (Healthy, Stopped),
            (Unhealthy, Stopped),
            (Crashed, Stopped),
            (Stopped, Stopped),
            (Succeeded, Succeeded),
            (Failed, Failed),
        ] {
            assert_eq!(state_after_stop(before), after, "{before:?}");
        }
    }
}
