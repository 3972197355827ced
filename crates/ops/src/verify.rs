//! `sandpit verify [ENV]`: re-hashes every stored artifact (the build store and every
//! environment's store, or one environment's) and the artifact of every component that runs,
//! and reports each one that no longer matches its digest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sandpit_artifact::store::{ArtifactStore, Integrity, StoreCheck};
use sandpit_domain::{ArtifactName, Digest};

use crate::daemon_connection;
use crate::deployment::{env_store_root, target_label};
use crate::Context;

/// One store, checked.
#[derive(Debug)]
pub struct StoreVerification {
    /// `build`, or the environment's name.
    pub store: String,
    pub root: PathBuf,
    pub check: StoreCheck,
}

/// One running component's artifact, checked in the store it runs from.
#[derive(Debug)]
pub struct RunningVerification {
    pub target: String,
    pub component: String,
    pub artifact: String,
    /// The digest the component was started from.
    pub digest: Digest,
    /// `build` (biomes run from the build store) or the environment's name (bases).
    pub store: String,
    /// `None` when the store no longer has the artifact at all.
    pub integrity: Option<Integrity>,
}

impl RunningVerification {
    pub fn is_intact(&self) -> bool {
        self.integrity.as_ref().is_some_and(Integrity::is_intact)
    }
}

#[derive(Debug)]
pub struct VerifyReport {
    pub stores: Vec<StoreVerification>,
    pub running: Vec<RunningVerification>,
    /// Whether the daemon answered; when it does not, nothing runs to check.
    pub daemon_running: bool,
}

impl VerifyReport {
    /// How many artifacts (stored or running) are not intact, plus unreadable records.
    pub fn problems(&self) -> usize {
        let stored: usize = self
            .stores
            .iter()
            .map(|s| {
                s.check
                    .artifacts
                    .iter()
                    .filter(|a| !a.integrity.is_intact())
                    .count()
                    + s.check.unreadable_records.len()
            })
            .sum();
        stored + self.running.iter().filter(|r| !r.is_intact()).count()
    }
}

/// What `verify --repair` did for one damaged stored artifact.
#[derive(Debug)]
pub struct Repair {
    /// `build` or the environment whose store held the damaged copy.
    pub store: String,
    pub artifact: String,
    /// The store the intact bytes were copied from; `None` when no store had them.
    pub from: Option<String>,
    /// Why it could not be repaired.
    pub error: Option<String>,
}

/// Replaces every damaged stored artifact with an intact copy of the same digest from another
/// store (the build store first), moving the damaged file to the store's `quarantine/`. What no
/// store holds intact is reported with what to do instead (rebuild it).
pub async fn repair(context: &Context, env: Option<&str>) -> anyhow::Result<Vec<Repair>> {
    let report = verify(context, None).await?;
    let only = env.map(str::to_owned);
    let mut repairs = Vec::new();
    for damaged_store in &report.stores {
        if only.as_ref().is_some_and(|o| *o != damaged_store.store) {
            continue;
        }
        for artifact in &damaged_store.check.artifacts {
            if !matches!(
                artifact.integrity,
                Integrity::Modified { .. } | Integrity::Missing
            ) {
                continue;
            }
            let digest = &artifact.provenance.digest;
            let source = report.stores.iter().find(|other| {
                other.store != damaged_store.store
                    && other
                        .check
                        .artifacts
                        .iter()
                        .any(|a| a.provenance.digest == *digest && a.integrity.is_intact())
            });
            let mut repair = Repair {
                store: damaged_store.store.clone(),
                artifact: artifact.name.file_name(),
                from: source.map(|s| s.store.clone()),
                error: None,
            };
            match source {
                Some(source) => {
                    let into = ArtifactStore::open(&damaged_store.root)?;
                    let from = ArtifactStore::open(&source.root)?;
                    if let Err(error) = into.repair(&artifact.name, &from) {
                        repair.error = Some(error.to_string());
                    }
                }
                None => {
                    repair.error = Some(format!(
                        "no store holds {} intact\nhint: rebuild it with `sandpit build --sha {}`, then run `sandpit verify --repair` again",
                        digest,
                        artifact.name.version
                    ));
                }
            }
            repairs.push(repair);
        }
    }
    Ok(repairs)
}

pub async fn verify(context: &Context, env: Option<&str>) -> anyhow::Result<VerifyReport> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let only = env
        .map(|raw| crate::deploy::environment(&spec, raw))
        .transpose()?;
    let mut roots: Vec<(String, PathBuf)> = Vec::new();
    if only.is_none() {
        roots.push((
            "build".to_owned(),
            context.artifact_store_root(project.as_str()),
        ));
    }
    for name in spec.environments.keys() {
        if only.as_ref().is_none_or(|o| o == name) {
            roots.push((name.to_string(), env_store_root(context, &project, name)));
        }
    }
    let mut stores = Vec::new();
    for (store, root) in roots {
        let check = if root.exists() {
            ArtifactStore::open(&root)?.check_all()?
        } else {
            StoreCheck::default()
        };
        stores.push(StoreVerification { store, root, check });
    }

    let listed = daemon_connection::list_if_running(context, &project).await?;
    let daemon_running = listed.is_some();
    let mut running = Vec::new();
    let mut opened: BTreeMap<String, ArtifactStore> = BTreeMap::new();
    if let Some(biomes) = listed {
        for biome in biomes {
            if only.as_ref().is_some_and(|o| *o != biome.env) {
                continue;
            }
            // Biomes run what `up` built, from the build store; bases run from their
            // environment's own store.
            let (store_label, root) = if biome.biome == biome.env {
                (
                    biome.env.to_string(),
                    env_store_root(context, &project, &biome.env),
                )
            } else {
                (
                    "build".to_owned(),
                    context.artifact_store_root(project.as_str()),
                )
            };
            for component in &biome.components {
                let integrity = match ArtifactName::parse(&component.artifact) {
                    Some(name) if root.exists() => {
                        let store = match opened.get(&store_label) {
                            Some(store) => store.clone(),
                            None => {
                                let store = ArtifactStore::open(&root)?;
                                opened.insert(store_label.clone(), store.clone());
                                store
                            }
                        };
                        store.check(&name)?.map(|check| {
                            if check.provenance.digest == component.digest {
                                check.integrity
                            } else {
                                // The name records other bytes than the component started from.
                                Integrity::Modified {
                                    actual: check.provenance.digest,
                                }
                            }
                        })
                    }
                    _ => None,
                };
                running.push(RunningVerification {
                    target: target_label(&biome.env, &biome.biome),
                    component: component.name.to_string(),
                    artifact: component.artifact.clone(),
                    digest: component.digest.clone(),
                    store: store_label.clone(),
                    integrity,
                });
            }
        }
    }
    // Models are served, not run: check what each endpoint's registrations point at.
    for served in crate::models::served_models(context, &project)? {
        if only.as_ref().is_some_and(|o| *o != served.env) {
            continue;
        }
        let (store_label, root) = match &served.biome {
            None => (
                served.env.to_string(),
                env_store_root(context, &project, &served.env),
            ),
            Some(_) => (
                "build".to_owned(),
                context.artifact_store_root(project.as_str()),
            ),
        };
        let digest = Digest::parse(&served.digest)?;
        let integrity = match ArtifactName::parse(&served.artifact) {
            Some(name) if root.exists() => ArtifactStore::open(&root)?.check(&name)?.map(|check| {
                if check.provenance.digest == digest {
                    check.integrity
                } else {
                    Integrity::Modified {
                        actual: check.provenance.digest,
                    }
                }
            }),
            _ => None,
        };
        let biome = served.biome.clone().unwrap_or_else(|| served.env.clone());
        running.push(RunningVerification {
            target: target_label(&served.env, &biome),
            component: served.model.clone(),
            artifact: served.artifact.clone(),
            digest,
            store: store_label,
            integrity,
        });
    }
    Ok(VerifyReport {
        stores,
        running,
        daemon_running,
    })
}
