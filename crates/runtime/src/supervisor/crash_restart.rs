//! What a watcher does when its process exits or cannot be started: when to try again (the
//! [`Backoff`] delay, the failure count reset by a stable run) and whether it counts as a
//! restart. There is no giving up: a service is tried again, at most `backoff.max` apart, until
//! it is stopped or replaced. Pure, so the schedule is table-tested.

use std::time::Duration;

use sandpit_domain::Backoff;

/// How the last attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// It never ran: the artifact could not be extracted, the port was held, the spawn failed.
    FailedToStart,
    /// It ran for `uptime`, then exited (or was killed) without being asked to.
    Exited { uptime: Duration },
}

/// The next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    /// Consecutive failures, this one included: what the next delay is computed from.
    pub(super) failures: u32,
    /// How long to wait before trying again.
    pub(super) delay: Duration,
    /// It ran and exited, so the component's restart count goes up (a failed start does not).
    pub(super) counts_as_restart: bool,
}

/// The retry after an attempt that `ended` so, with `failures` consecutive failures before it.
pub(super) fn retry_after(backoff: &Backoff, failures: u32, ended: Ended) -> Retry {
    let failures = match ended {
        Ended::FailedToStart => failures.saturating_add(1),
        Ended::Exited { uptime } => backoff.next_failures(failures, uptime),
    };
    Retry {
        failures,
        delay: backoff.delay(failures),
        counts_as_restart: matches!(ended, Ended::Exited { .. }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_back_off_and_a_stable_run_starts_over() {
        let backoff = Backoff::default();
        let exited = |secs| Ended::Exited {
            uptime: Duration::from_secs(secs),
        };
        // (situation, failures before, how it ended, failures after, delay in ms, a restart?)
        let table: &[(&str, u32, Ended, u32, u64, bool)] = &[
            ("a first crash", 0, exited(1), 1, 250, true),
            ("a second quick crash doubles", 1, exited(1), 2, 500, true),
            ("a crash loop", 4, exited(0), 5, 4_000, true),
            (
                "a crash loop reaches the cap",
                9,
                exited(0),
                10,
                30_000,
                true,
            ),
            (
                "a crash after a stable run starts over",
                9,
                exited(60),
                1,
                250,
                true,
            ),
            (
                "just short of stable keeps counting",
                2,
                exited(59),
                3,
                1_000,
                true,
            ),
            (
                "a failed start counts a failure, not a restart",
                0,
                Ended::FailedToStart,
                1,
                250,
                false,
            ),
            (
                "failed starts back off like crashes",
                3,
                Ended::FailedToStart,
                4,
                2_000,
                false,
            ),
            (
                "a failed start never resets the count",
                u32::MAX,
                Ended::FailedToStart,
                u32::MAX,
                30_000,
                false,
            ),
        ];
        for (situation, before, ended, failures, delay_ms, restart) in table {
            let retry = retry_after(&backoff, *before, *ended);
            assert_eq!(
                retry,
                Retry {
                    failures: *failures,
                    delay: Duration::from_millis(*delay_ms),
                    counts_as_restart: *restart,
                },
                "{situation}"
            );
        }
    }
}
