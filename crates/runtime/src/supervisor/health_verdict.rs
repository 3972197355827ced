//! What a watcher concludes from its health probes (when to probe next, whether an answer is
//! the service's own, when a failing probe makes it unhealthy), and what a caller waiting for a
//! service or instance to be ready concludes from its state. Pure, so the rules are table-tested.

use std::time::Duration;

use sandpit_domain::ComponentState;

use crate::health::ProbeResult;
use crate::ports::{Answering, Holder};

/// How often a healthy service is probed.
pub(super) const HEALTHY_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How long before the `attempt`th (1-based) probe of a service that has not been healthy yet:
/// 2 ms, doubling up to 20 ms. Most services answer within tens of milliseconds of starting, and
/// each probe step is time added to every `up` once per wave of components; a refused connection
/// costs next to nothing, so frequent early probes are cheap.
pub(super) fn startup_probe_delay(attempt: u32) -> Duration {
    let millis = 2u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(millis.min(20))
}

/// Whether a passing probe is the watched process group's own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// The group listens (or nobody can tell: the socket tables are unreadable): it counts.
    Counts,
    /// Someone else listens on the port kept for the service: not its health.
    HeldBy(Holder),
    /// The listener changed hands between the probe and the look: probe again.
    ProbeAgain,
}

/// What `answering` (who listens on the port) makes of a passing probe.
pub(super) fn answer(answering: Answering) -> Answer {
    match answering {
        Answering::Group | Answering::Unknown => Answer::Counts,
        Answering::Other(holder) => Answer::HeldBy(holder),
        Answering::Nobody => Answer::ProbeAgain,
    }
}

/// What a probe changes in the service's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Healthy, and any earlier complaint is cleared.
    Healthy,
    /// Reported unhealthy, with why.
    Unhealthy(String),
    /// Still starting (within its start timeout): only the reason it is not ready yet is noted.
    NotReadyYet(String),
    /// A healthy service's first or second failed probe in a row: nothing changes yet.
    Tolerated,
}

/// A healthy service gets this many failed probes in a row before it is reported unhealthy.
const FAILURES_BEFORE_UNHEALTHY: u32 = 3;

/// The probes of one process so far.
#[derive(Debug, Default)]
pub(super) struct ProbeHistory {
    ever_healthy: bool,
    consecutive_failures: u32,
    probes_before_healthy: u32,
}

impl ProbeHistory {
    /// The wait before the next probe: fast while starting, every 2 s once it has been healthy.
    pub(super) fn next_interval(&mut self) -> Duration {
        if self.ever_healthy {
            HEALTHY_PROBE_INTERVAL
        } else {
            self.probes_before_healthy += 1;
            startup_probe_delay(self.probes_before_healthy)
        }
    }

    /// Records a probe that came back `result` (a passing one only when it counts, [`answer`]),
    /// `past_start_timeout` telling whether the start timeout has passed since the process started.
    pub(super) fn record(&mut self, result: ProbeResult, past_start_timeout: bool) -> Verdict {
        match result {
            ProbeResult::Healthy => {
                self.ever_healthy = true;
                self.consecutive_failures = 0;
                Verdict::Healthy
            }
            ProbeResult::Unhealthy(why) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let timed_out = !self.ever_healthy && past_start_timeout;
                if timed_out
                    || (self.ever_healthy && self.consecutive_failures >= FAILURES_BEFORE_UNHEALTHY)
                {
                    Verdict::Unhealthy(why)
                } else if !self.ever_healthy {
                    Verdict::NotReadyYet(why)
                } else {
                    Verdict::Tolerated
                }
            }
        }
    }
}

/// What someone waiting for a process to be ready makes of its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadyWait {
    Ready,
    /// It will not become ready on its own: the wait fails.
    GaveUp,
    /// Keep waiting (until the start timeout).
    Waiting,
}

/// `up` waiting for a service: a crash, a failed health check or a stop ends the wait.
pub(super) fn service_ready_wait(state: ComponentState) -> ReadyWait {
    match state {
        ComponentState::Healthy => ReadyWait::Ready,
        ComponentState::Crashed | ComponentState::Unhealthy | ComponentState::Stopped => {
            ReadyWait::GaveUp
        }
        _ => ReadyWait::Waiting,
    }
}

/// Waiting for an environment instance: a crash is waited through (the watcher restarts it, and
/// a database killed a moment ago is usually back well within the timeout); only a stop ends it.
pub(super) fn instance_ready_wait(state: ComponentState) -> ReadyWait {
    match state {
        ComponentState::Healthy => ReadyWait::Ready,
        ComponentState::Stopped => ReadyWait::GaveUp,
        _ => ReadyWait::Waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_probes_start_fast_and_back_off_to_a_cap() {
        let delays: Vec<u64> = (1..=8)
            .map(|attempt| startup_probe_delay(attempt).as_millis() as u64)
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 20, 20, 20, 20]);
        assert_eq!(startup_probe_delay(u32::MAX), Duration::from_millis(20));
    }

    #[test]
    fn probes_slow_down_once_the_service_has_been_healthy() {
        let mut history = ProbeHistory::default();
        let mut intervals = vec![history.next_interval(), history.next_interval()];
        history.record(ProbeResult::Healthy, false);
        intervals.push(history.next_interval());
        // A later failure does not bring back the fast start-up schedule.
        history.record(ProbeResult::Unhealthy("503".into()), true);
        intervals.push(history.next_interval());
        let ms: Vec<u128> = intervals.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [2, 4, 2_000, 2_000]);
    }

    #[test]
    fn a_passing_probe_counts_only_from_the_watched_group() {
        let stranger = Holder {
            pid: Some(999),
            uid: 65534,
            process_group: Some(999),
            marked: false,
            stop_signal: None,
            command: vec!["nc".into(), "-l".into()],
        };
        let table = [
            (Answering::Group, Answer::Counts),
            (Answering::Unknown, Answer::Counts),
            (Answering::Nobody, Answer::ProbeAgain),
            (
                Answering::Other(stranger.clone()),
                Answer::HeldBy(stranger.clone()),
            ),
        ];
        for (answering, expected) in table {
            assert_eq!(answer(answering.clone()), expected, "{answering:?}");
        }
    }

    /// A probe in a sequence: did it pass, and had the start timeout passed.
    type Probe = (bool, bool);

    fn verdicts(probes: &[Probe]) -> Vec<Verdict> {
        let mut history = ProbeHistory::default();
        probes
            .iter()
            .map(|(passed, past_timeout)| {
                let result = if *passed {
                    ProbeResult::Healthy
                } else {
                    ProbeResult::Unhealthy("refused".into())
                };
                history.record(result, *past_timeout)
            })
            .collect()
    }

    #[test]
    fn a_starting_service_is_unhealthy_only_past_its_timeout_and_a_healthy_one_after_three_failures(
    ) {
        use Verdict::*;
        let why = || "refused".to_owned();
        let table: &[(&str, &[Probe], Vec<Verdict>)] = &[
            ("healthy at once", &[(true, false)], vec![Healthy]),
            (
                "refused while starting: noted, not unhealthy",
                &[(false, false), (false, false), (true, false)],
                vec![NotReadyYet(why()), NotReadyYet(why()), Healthy],
            ),
            (
                "still refused past the start timeout",
                &[(false, false), (false, true)],
                vec![NotReadyYet(why()), Unhealthy(why())],
            ),
            (
                "a healthy service is given three chances",
                &[
                    (true, false),
                    (false, true),
                    (false, true),
                    (false, true),
                    (false, true),
                ],
                vec![
                    Healthy,
                    Tolerated,
                    Tolerated,
                    Unhealthy(why()),
                    Unhealthy(why()),
                ],
            ),
            (
                "a passing probe gives the three chances back",
                &[
                    (true, false),
                    (false, true),
                    (false, true),
                    (true, true),
                    (false, true),
                ],
                vec![Healthy, Tolerated, Tolerated, Healthy, Tolerated],
            ),
            (
                "the start timeout no longer matters once it was healthy",
                &[(true, false), (false, true)],
                vec![Healthy, Tolerated],
            ),
        ];
        for (situation, probes, expected) in table {
            assert_eq!(verdicts(probes), *expected, "{situation}");
        }
    }

    #[test]
    fn a_service_wait_ends_on_a_crash_and_an_instance_wait_does_not() {
        use ComponentState::*;
        use ReadyWait::*;
        // (state, a service's wait, an instance's wait)
        let table = [
            (Healthy, Ready, Ready),
            (Starting, Waiting, Waiting),
            (Crashed, GaveUp, Waiting),
            (Unhealthy, GaveUp, Waiting),
            (Stopped, GaveUp, GaveUp),
        ];
        for (state, service, instance) in table {
            assert_eq!(service_ready_wait(state), service, "service {state:?}");
            assert_eq!(instance_ready_wait(state), instance, "instance {state:?}");
        }
    }
}
