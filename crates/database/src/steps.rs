//! How long each step of a multi-step operation took (a biome database's creation, its
//! teardown), as `tracing` debug events with target [`TARGET`]: the database benchmark collects
//! them to show where the time goes, and `RUST_LOG=sandpit_database::steps=debug` shows them.

use std::time::Instant;

/// The `tracing` target of every step event. Each event has the fields `operation` and `step`
/// (static strings) and `micros` (the step's wall-clock time).
pub const TARGET: &str = "sandpit_database::steps";

/// Times consecutive steps of one operation: each [`StepClock::lap`] reports the time since the
/// previous one (or since the start).
pub(crate) struct StepClock {
    operation: &'static str,
    last: Instant,
}

impl StepClock {
    pub(crate) fn start(operation: &'static str) -> StepClock {
        StepClock {
            operation,
            last: Instant::now(),
        }
    }

    /// Reports `step` as finished now.
    pub(crate) fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        let micros = u64::try_from(now.duration_since(self.last).as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(target: TARGET, operation = self.operation, step, micros);
        self.last = now;
    }
}
