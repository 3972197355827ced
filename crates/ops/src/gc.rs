//! `sandpit gc [--env ENV] [--dry-run]`: remove from the build store and the environment stores
//! what nothing needs any more.
//!
//! Kept in every store: the digests of each target's newest `keep_deployments` deployments, of
//! what each target runs now and of every deployment not finished yet
//! (`StateStore::retained_digests`); whatever the daemon reports running, or — when the daemon
//! is not running — what every biome's current deployment ran, since the daemon's next start
//! brings those back (the same records, so nothing a stopped daemon's biomes need is lost); the
//! models the endpoints serve by their saved registrations; and anything recorded while `gc`
//! was deciding. The build store (biomes run from it, deployments import from it) keeps what any
//! environment's retention keeps, and each component's newest build, which the next build of an
//! unchanged component reuses.

use std::collections::{BTreeMap, BTreeSet};

use sandpit_artifact::store::{ArtifactStore, GarbageReport, Retention};
use sandpit_domain::{Digest, Name};

use crate::daemon_connection;
use crate::deploy::environment;
use crate::deployment;
use crate::Context;

/// What was (or would be) collected in one store.
#[derive(Debug)]
pub struct StoreGarbage {
    /// `build`, or the environment whose store it is.
    pub store: String,
    /// How many digests the store still names afterwards.
    pub kept: usize,
    pub report: GarbageReport,
}

/// What `gc` collected: the build store's (`None` with `--env`) and each environment's.
#[derive(Debug)]
pub struct Collected {
    pub build: Option<StoreGarbage>,
    pub environments: Vec<StoreGarbage>,
    /// Whether the daemon answered; when not, what biomes ran was taken from the history.
    pub daemon_running: bool,
}

pub async fn gc(context: &Context, env: Option<&str>, dry_run: bool) -> anyhow::Result<Collected> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let only = env.map(|raw| environment(&spec, raw)).transpose()?;
    let build_store = ArtifactStore::open(&context.artifact_store_root(project.as_str()))?;
    let env_stores: Vec<(Name, ArtifactStore)> = spec
        .environments
        .keys()
        .filter(|e| only.as_ref().is_none_or(|only| only == *e))
        .map(|e| Ok((e.clone(), deployment::env_store(context, &project, e)?)))
        .collect::<anyhow::Result<_>>()?;
    // Before anything is gathered: a name recorded from here on is kept whatever it refers to.
    let build_since = build_store.now()?;
    let mut env_since = BTreeMap::new();
    for (env, store) in &env_stores {
        env_since.insert(env.clone(), store.now()?);
    }

    // What runs now, by environment. Belt and braces: the records should say the same.
    let mut running: BTreeSet<(Name, Digest)> = BTreeSet::new();
    let daemon_running = match daemon_connection::list_if_running(context, &project).await? {
        Some(biomes) => {
            for biome in biomes {
                for component in biome.components {
                    running.insert((biome.env.clone(), component.digest));
                }
            }
            true
        }
        None => false,
    };
    // Models are not processes: the endpoints serve them from the stores by their registrations.
    for model in crate::models::served_models(context, &project)? {
        if let Ok(digest) = Digest::parse(&model.digest) {
            running.insert((model.env, digest));
        }
    }

    // Retention per environment, for every environment the spec or the history knows: a biome
    // of an environment since removed from sandpit.toml may still run from the build store, and
    // with no `keep_deployments` to go by, all of such an environment's deployments are kept.
    let state = deployment::state_store(context)?;
    let mut keep_counts: BTreeMap<String, usize> = state
        .history(project.as_str(), None)?
        .into_iter()
        .map(|d| (d.env, usize::MAX))
        .collect();
    for (name, environment) in &spec.environments {
        keep_counts.insert(name.to_string(), environment.keep_deployments as usize);
    }
    let mut retained: BTreeMap<String, BTreeSet<Digest>> = BTreeMap::new();
    for (env, keep) in &keep_counts {
        let digests = state
            .retained_digests(project.as_str(), env, *keep)?
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect();
        retained.insert(env.clone(), digests);
    }
    drop(state);

    let build = match only {
        Some(_) => None,
        None => {
            let mut digests: BTreeSet<Digest> = retained.values().flatten().cloned().collect();
            digests.extend(running.iter().map(|(_, d)| d.clone()));
            let retention = Retention {
                digests,
                newest_builds: true,
                recorded_since: Some(build_since),
            };
            Some(collect("build", &build_store, &retention, dry_run)?)
        }
    };
    let mut environments = Vec::new();
    for (env, store) in &env_stores {
        let mut digests = retained.get(env.as_str()).cloned().unwrap_or_default();
        digests.extend(
            running
                .iter()
                .filter(|(e, _)| e == env)
                .map(|(_, d)| d.clone()),
        );
        let retention = Retention {
            digests,
            newest_builds: false,
            recorded_since: env_since.get(env).copied(),
        };
        environments.push(collect(env.as_str(), store, &retention, dry_run)?);
    }
    Ok(Collected {
        build,
        environments,
        daemon_running,
    })
}

fn collect(
    label: &str,
    store: &ArtifactStore,
    retention: &Retention,
    dry_run: bool,
) -> anyhow::Result<StoreGarbage> {
    let report = store.collect_garbage(retention, dry_run).map_err(|error| {
        anyhow::Error::new(error).context(format!(
            "cannot collect the garbage of the {} store at {}",
            if label == "build" {
                "build".to_owned()
            } else {
                format!("`{label}`")
            },
            store.root().display()
        ))
    })?;
    Ok(StoreGarbage {
        store: label.to_owned(),
        kept: report.kept_digests.len(),
        report,
    })
}
