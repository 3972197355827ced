//! Which loopback port each service of a biome gets. A port is kept for the life of its biome (or
//! instance), even while its process is down, so it is never handed to anyone else meanwhile and
//! siblings' `SANDPIT_URL_<SVC>` stay valid. The choice is pure given the ports the kernel offers,
//! so it is table-tested with scripted offers.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use sandpit_domain::{ComponentKind, Name};

use crate::protocol::ComponentSpec;

/// The ports of a biome's components once it runs `wanted`: every service keeps the port it has
/// in `current`, a new one gets a port `offer` proposes that is neither `reserved` (kept by a
/// biome or instance, this one included) nor given to another service in the same call; ports of
/// components no longer declared are let go (a component that became a job keeps its port).
pub(super) fn allocate_ports(
    current: &BTreeMap<Name, u16>,
    wanted: &[ComponentSpec],
    reserved: &BTreeSet<u16>,
    mut offer: impl FnMut() -> io::Result<u16>,
) -> io::Result<BTreeMap<Name, u16>> {
    let mut reserved = reserved.clone();
    let mut ports = current.clone();
    for component in wanted.iter().filter(|c| c.kind == ComponentKind::Service) {
        if !ports.contains_key(&component.name) {
            let port = choose_port(&reserved, &mut offer)?;
            reserved.insert(port);
            ports.insert(component.name.clone(), port);
        }
    }
    ports.retain(|name, _| wanted.iter().any(|c| &c.name == name));
    Ok(ports)
}

/// A port free right now, outside the kernel's ephemeral range ([`crate::port_offer`]).
pub(super) fn system_offer() -> io::Result<u16> {
    crate::port_offer::offer()
}

/// The first port `offer` (the kernel) proposes that is not `reserved`, within a few tries.
fn choose_port(
    reserved: &BTreeSet<u16>,
    mut offer: impl FnMut() -> io::Result<u16>,
) -> io::Result<u16> {
    for _ in 0..32 {
        let port = offer()?;
        if !reserved.contains(&port) {
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "every port the system offered is kept by another biome or instance",
    ))
}

#[cfg(test)]
mod tests {

    use super::*;

    fn component(name: &str, kind: ComponentKind) -> ComponentSpec {
        super::super::test_support::component_spec(name, kind, &[])
    }

    fn ports(pairs: &[(&str, u16)]) -> BTreeMap<Name, u16> {
        pairs
            .iter()
            .map(|(n, p)| (Name::parse(n).unwrap(), *p))
            .collect()
    }

    #[test]
    fn services_keep_their_ports_and_new_ones_get_ports_nobody_keeps() {
        use ComponentKind::{Job, Model, Service};
        struct Row<'a> {
            situation: &'a str,
            current: &'a [(&'a str, u16)],
            wanted: &'a [(&'a str, ComponentKind)],
            reserved: &'a [u16],
            offers: &'a [u16],
            expected: &'a [(&'a str, u16)],
        }
        let table = [
            Row {
                situation: "a first up",
                current: &[],
                wanted: &[("api", Service), ("web", Service)],
                reserved: &[],
                offers: &[41000, 41001],
                expected: &[("api", 41000), ("web", 41001)],
            },
            Row {
                situation: "an unchanged biome asks the kernel for nothing",
                current: &[("api", 41000)],
                wanted: &[("api", Service)],
                reserved: &[41000],
                offers: &[],
                expected: &[("api", 41000)],
            },
            Row {
                situation: "jobs and models get no port",
                current: &[],
                wanted: &[("migrate", Job), ("model", Model), ("api", Service)],
                reserved: &[],
                offers: &[41000],
                expected: &[("api", 41000)],
            },
            Row {
                situation: "a port another biome or instance keeps is skipped",
                current: &[],
                wanted: &[("api", Service)],
                reserved: &[5432, 41000],
                offers: &[5432, 41000, 41002],
                expected: &[("api", 41002)],
            },
            Row {
                situation: "two new services never share the port offered twice",
                current: &[],
                wanted: &[("api", Service), ("web", Service)],
                reserved: &[],
                offers: &[41000, 41000, 41003],
                expected: &[("api", 41000), ("web", 41003)],
            },
            Row {
                situation: "a removed component lets its port go",
                current: &[("api", 41000), ("old", 41001)],
                wanted: &[("api", Service)],
                reserved: &[41000, 41001],
                offers: &[],
                expected: &[("api", 41000)],
            },
            Row {
                situation: "a service that became a job keeps its port",
                current: &[("worker", 41000)],
                wanted: &[("worker", Job)],
                reserved: &[41000],
                offers: &[],
                expected: &[("worker", 41000)],
            },
        ];
        for row in table {
            let wanted: Vec<ComponentSpec> = row
                .wanted
                .iter()
                .map(|(n, kind)| component(n, *kind))
                .collect();
            let mut offers = row.offers.iter().copied();
            let got = allocate_ports(
                &ports(row.current),
                &wanted,
                &row.reserved.iter().copied().collect(),
                || Ok(offers.next().expect("asked the kernel once too often")),
            )
            .unwrap();
            assert_eq!(got, ports(row.expected), "{}", row.situation);
        }
    }

    #[test]
    fn a_port_kept_by_another_biome_is_never_handed_out_again() {
        let reserved = BTreeSet::from([41000, 41001]);
        let mut offers = [41000, 41001, 41000, 41002].into_iter();
        let chosen = choose_port(&reserved, || Ok(offers.next().unwrap()));
        assert_eq!(chosen.unwrap(), 41002);
        let error = choose_port(&reserved, || Ok(41000)).unwrap_err();
        assert!(
            error.to_string().contains("kept by another biome"),
            "{error}"
        );
        assert!(!reserved.contains(&choose_port(&reserved, system_offer).unwrap()));
    }

    #[test]
    fn a_kernel_that_offers_only_kept_ports_is_an_error_not_a_shared_port() {
        let wanted = [component("api", ComponentKind::Service)];
        let error = allocate_ports(&BTreeMap::new(), &wanted, &BTreeSet::from([41000]), || {
            Ok(41000)
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("kept by another biome"),
            "{error}"
        );
    }
}
