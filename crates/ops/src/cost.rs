//! What each biome costs now (`ls` and `status`): its processes, their CPU time and memory (as
//! the daemon measured them), its database's size on the environment's shared instance and the
//! memory its models hold on the environment's endpoint.
//!
//! Reads never start anything: the instance and the endpoint are asked only when the daemon
//! reports them running, each once per environment for all the biomes listed (one query, one
//! request), within the usual timeouts. What cannot be told is `None`, shown as `-`. The size
//! of an idle biome's database is taken as last measured ([`remembered_sizes`]): measuring
//! hundreds of sleeping biomes' databases on every `ls` would cost more than the whole `ls` may.

use std::collections::{BTreeMap, BTreeSet};

use sandpit_domain::{ComponentState, Name};
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_spec::Spec;

use crate::daemon_connection;
use crate::Context;

pub mod remembered_sizes;

/// What one biome (or environment base) costs now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Live processes of its components' process groups (each component and its log writer).
    pub processes: u32,
    /// CPU time they have used, user and system.
    pub cpu_seconds: f64,
    /// Resident memory they hold.
    pub rss_bytes: u64,
    /// `pg_database_size` of its database; `None` when it has none or the instance is not
    /// running (or does not answer).
    pub database_bytes: Option<u64>,
    /// Memory of the loaded models charged to it on the environment's endpoint (a digest the
    /// base also serves is the base's); `None` when the endpoint is not running or cannot say.
    pub model_bytes: Option<u64>,
}

/// Sizes of databases by name, per environment whose instance answered.
pub type DatabaseSizes = BTreeMap<Name, BTreeMap<String, u64>>;

/// Model memory per registration (`_base` or a biome's name), per environment whose endpoint
/// answered.
pub type ModelMemory = BTreeMap<Name, BTreeMap<String, u64>>;

/// Each biome's cost from what was measured (pure). Keyed by the biome's name, which is unique
/// in a project (an environment's base is named after its environment).
pub fn combine(
    biomes: &[BiomeStatus],
    databases: &DatabaseSizes,
    models: &ModelMemory,
) -> BTreeMap<Name, Cost> {
    biomes
        .iter()
        .map(|biome| {
            let usage = biome.usage.unwrap_or_default();
            let database_bytes = biome
                .database
                .as_ref()
                .and_then(|database| databases.get(&biome.env)?.get(&database.name).copied());
            let registration = if biome.biome == biome.env {
                crate::models::BASE
            } else {
                biome.biome.as_str()
            };
            // A running endpoint that has no registration for the biome holds nothing for it.
            let model_bytes = models
                .get(&biome.env)
                .map(|charged| charged.get(registration).copied().unwrap_or(0));
            let cost = Cost {
                processes: usage.processes,
                cpu_seconds: usage.cpu_seconds,
                rss_bytes: usage.rss_bytes,
                database_bytes,
                model_bytes,
            };
            (biome.biome.clone(), cost)
        })
        .collect()
}

/// The environment-level instances (`postgres`, `models`) of `project` the daemon reports
/// running, as (environment, instance name); none when no daemon runs or it cannot say.
async fn running_instances(context: &Context, project: &Name) -> BTreeSet<(Name, String)> {
    let Ok(Some(pong)) = daemon_connection::ping_if_running(context).await else {
        return BTreeSet::new();
    };
    pong.instances
        .into_iter()
        .filter(|i| &i.key.project == project && i.state == ComponentState::Healthy)
        .map(|i| (i.key.env, i.key.name.to_string()))
        .collect()
}

/// What each of `biomes` costs now (see the module documentation). Never fails: what cannot be
/// measured is `None`.
pub async fn costs(context: &Context, spec: &Spec, biomes: &[BiomeStatus]) -> BTreeMap<Name, Cost> {
    if biomes.is_empty() {
        return BTreeMap::new();
    }
    let running = running_instances(context, &spec.project.name).await;
    let is_running = |env: &Name, name: &str| running.contains(&(env.clone(), name.to_owned()));
    let envs: BTreeSet<&Name> = biomes.iter().map(|b| &b.env).collect();
    let project = spec.project.name.as_str();
    let remembered = remembered_sizes::load(context, project);
    let now = remembered_sizes::now_ms();
    let mut measured = BTreeMap::new();
    let mut databases = DatabaseSizes::new();
    let mut models = ModelMemory::new();
    for env in envs {
        // An idle biome's database is shown as last measured; the others are asked for.
        let mut known = BTreeMap::new();
        let mut to_measure = Vec::new();
        for biome in biomes.iter().filter(|b| &b.env == env) {
            let Some(database) = &biome.database else {
                continue;
            };
            let idle = biome.usage.is_some_and(|u| u.processes == 0);
            let before = remembered
                .get(env.as_str())
                .and_then(|r| r.get(&database.name));
            match remembered_sizes::reusable(before, idle, now) {
                Some(bytes) => {
                    known.insert(database.name.clone(), bytes);
                }
                None => to_measure.push(database.name.clone()),
            }
        }
        if !to_measure.is_empty() {
            let embedded_running = is_running(env, "postgres");
            if let Some(sizes) =
                crate::database::sizes_if_running(context, spec, env, &to_measure, embedded_running)
                    .await
            {
                known.extend(sizes.clone());
                measured.insert(env.to_string(), sizes);
            }
        }
        if !known.is_empty() {
            databases.insert(env.clone(), known);
        }
        if is_running(env, "models") {
            if let Some(charged) =
                crate::models::usage_of_running_endpoint(context, &spec.project.name, env).await
            {
                models.insert(env.clone(), charged);
            }
        }
    }
    remembered_sizes::remember(context, project, &measured, now);
    combine(biomes, &databases, &models)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sandpit_runtime::protocol::{DatabaseInfo, Usage};

    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn biome(env: &str, biome: &str, database: Option<&str>, usage: Option<Usage>) -> BiomeStatus {
        BiomeStatus {
            project: name("geo"),
            biome: name(biome),
            env: name(env),
            sha: "0123456789ab".to_owned(),
            state: "healthy".to_owned(),
            components: Vec::new(),
            data_dir: PathBuf::from("/data"),
            database: database.map(|d| DatabaseInfo {
                name: d.to_owned(),
                template: "geo_template".to_owned(),
                url_file: None,
            }),
            ready_wait_ms: None,
            sleeping_since: None,
            last_request: None,
            idle_timeout_secs: None,
            usage,
        }
    }

    #[test]
    fn each_biome_gets_its_processes_its_database_and_its_registrations_memory() {
        let usage = Usage {
            processes: 2,
            cpu_seconds: 1.5,
            rss_bytes: 40_000_000,
        };
        let biomes = [
            biome("dev", "alice", Some("geo_alice"), Some(usage)),
            // The base of dev: its registration is `_base`.
            biome("dev", "dev", Some("geo_dev"), None),
            // Registered with no model of its own: the running endpoint holds nothing for it.
            biome("dev", "bob", None, Some(Usage::default())),
            // Its database is not (or no longer) on the instance.
            biome("dev", "carol", Some("geo_carol"), None),
            // test's instance and endpoint are not running.
            biome("test", "dave", Some("geo_dave"), Some(usage)),
        ];
        let databases = DatabaseSizes::from([(
            name("dev"),
            BTreeMap::from([
                ("geo_alice".to_owned(), 8_000_000),
                ("geo_dev".to_owned(), 9_000_000),
            ]),
        )]);
        let models = ModelMemory::from([(
            name("dev"),
            BTreeMap::from([
                ("_base".to_owned(), 300),
                ("alice".to_owned(), 20),
                // The base is charged as `_base`, never under its own name.
                ("dev".to_owned(), 99_999),
            ]),
        )]);
        let costs = combine(&biomes, &databases, &models);
        let check = |biome: &str, expect: Cost| assert_eq!(costs[&name(biome)], expect, "{biome}");
        check(
            "alice",
            Cost {
                processes: 2,
                cpu_seconds: 1.5,
                rss_bytes: 40_000_000,
                database_bytes: Some(8_000_000),
                model_bytes: Some(20),
            },
        );
        check(
            "dev",
            Cost {
                database_bytes: Some(9_000_000),
                model_bytes: Some(300),
                ..Cost::default()
            },
        );
        check(
            "bob",
            Cost {
                model_bytes: Some(0),
                ..Cost::default()
            },
        );
        check(
            "carol",
            Cost {
                model_bytes: Some(0),
                ..Cost::default()
            },
        );
        check(
            "dave",
            Cost {
                processes: 2,
                cpu_seconds: 1.5,
                rss_bytes: 40_000_000,
                database_bytes: None,
                model_bytes: None,
            },
        );
        assert_eq!(costs.len(), 5);
        assert!(combine(&[], &databases, &models).is_empty());
    }
}
