//! A biome's state as `status` and `ls` report it, from its components' states. Pure, so every
//! mix of states is table-tested.

use sandpit_domain::ComponentState;

/// How a biome is doing as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BiomeState {
    /// Every service is healthy and every job has succeeded (also: nothing runs as a process).
    Healthy,
    /// Something crashed, failed or stopped answering its health check.
    Degraded,
    /// Nothing runs, on purpose.
    Stopped,
    /// On its way: something is still starting, the rest is fine or stopped.
    Starting,
}

impl BiomeState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            BiomeState::Healthy => "healthy",
            BiomeState::Degraded => "degraded",
            BiomeState::Stopped => "stopped",
            BiomeState::Starting => "starting",
        }
    }
}

/// The state of a biome whose process components (services and jobs; models have no process)
/// are in `states`. A problem anywhere outweighs a component still starting.
pub(super) fn biome_state(states: &[ComponentState]) -> BiomeState {
    if states.iter().all(|s| s.is_good()) {
        BiomeState::Healthy
    } else if states.iter().any(|s| {
        matches!(
            s,
            ComponentState::Crashed | ComponentState::Failed | ComponentState::Unhealthy
        )
    }) {
        BiomeState::Degraded
    } else if states.iter().all(|s| *s == ComponentState::Stopped) {
        BiomeState::Stopped
    } else {
        BiomeState::Starting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_biome_is_as_well_as_its_components() {
        use BiomeState as B;
        use ComponentState::*;
        let table: &[(&[ComponentState], BiomeState)] = &[
            // Only models (no process): nothing is wrong.
            (&[], B::Healthy),
            (&[Healthy], B::Healthy),
            (&[Succeeded, Healthy], B::Healthy),
            (&[Starting], B::Starting),
            (&[Healthy, Starting], B::Starting),
            // A component stopped beside a running one (a restart in progress) is not "stopped".
            (&[Healthy, Stopped], B::Starting),
            (&[Stopped], B::Stopped),
            (&[Stopped, Stopped], B::Stopped),
            (&[Healthy, Crashed], B::Degraded),
            (&[Succeeded, Failed], B::Degraded),
            (&[Unhealthy], B::Degraded),
            // A problem outweighs a start in progress and a stopped component.
            (&[Starting, Crashed, Stopped], B::Degraded),
        ];
        for (states, expected) in table {
            assert_eq!(biome_state(states), *expected, "{states:?}");
        }
    }

    #[test]
    fn the_reported_words_are_the_ones_clients_read() {
        let words: Vec<&str> = [
            BiomeState::Healthy,
            BiomeState::Degraded,
            BiomeState::Stopped,
            BiomeState::Starting,
        ]
        .into_iter()
        .map(BiomeState::as_str)
        .collect();
        assert_eq!(words, ["healthy", "degraded", "stopped", "starting"]);
    }
}
