//! Overlay biomes (`up --overlay`, `[biomes] overlay = true`): which components a biome borrows
//! from its environment's base instead of running them. The decision ([`decide`]) is pure, made
//! from what the biome would run and what the base runs now; [`plan`] gathers the latter (the
//! daemon's status of the base, the base's model registrations) without starting anything.
//!
//! - A **service** whose artifact (digest) is the one the base runs, healthy, is borrowed: the
//!   biome's `SANDPIT_URL_<SVC>` points at the base's instance and no process of its own runs.
//! - A **job** always runs in the biome: the biome's database is its own, and jobs are what
//!   usually prepare it (migrations, seeds, data loads), so the base having run the same job on
//!   its own database says nothing about the biome's.
//! - A **model** with the base's digest is not registered for the biome: the endpoint answers a
//!   biome's plain model names with the base's version when the biome has none of its own.

use std::collections::{BTreeMap, BTreeSet};

use sandpit_domain::{ComponentKind, ComponentState, Digest, Name};

use crate::release::Release;
use crate::Context;

/// One component the biome would run: its name, kind and chosen artifact's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: Name,
    pub kind: ComponentKind,
    pub digest: Digest,
}

/// One component the base runs now (a model: is registered with the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRuns {
    pub name: Name,
    pub kind: ComponentKind,
    pub digest: Digest,
    /// A service: healthy; a model: registered. Anything else is not worth borrowing.
    pub serving: bool,
}

/// What an overlay biome takes from its base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Borrowing {
    /// Services served by the base's instances.
    pub services: BTreeSet<Name>,
    /// Models answered with the base's registration.
    pub models: BTreeSet<Name>,
}

impl Borrowing {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.models.is_empty()
    }
}

/// What `planned` borrows from a base that runs `base`: every service and model whose digest
/// is the one the base serves (healthy, registered); never a job.
pub fn decide(planned: &[Planned], base: &[BaseRuns]) -> Borrowing {
    let mut borrowing = Borrowing::default();
    for component in planned {
        let same_in_base = base.iter().any(|b| {
            b.name == component.name
                && b.kind == component.kind
                && b.digest == component.digest
                && b.serving
        });
        if !same_in_base {
            continue;
        }
        match component.kind {
            ComponentKind::Service => {
                borrowing.services.insert(component.name.clone());
            }
            ComponentKind::Model => {
                borrowing.models.insert(component.name.clone());
            }
            // A job prepares the biome's own database; a terraform component is the biome's own
            // infrastructure (a state of its own): both always run in the biome.
            ComponentKind::Job | ComponentKind::Terraform => {}
        }
    }
    borrowing
}

/// The progress line an overlay `up` prints about what it borrows from `base`.
pub fn describe(borrowing: &Borrowing, base: &Name, planned: &[Planned]) -> String {
    let list = |names: &BTreeSet<Name>| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if borrowing.is_empty() {
        return format!(
            "overlay: `{base}` runs nothing healthy with the same artifacts to share; running every component in the biome"
        );
    }
    let own: BTreeSet<Name> = planned
        .iter()
        .filter(|c| !borrowing.services.contains(&c.name) && !borrowing.models.contains(&c.name))
        .map(|c| c.name.clone())
        .collect();
    let mut parts = Vec::new();
    if !borrowing.services.is_empty() {
        parts.push(format!(
            "borrowing {} from `{base}`",
            list(&borrowing.services)
        ));
    }
    if !borrowing.models.is_empty() {
        parts.push(format!(
            "answering {} with `{base}`'s models",
            list(&borrowing.models)
        ));
    }
    let running = if own.is_empty() {
        "running nothing of its own".to_owned()
    } else {
        format!("running {}", list(&own))
    };
    format!("overlay: {}; {running}", parts.join("; "))
}

/// What the biome of `release` would run, for [`decide`].
pub fn planned(release: &Release<'_>) -> Vec<Planned> {
    release
        .artifacts
        .iter()
        .filter_map(|(name, chosen)| {
            Some(Planned {
                name: name.clone(),
                kind: release.spec.components.get(name)?.kind,
                digest: chosen.digest.clone(),
            })
        })
        .collect()
}

/// What the environment's base runs now: its services as the running daemon reports them
/// (none when no daemon runs: this never starts one) and its registered models.
pub async fn base_runs(
    context: &Context,
    project: &Name,
    env: &Name,
) -> anyhow::Result<Vec<BaseRuns>> {
    let mut runs = Vec::new();
    if let Some(status) = crate::daemon_connection::status_if_running(context, project, env).await {
        runs.extend(
            status
                .components
                .iter()
                .filter(|c| c.borrowed_from.is_none())
                .map(|c| BaseRuns {
                    name: c.name.clone(),
                    kind: c.kind,
                    digest: c.digest.clone(),
                    serving: c.state == ComponentState::Healthy,
                }),
        );
    }
    for model in crate::models::served_models(context, project)? {
        if &model.env != env || model.biome.is_some() {
            continue;
        }
        let (Ok(name), Ok(digest)) = (Name::parse(&model.model), Digest::parse(&model.digest))
        else {
            continue;
        };
        runs.push(BaseRuns {
            name,
            kind: ComponentKind::Model,
            digest,
            serving: true,
        });
    }
    Ok(runs)
}

/// Decides what `release` (an overlay biome) borrows from its environment's base, tells
/// `on_event` so, and records it on the release.
pub async fn plan(
    context: &Context,
    release: &mut Release<'_>,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<()> {
    let base = release.env.clone();
    let planned = planned(release);
    let runs = base_runs(context, &release.spec.project.name, &base).await?;
    let borrowing = decide(&planned, &runs);
    on_event(None, &describe(&borrowing, &base, &planned));
    release.borrowed = borrowing
        .services
        .into_iter()
        .map(|service| (service, base.clone()))
        .collect();
    release.shared_models = borrowing.models;
    Ok(())
}

/// What a recorded deployment borrowed (its components' `borrowed_from`): the services and
/// their lenders, and the models answered by the base's registration.
pub fn recorded_borrowing(
    spec: &sandpit_spec::Spec,
    components: &[sandpit_state::DeployedComponent],
) -> anyhow::Result<(BTreeMap<Name, Name>, BTreeSet<Name>)> {
    let mut services = BTreeMap::new();
    let mut models = BTreeSet::new();
    for component in components {
        let Some(lender) = &component.borrowed_from else {
            continue;
        };
        let name = Name::parse(&component.name)?;
        match spec.components.get(&name).map(|c| c.kind) {
            Some(ComponentKind::Service) => {
                services.insert(name, Name::parse(lender)?);
            }
            Some(ComponentKind::Model) => {
                models.insert(name);
            }
            Some(ComponentKind::Job | ComponentKind::Terraform) | None => {}
        }
    }
    Ok((services, models))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    fn planned(n: &str, kind: ComponentKind, bytes: &str) -> Planned {
        Planned {
            name: name(n),
            kind,
            digest: Digest::of(bytes.as_bytes()),
        }
    }

    fn base(n: &str, kind: ComponentKind, bytes: &str, serving: bool) -> BaseRuns {
        BaseRuns {
            name: name(n),
            kind,
            digest: Digest::of(bytes.as_bytes()),
            serving,
        }
    }

    #[test]
    fn a_biome_borrows_what_the_base_serves_with_the_same_digest_and_never_a_job() {
        use ComponentKind::{Job, Model, Service};
        // (what the biome would run, what the base runs, borrowed services, borrowed models)
        type Case<'a> = (Vec<Planned>, Vec<BaseRuns>, &'a [&'a str], &'a [&'a str]);
        let cases: Vec<Case> = vec![
            // The same digest, healthy in the base: borrowed.
            (
                vec![planned("api", Service, "a1")],
                vec![base("api", Service, "a1", true)],
                &["api"],
                &[],
            ),
            // A changed service runs in the biome.
            (
                vec![planned("api", Service, "a2")],
                vec![base("api", Service, "a1", true)],
                &[],
                &[],
            ),
            // The base's instance is not healthy: the biome runs its own.
            (
                vec![planned("api", Service, "a1")],
                vec![base("api", Service, "a1", false)],
                &[],
                &[],
            ),
            // The base runs nothing (no daemon, never deployed).
            (vec![planned("api", Service, "a1")], vec![], &[], &[]),
            // Jobs always run: the biome's database is its own.
            (
                vec![planned("migrate", Job, "m1")],
                vec![base("migrate", Job, "m1", true)],
                &[],
                &[],
            ),
            // Models with the base's digest are answered by the base's registration.
            (
                vec![planned("grade", Model, "g1"), planned("score", Model, "s2")],
                vec![
                    base("grade", Model, "g1", true),
                    base("score", Model, "s1", true),
                ],
                &[],
                &["grade"],
            ),
            // The same name of another kind is not the same component.
            (
                vec![planned("api", Service, "a1")],
                vec![base("api", Job, "a1", true)],
                &[],
                &[],
            ),
            // Five services, one changed: four borrowed.
            (
                vec![
                    planned("a", Service, "a"),
                    planned("b", Service, "b"),
                    planned("c", Service, "c2"),
                    planned("d", Service, "d"),
                    planned("e", Service, "e"),
                ],
                vec![
                    base("a", Service, "a", true),
                    base("b", Service, "b", true),
                    base("c", Service, "c", true),
                    base("d", Service, "d", true),
                    base("e", Service, "e", true),
                ],
                &["a", "b", "d", "e"],
                &[],
            ),
        ];
        for (planned, base, services, models) in cases {
            let decided = decide(&planned, &base);
            let expected = Borrowing {
                services: services.iter().map(|n| name(n)).collect(),
                models: models.iter().map(|n| name(n)).collect(),
            };
            assert_eq!(decided, expected, "for {planned:?} beside {base:?}");
        }
    }

    #[test]
    fn the_progress_line_says_what_is_borrowed_and_what_runs() {
        use ComponentKind::{Job, Service};
        let dev = name("dev");
        let planned = vec![
            planned("api", Service, "a"),
            planned("web", Service, "w"),
            planned("migrate", Job, "m"),
        ];
        let nothing = describe(&Borrowing::default(), &dev, &planned);
        assert!(nothing.contains("running every component"), "{nothing}");
        let some = describe(
            &Borrowing {
                services: BTreeSet::from([name("api")]),
                models: BTreeSet::new(),
            },
            &dev,
            &planned,
        );
        assert_eq!(
            some,
            "overlay: borrowing `api` from `dev`; running `migrate`, `web`"
        );
    }
}
