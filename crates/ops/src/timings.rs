//! Where an operation's time went, phase by phase: `up --json` reports it under `timings`, and
//! the benchmark prints it, so a slow `up` says which part was slow.

use std::time::{Duration, Instant};

/// A part of `up` whose duration is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Finding the project, the biome's name and reading `sandpit.toml` at the commit.
    Spec,
    /// Input keys of every component, and building what no artifact exists for yet.
    Plan,
    /// Recording the deployment and waiting for its turn behind earlier ones.
    Record,
    /// Creating the biome's database, or migrating it in place.
    Database,
    /// Registering the biome's models with the environment's endpoint.
    Models,
    /// Applying the target's terraform components (`ops::terraform`).
    Terraform,
    /// The daemon's part, apart from waiting for health: starting and stopping processes.
    Daemon,
    /// Waiting for components to become healthy (jobs: to finish).
    HealthWait,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Spec => "spec",
            Phase::Plan => "plan",
            Phase::Record => "record",
            Phase::Database => "database",
            Phase::Models => "models",
            Phase::Terraform => "terraform",
            Phase::Daemon => "daemon",
            Phase::HealthWait => "health_wait",
        }
    }
}

/// Durations of the phases that ran, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    phases: Vec<(Phase, Duration)>,
}

impl PhaseTimings {
    /// Adds `duration` to `phase` (a phase may be entered more than once).
    pub fn add(&mut self, phase: Phase, duration: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += duration,
            None => self.phases.push((phase, duration)),
        }
    }

    /// Runs `work`, adding its duration to `phase`.
    pub fn time<T>(&mut self, phase: Phase, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        self.add(phase, started.elapsed());
        result
    }

    /// Adds every phase of `other`.
    pub fn extend(&mut self, other: &PhaseTimings) {
        for (phase, duration) in &other.phases {
            self.add(*phase, *duration);
        }
    }

    pub fn phases(&self) -> &[(Phase, Duration)] {
        &self.phases
    }

    pub fn get(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_keep_their_order_and_add_up_when_entered_twice() {
        let mut timings = PhaseTimings::default();
        timings.add(Phase::Plan, Duration::from_millis(3));
        timings.add(Phase::Spec, Duration::from_millis(1));
        timings.add(Phase::Plan, Duration::from_millis(4));
        let value = timings.time(Phase::Database, || 42);
        assert_eq!(value, 42);
        let order: Vec<&str> = timings.phases().iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(order, ["plan", "spec", "database"]);
        assert_eq!(timings.get(Phase::Plan), Some(Duration::from_millis(7)));
        assert_eq!(timings.get(Phase::Models), None);
        let mut total = PhaseTimings::default();
        total.add(Phase::Spec, Duration::from_millis(2));
        total.extend(&timings);
        assert_eq!(total.get(Phase::Spec), Some(Duration::from_millis(3)));
    }
}
