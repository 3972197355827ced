//! What a daemon starting over a previous one's state does with it: which biomes come back and
//! which had begun their removal, which saved processes are adopted, what each record reports
//! until it converges, and when to tell a person that processes nobody recorded were stopped.
//! Pure: whether a process still runs is asked through the `is_running` given, so the rules are
//! table-tested with made-up processes. (Which marked processes are leftovers is
//! `process::orphan_groups`, pure as well.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sandpit_domain::{ComponentKind, ComponentState, Name};

use super::{BiomeKey, PersistedBiome, PersistedUnit};
use crate::process::ProcessIdentity;
use crate::protocol::BiomeSpec;

/// What becomes of one saved process record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovered {
    /// A service (or instance) whose process survived: watched again rather than started anew.
    Adopt(ProcessIdentity),
    /// A job that had succeeded: it keeps its outcome (and is not run again if unchanged).
    Succeeded,
    /// Nothing to keep: started (a job: run) again by the convergence that follows. A job cut
    /// short by the crash is never adopted; what is left of it is stopped as a leftover.
    Start,
}

impl Recovered {
    /// What the record reports until the biome has converged.
    pub(super) fn state(self) -> ComponentState {
        match self {
            Recovered::Adopt(_) => ComponentState::Starting,
            Recovered::Succeeded => ComponentState::Succeeded,
            Recovered::Start => ComponentState::Stopped,
        }
    }

    /// The process the record holds: only an adopted one.
    pub(super) fn process(self) -> Option<ProcessIdentity> {
        match self {
            Recovered::Adopt(identity) => Some(identity),
            _ => None,
        }
    }
}

/// A saved component of `kind` that was `saved_state` with process `alive` (the saved one, when
/// it still runs).
pub(super) fn recover_unit(
    kind: ComponentKind,
    saved_state: ComponentState,
    alive: Option<ProcessIdentity>,
) -> Recovered {
    match (kind, alive) {
        (ComponentKind::Job, _) if saved_state == ComponentState::Succeeded => Recovered::Succeeded,
        (ComponentKind::Service, Some(identity)) => Recovered::Adopt(identity),
        _ => Recovered::Start,
    }
}

/// A saved environment instance whose process is `alive` (the saved one, when it still runs).
pub(super) fn recover_instance(alive: Option<ProcessIdentity>) -> Recovered {
    match alive {
        Some(identity) => Recovered::Adopt(identity),
        None => Recovered::Start,
    }
}

/// A saved biome to bring back, each saved unit with what becomes of it.
pub(super) struct RestoredBiome {
    pub(super) key: BiomeKey,
    pub(super) spec: BiomeSpec,
    pub(super) ports: BTreeMap<Name, u16>,
    pub(super) units: Vec<(Name, PersistedUnit, Recovered)>,
    /// Asleep since (seconds since the Unix epoch): it stays asleep.
    pub(super) sleeping_since: Option<u64>,
}

/// What the saved biomes become.
pub(super) struct BiomesRecovery {
    pub(super) restore: Vec<RestoredBiome>,
    /// `down` had begun: never brought back; their files go, and what still runs of them is
    /// stopped with the other processes nobody supervises.
    pub(super) finish_removal: Vec<BiomeKey>,
    /// The process groups adopted: the leftover sweep leaves exactly these alone.
    pub(super) adopted_groups: BTreeSet<u32>,
}

/// Sorts the saved biomes into those restored (with their adopted processes) and those whose
/// removal is finished; `is_running` says whether a saved process still runs.
pub(super) fn recover_biomes(
    saved: Vec<PersistedBiome>,
    is_running: impl Fn(ProcessIdentity) -> bool,
) -> BiomesRecovery {
    let mut recovery = BiomesRecovery {
        restore: Vec::new(),
        finish_removal: Vec::new(),
        adopted_groups: BTreeSet::new(),
    };
    for biome in saved {
        let key = BiomeKey {
            project: biome.spec.project.clone(),
            biome: biome.spec.biome.clone(),
        };
        if biome.removing {
            recovery.finish_removal.push(key);
            continue;
        }
        let units = biome
            .units
            .into_iter()
            .map(|(name, unit)| {
                // A sleeping biome runs nothing: whatever still runs of it is a leftover, stopped
                // with the other processes nobody supervises.
                let alive = unit
                    .process
                    .filter(|p| biome.sleeping_since.is_none() && is_running(*p));
                let recovered = recover_unit(unit.spec.kind, unit.state, alive);
                if let Some(identity) = recovered.process() {
                    recovery.adopted_groups.insert(identity.pid);
                }
                (name, unit, recovered)
            })
            .collect();
        recovery.restore.push(RestoredBiome {
            key,
            spec: biome.spec,
            ports: biome.ports,
            units,
            sleeping_since: biome.sleeping_since,
        });
    }
    recovery
}

/// What to tell a person when the state file (`state_file`) was missing (`had_state` false) yet
/// `leftover_groups` process groups of this home were found and stopped; nothing otherwise (a
/// fresh home, or leftovers of a state that was read are routine).
pub(super) fn missing_state_notice(
    state_file: &Path,
    had_state: bool,
    leftover_groups: usize,
) -> Option<String> {
    (!had_state && leftover_groups > 0).then(|| {
        format!(
            "the supervisor state {} was missing; stopped {leftover_groups} process group(s) of this SANDPIT_HOME that no state described",
            state_file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sandpit_domain::Digest;

    use super::*;
    use crate::protocol::ComponentSpec;

    fn pid(pid: u32) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_ticks: 17,
        }
    }

    #[test]
    fn services_that_survived_are_adopted_and_jobs_never_are() {
        use ComponentKind::{Job, Model, Service};
        use ComponentState::*;
        let table: &[(&str, ComponentKind, ComponentState, Option<u32>, Recovered)] = &[
            (
                "a healthy service still running",
                Service,
                Healthy,
                Some(10),
                Recovered::Adopt(pid(10)),
            ),
            (
                "a service saved between crash restarts, its new process running",
                Service,
                Crashed,
                Some(11),
                Recovered::Adopt(pid(11)),
            ),
            (
                "a service whose process died with the daemon",
                Service,
                Healthy,
                None,
                Recovered::Start,
            ),
            (
                "a stopped service",
                Service,
                Stopped,
                None,
                Recovered::Start,
            ),
            (
                "a succeeded job",
                Job,
                Succeeded,
                None,
                Recovered::Succeeded,
            ),
            (
                "a job cut short, still running: not adopted, run again",
                Job,
                Starting,
                Some(12),
                Recovered::Start,
            ),
            (
                "a failed job runs again",
                Job,
                Failed,
                None,
                Recovered::Start,
            ),
            (
                "a succeeded job keeps its outcome even if a pid was left",
                Job,
                Succeeded,
                Some(13),
                Recovered::Succeeded,
            ),
            (
                "a model has no process",
                Model,
                Stopped,
                None,
                Recovered::Start,
            ),
        ];
        for (situation, kind, saved_state, alive, expected) in table {
            let got = recover_unit(*kind, *saved_state, alive.map(pid));
            assert_eq!(got, *expected, "{situation}");
        }
    }

    #[test]
    fn a_recovered_record_reports_what_it_holds() {
        let table: &[(Recovered, ComponentState, Option<ProcessIdentity>)] = &[
            (
                Recovered::Adopt(pid(10)),
                ComponentState::Starting,
                Some(pid(10)),
            ),
            (Recovered::Succeeded, ComponentState::Succeeded, None),
            (Recovered::Start, ComponentState::Stopped, None),
        ];
        for (recovered, state, process) in table {
            assert_eq!(recovered.state(), *state, "{recovered:?}");
            assert_eq!(recovered.process(), *process, "{recovered:?}");
        }
        assert_eq!(recover_instance(Some(pid(5))), Recovered::Adopt(pid(5)));
        assert_eq!(recover_instance(None), Recovered::Start);
    }

    fn unit(
        name: &str,
        kind: ComponentKind,
        state: ComponentState,
        process: Option<u32>,
    ) -> (Name, PersistedUnit) {
        let name = Name::parse(name).unwrap();
        let spec = ComponentSpec {
            name: name.clone(),
            kind,
            artifact: format!("{name}.zip"),
            digest: Digest::of(name.as_str().as_bytes()),
            run: "true".into(),
            health: None,
            start_timeout_secs: 1,
            env: Default::default(),
            secret_env: Default::default(),
            depends_on: Vec::new(),
        };
        let unit = PersistedUnit {
            spec,
            fingerprint: "f".into(),
            working_dir: PathBuf::from("/nowhere"),
            state,
            process: process.map(pid),
            restarts: 2,
            succeeded_fingerprint: None,
        };
        (name, unit)
    }

    fn biome(name: &str, removing: bool, units: Vec<(Name, PersistedUnit)>) -> PersistedBiome {
        let parse = |n: &str| Name::parse(n).unwrap();
        PersistedBiome {
            spec: BiomeSpec {
                project: parse("geo"),
                env: parse("dev"),
                biome: parse(name),
                version: "0123456789ab".into(),
                store: PathBuf::from("/nowhere"),
                max_artifact_size: 1,
                components: units.iter().map(|(_, u)| u.spec.clone()).collect(),
                database: None,
                idle_timeout_secs: None,
                gateway_port: None,
                models: None,
                borrowed: BTreeMap::new(),
            },
            ports: BTreeMap::new(),
            units: units.into_iter().collect(),
            removing,
            sleeping_since: None,
        }
    }

    #[test]
    fn removing_biomes_are_dropped_and_only_surviving_services_are_known() {
        use ComponentKind::{Job, Service};
        use ComponentState::*;
        let saved = vec![
            biome(
                "alice",
                false,
                vec![
                    unit("api", Service, Healthy, Some(100)),
                    unit("web", Service, Healthy, Some(101)),
                    unit("ingest", Job, Starting, Some(102)),
                    unit("prepare", Job, Succeeded, None),
                ],
            ),
            // Its service still runs, but `down` had begun: not adopted, so the sweep stops it.
            biome("bob", true, vec![unit("api", Service, Healthy, Some(200))]),
        ];
        // 101 died with the daemon; every other saved process runs.
        let recovery = recover_biomes(saved, |p| p.pid != 101);
        let dropped: Vec<&str> = recovery
            .finish_removal
            .iter()
            .map(|k| k.biome.as_str())
            .collect();
        assert_eq!(dropped, ["bob"]);
        assert_eq!(recovery.adopted_groups, BTreeSet::from([100]));
        assert_eq!(recovery.restore.len(), 1);
        let alice = &recovery.restore[0];
        assert_eq!(alice.key.biome.as_str(), "alice");
        let outcomes: Vec<(&str, Recovered)> = alice
            .units
            .iter()
            .map(|(name, _, recovered)| (name.as_str(), *recovered))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("api", Recovered::Adopt(pid(100))),
                ("ingest", Recovered::Start),
                ("prepare", Recovered::Succeeded),
                ("web", Recovered::Start),
            ]
        );
    }

    #[test]
    fn a_person_is_told_only_when_a_missing_state_left_processes_behind() {
        let path = Path::new("/home/runtime/state.json");
        let table: &[(bool, usize, bool)] = &[
            // A fresh home: nothing to say.
            (false, 0, false),
            // The state file is gone yet processes of this home ran: say so.
            (false, 2, true),
            // Leftovers beside a state that was read are routine (logged, not a notice).
            (true, 2, false),
            (true, 0, false),
        ];
        for (had_state, leftovers, told) in table {
            let notice = missing_state_notice(path, *had_state, *leftovers);
            assert_eq!(
                notice.is_some(),
                *told,
                "had_state {had_state}, {leftovers}"
            );
            if let Some(notice) = notice {
                assert!(
                    notice.contains(
                        "/home/runtime/state.json was missing; stopped 2 process group(s)"
                    ),
                    "{notice}"
                );
            }
        }
    }
}
