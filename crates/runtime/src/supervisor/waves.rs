//! The order a biome converges in: waves of components whose dependencies are all in earlier
//! waves. A wave's components start together; the next wave starts once every one of them is
//! healthy (or, for a job, has succeeded). Pure, so the order is table-tested.

use std::collections::BTreeSet;

use sandpit_domain::Name;

use crate::protocol::ComponentSpec;

/// Indexes into `components`, wave by wave; within a wave in the order given. A dependency
/// that names no component of the list (a model, served by the endpoint) does not hold anything
/// back. Components caught in a cycle (validation refuses cycles; the daemon guards anyway) come
/// last, one wave each in the order given, so nothing is silently dropped.
pub(crate) fn convergence_waves(components: &[ComponentSpec]) -> Vec<Vec<usize>> {
    let known: BTreeSet<&Name> = components.iter().map(|c| &c.name).collect();
    let mut placed: BTreeSet<&Name> = BTreeSet::new();
    let mut remaining: Vec<usize> = (0..components.len()).collect();
    let mut waves = Vec::new();
    while !remaining.is_empty() {
        let (ready, blocked): (Vec<usize>, Vec<usize>) = remaining.iter().partition(|&&index| {
            components[index]
                .depends_on
                .iter()
                .all(|d| placed.contains(d) || !known.contains(d))
        });
        if ready.is_empty() {
            waves.extend(blocked.into_iter().map(|index| vec![index]));
            break;
        }
        placed.extend(ready.iter().map(|&index| &components[index].name));
        waves.push(ready);
        remaining = blocked;
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandpit_domain::ComponentKind;

    fn component(name: &str, depends_on: &[&str]) -> ComponentSpec {
        super::super::test_support::component_spec(name, ComponentKind::Service, depends_on)
    }

    fn names(components: &[ComponentSpec]) -> Vec<Vec<&str>> {
        convergence_waves(components)
            .into_iter()
            .map(|wave| {
                wave.into_iter()
                    .map(|i| components[i].name.as_str())
                    .collect()
            })
            .collect()
    }

    /// Components as (name, what it depends on).
    type Given<'a> = &'a [(&'a str, &'a [&'a str])];
    /// Component names, wave by wave.
    type Waves<'a> = &'a [&'a [&'a str]];

    #[test]
    fn waves_follow_dependencies() {
        let table: &[(Given, Waves)] = &[
            (&[], &[]),
            (&[("api", &[])], &[&["api"]]),
            // Independent components start together.
            (&[("a", &[]), ("b", &[])], &[&["a", "b"]]),
            // The example project's shape: a job and a service, then what needs both.
            (
                &[
                    ("prepare", &[]),
                    ("ingest", &[]),
                    ("grade", &["prepare", "ingest"]),
                ],
                &[&["prepare", "ingest"], &["grade"]],
            ),
            // A chain is one component per wave.
            (
                &[("a", &[]), ("b", &["a"]), ("c", &["b"])],
                &[&["a"], &["b"], &["c"]],
            ),
            // A diamond: the two middles together.
            (
                &[
                    ("db", &[]),
                    ("l", &["db"]),
                    ("r", &["db"]),
                    ("top", &["l", "r"]),
                ],
                &[&["db"], &["l", "r"], &["top"]],
            ),
            // Given out of order: a dependency listed later still comes first.
            (&[("web", &["api"]), ("api", &[])], &[&["api"], &["web"]]),
            // A dependency on something not run as a process (a model) holds nothing back.
            (&[("api", &["model"])], &[&["api"]]),
            // A cycle never loses a component.
            (
                &[("free", &[]), ("x", &["y"]), ("y", &["x"])],
                &[&["free"], &["x"], &["y"]],
            ),
        ];
        for (given, expected) in table {
            let components: Vec<ComponentSpec> =
                given.iter().map(|(n, d)| component(n, d)).collect();
            let expected: Vec<Vec<&str>> = expected.iter().map(|w| w.to_vec()).collect();
            assert_eq!(names(&components), expected, "for {given:?}");
        }
    }
}
