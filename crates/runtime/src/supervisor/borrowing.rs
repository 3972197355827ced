//! Overlay biomes: services a biome borrows from its environment's base instead of running them
//! ([`BiomeSpec::borrowed`]). The biome's components reach a borrowed service at the lender's
//! port, a dependency on it is satisfied by the lender's instance being healthy, and `status`
//! lists it with the lender's state. The decisions are pure functions of what the lender runs,
//! looked up under the biomes' lock by the few `Supervisor` methods at the top.

use std::collections::BTreeMap;

use sandpit_domain::{ComponentKind, ComponentState, Name};
use sha2::{Digest as _, Sha256};

use super::{Biome, BiomeKey, Supervisor};
use crate::protocol::{BiomeSpec, BiomeStatus, ComponentStatus};

/// For each borrowed service of a biome: the lender's component of that name, when the lender
/// runs it as a service of its own (`None`: the lender is unknown, being removed, in another
/// environment, or does not run it).
pub(super) type Lent = BTreeMap<Name, Option<ComponentStatus>>;

impl Supervisor {
    /// What the lenders of `spec`'s borrowed services run of them now.
    pub(super) fn lent(&self, biomes: &BTreeMap<BiomeKey, Biome>, spec: &BiomeSpec) -> Lent {
        spec.borrowed
            .iter()
            .map(|(service, lender)| {
                let key = BiomeKey {
                    project: spec.project.clone(),
                    biome: lender.clone(),
                };
                let found = biomes
                    .get(&key)
                    .filter(|b| !b.removing && b.spec.env == spec.env && key.biome != spec.biome)
                    .and_then(|b| {
                        self.describe(&key, b)
                            .components
                            .into_iter()
                            .find(|c| &c.name == service && c.borrowed_from.is_none())
                    })
                    .filter(|c| c.kind == ComponentKind::Service);
                (service.clone(), found)
            })
            .collect()
    }

    /// Refuses an `up` whose borrowed services are not served by a healthy lender.
    pub(super) fn check_lenders(&self, spec: &BiomeSpec) -> Result<(), String> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        check_lenders(spec, &self.lent(&biomes, spec))
    }

    /// The lender's port of every borrowed service (what `SANDPIT_URL_<SVC>` points at).
    pub(super) fn borrowed_ports(&self, spec: &BiomeSpec) -> BTreeMap<Name, u16> {
        if spec.borrowed.is_empty() {
            return BTreeMap::new();
        }
        let biomes = self.biomes.lock().expect("biomes poisoned");
        borrowed_ports(&self.lent(&biomes, spec))
    }

    /// A biome's status with its borrowed services after its own components.
    pub(super) fn describe_with_borrowed(
        &self,
        biomes: &BTreeMap<BiomeKey, Biome>,
        key: &BiomeKey,
        biome: &Biome,
    ) -> BiomeStatus {
        let mut status = self.describe(key, biome);
        if !biome.spec.borrowed.is_empty() {
            let lent = self.lent(biomes, &biome.spec);
            let public_port = self.public_port(&biome.spec);
            status.components.extend(
                borrowed_statuses(&biome.spec.borrowed, &lent)
                    .into_iter()
                    .map(|mut component| {
                        // Through the gateway it is reached under the borrower's name.
                        component.public_url =
                            public_port.map(|port| super::public_url(&component.name, key, port));
                        component
                    }),
            );
        }
        status
    }
}

/// Whether every borrowed service is a healthy service of its lender, and not also run by the
/// biome itself; the first that is not, explained.
pub(super) fn check_lenders(spec: &BiomeSpec, lent: &Lent) -> Result<(), String> {
    for (service, lender) in &spec.borrowed {
        if spec.components.iter().any(|c| &c.name == service) {
            return Err(format!(
                "`{service}` is both run by biome `{}` and borrowed from `{lender}`",
                spec.biome
            ));
        }
        let rerun = format!(
            "hint: bring `{lender}` up first (`sandpit deploy {lender}`), or run every component in the biome: `sandpit up {} --no-overlay`",
            spec.biome
        );
        match lent.get(service).and_then(Option::as_ref) {
            None => {
                return Err(format!(
                "biome `{}` borrows `{service}` from `{lender}`, which does not run it\n{rerun}",
                spec.biome
            ))
            }
            Some(component) if component.state != ComponentState::Healthy => {
                let why = component
                    .detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                return Err(format!(
                    "biome `{}` borrows `{service}` from `{lender}`, where it is {}{why}\n{rerun}",
                    spec.biome, component.state
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The lender's port of each borrowed service it runs.
pub(super) fn borrowed_ports(lent: &Lent) -> BTreeMap<Name, u16> {
    lent.iter()
        .filter_map(|(service, component)| Some((service.clone(), component.as_ref()?.port?)))
        .collect()
}

/// How borrowed services show in the borrower's status: the lender's component as it is, with
/// no pid (the process is not the borrower's) and the lender named. A service whose lender no
/// longer runs it is left out: there is nothing it could be said to run.
pub(super) fn borrowed_statuses(
    borrowed: &BTreeMap<Name, Name>,
    lent: &Lent,
) -> Vec<ComponentStatus> {
    borrowed
        .iter()
        .filter_map(|(service, lender)| {
            let mut component = lent.get(service)?.clone()?;
            component.pid = None;
            component.borrowed_from = Some(lender.clone());
            Some(component)
        })
        .collect()
}

/// A component's fingerprint with where its borrowed siblings are: a component of an overlay
/// biome is restarted when a lender's port changes (the base was destroyed and deployed again),
/// since its `SANDPIT_URL_*` would point at nothing. Unchanged without borrowed services.
pub(super) fn with_borrowed_ports(fingerprint: String, ports: &BTreeMap<Name, u16>) -> String {
    if ports.is_empty() {
        return fingerprint;
    }
    let encoded = serde_json::json!({ "own": fingerprint, "borrowed": ports });
    hex::encode(Sha256::digest(encoded.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sandpit_domain::Digest;

    use super::*;
    use crate::protocol::ComponentSpec;

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    fn lent_service(
        n: &str,
        kind: ComponentKind,
        state: ComponentState,
        port: u16,
    ) -> ComponentStatus {
        ComponentStatus {
            name: name(n),
            kind,
            state,
            pid: Some(4242),
            url: Some(format!("http://127.0.0.1:{port}")),
            port: Some(port),
            restarts: 0,
            artifact: format!("{n}-0123456789ab.zip"),
            digest: Digest::of(n.as_bytes()),
            log: PathBuf::from(format!("/logs/{n}.log")),
            detail: (state != ComponentState::Healthy).then(|| "exited with status 1".to_owned()),
            public_url: None,
            borrowed_from: None,
        }
    }

    fn alice(own: &[&str], borrowed: &[&str]) -> BiomeSpec {
        BiomeSpec {
            project: name("geo"),
            env: name("dev"),
            biome: name("alice"),
            version: "0123456789ab".into(),
            store: PathBuf::from("/nowhere"),
            max_artifact_size: 1,
            components: own
                .iter()
                .map(|n| super::super::test_support::component_spec(n, ComponentKind::Service, &[]))
                .collect::<Vec<ComponentSpec>>(),
            database: None,
            idle_timeout_secs: None,
            gateway_port: None,
            models: None,
            borrowed: borrowed.iter().map(|n| (name(n), name("dev"))).collect(),
        }
    }

    #[test]
    fn an_up_goes_on_only_when_every_lender_serves_its_service_healthily() {
        use ComponentState::{Healthy, Starting, Unhealthy};
        // (own, borrowed, what the lender runs of each borrowed one, Ok or part of the error)
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [(&'a str, Option<(ComponentKind, ComponentState)>)],
            Result<(), &'a str>,
        );
        let cases: &[Case] = &[
            (&["web"], &[], &[], Ok(())),
            (
                &["web"],
                &["api"],
                &[("api", Some((ComponentKind::Service, Healthy)))],
                Ok(()),
            ),
            (
                &["web"],
                &["api"],
                &[("api", None)],
                Err("borrows `api` from `dev`, which does not run it"),
            ),
            (
                &["web"],
                &["api"],
                &[("api", Some((ComponentKind::Service, Unhealthy)))],
                Err("where it is unhealthy: exited with status 1"),
            ),
            (
                &["web"],
                &["api"],
                &[("api", Some((ComponentKind::Service, Starting)))],
                Err("where it is starting"),
            ),
            (
                &["api"],
                &["api"],
                &[("api", Some((ComponentKind::Service, Healthy)))],
                Err("`api` is both run by biome `alice` and borrowed from `dev`"),
            ),
        ];
        for (own, borrowed, lender_runs, expected) in cases {
            let spec = alice(own, borrowed);
            let lent: Lent = lender_runs
                .iter()
                .map(|(n, runs)| {
                    (
                        name(n),
                        runs.map(|(kind, state)| lent_service(n, kind, state, 41000)),
                    )
                })
                .collect();
            match (check_lenders(&spec, &lent), expected) {
                (Ok(()), Ok(())) => {}
                (Err(message), Err(part)) => {
                    assert!(message.contains(part), "{message:?} should say {part:?}");
                    assert!(
                        message.contains("--no-overlay") || message.contains("both run"),
                        "{message}"
                    );
                }
                (got, _) => {
                    panic!("{own:?} borrowing {borrowed:?}: {got:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn borrowed_services_show_the_lenders_instance_without_its_pid() {
        let borrowed = BTreeMap::from([(name("api"), name("dev")), (name("gone"), name("dev"))]);
        let lent: Lent = BTreeMap::from([
            (
                name("api"),
                Some(lent_service(
                    "api",
                    ComponentKind::Service,
                    ComponentState::Healthy,
                    41001,
                )),
            ),
            (name("gone"), None),
        ]);
        let shown = borrowed_statuses(&borrowed, &lent);
        assert_eq!(
            shown.len(),
            1,
            "a service the lender no longer runs is left out"
        );
        assert_eq!(shown[0].name, name("api"));
        assert_eq!(shown[0].borrowed_from, Some(name("dev")));
        assert_eq!(shown[0].pid, None);
        assert_eq!(shown[0].port, Some(41001));
        assert_eq!(shown[0].state, ComponentState::Healthy);
        assert_eq!(
            borrowed_ports(&lent),
            BTreeMap::from([(name("api"), 41001)])
        );
    }

    #[test]
    fn a_fingerprint_changes_with_a_lenders_port_and_only_with_borrowed_services() {
        let own = "abc".to_owned();
        assert_eq!(with_borrowed_ports(own.clone(), &BTreeMap::new()), own);
        let at = |port| with_borrowed_ports(own.clone(), &BTreeMap::from([(name("api"), port)]));
        assert_ne!(at(41001), own);
        assert_eq!(at(41001), at(41001));
        assert_ne!(at(41001), at(41002));
    }
}
