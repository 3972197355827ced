//! `sandpit trace SHA|DIGEST|ARTIFACT`: where it runs now, every deployment that ever included it,
//! and the provenance of its artifacts.

use std::collections::BTreeMap;

use sandpit_artifact::provenance::Provenance;
use sandpit_artifact::store::{ArtifactCheck, ArtifactStore};
use sandpit_domain::ArtifactName;
use sandpit_state::Deployment;
use serde::Serialize;

use crate::daemon_connection;
use crate::deployment::{self, target_label};
use crate::Context;

#[derive(Debug, Serialize)]
pub struct Running {
    pub target: String,
    pub component: String,
    pub artifact: String,
    pub digest: String,
    pub sha: String,
    /// `process` (run by the daemon) or `model` (served by the environment's model endpoint).
    pub served_as: &'static str,
}

/// One stored copy of a matching artifact, checked against its digest.
#[derive(Debug)]
pub struct StoredCopy {
    /// `build`, or the environment whose store holds it.
    pub store: String,
    pub check: ArtifactCheck,
}

#[derive(Debug)]
pub struct TraceReport {
    pub running: Vec<Running>,
    pub deployments: Vec<Deployment>,
    /// One record per matching artifact name (from an intact copy when there is one).
    pub provenance: Vec<Provenance>,
    /// Every stored copy of a matching artifact, with its integrity: a damaged copy is reported
    /// here, never a reason for the trace to fail.
    pub stored: Vec<StoredCopy>,
}

/// What the needle is.
enum Needle {
    Commit(String),
    Digest(String),
    Artifact(String),
}

impl Needle {
    fn parse(raw: &str) -> anyhow::Result<Needle> {
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(digest) = raw.strip_prefix("sha256:") {
            if digest.len() == 64 && hex(digest) {
                return Ok(Needle::Digest(digest.to_ascii_lowercase()));
            }
        } else if raw.ends_with(".zip") {
            return Ok(Needle::Artifact(raw.to_owned()));
        } else if raw.len() == 64 && hex(raw) {
            return Ok(Needle::Digest(raw.to_ascii_lowercase()));
        } else if (7..=40).contains(&raw.len()) && hex(raw) {
            return Ok(Needle::Commit(raw.to_ascii_lowercase()));
        }
        crate::fail!(InvalidInput, "`{raw}` is not a commit (7 to 40 hex), a digest (sha256:<64 hex>) or an artifact name (<component>-<sha>.zip)")
    }

    fn matches(&self, artifact: &str, digest: &str, version: &str) -> bool {
        match self {
            Needle::Commit(sha) => version.starts_with(sha.as_str()),
            Needle::Digest(hex) => digest.trim_start_matches("sha256:") == hex,
            Needle::Artifact(name) => artifact == name,
        }
    }
}

pub async fn trace(context: &Context, raw: &str) -> anyhow::Result<TraceReport> {
    let needle = Needle::parse(raw.trim())?;
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();

    let mut running = Vec::new();
    if let Some(biomes) = daemon_connection::list_if_running(context, &project).await? {
        for biome in biomes {
            for component in &biome.components {
                // A borrowed service runs in its lender, whose own row says so.
                if component.borrowed_from.is_some() {
                    continue;
                }
                // A reused artifact keeps running under its first name; its digest still matches.
                let version = component
                    .artifact
                    .trim_end_matches(".zip")
                    .rsplit('-')
                    .next()
                    .unwrap_or_default();
                let digest = component.digest.to_string();
                if needle.matches(&component.artifact, &digest, &biome.sha)
                    || needle.matches(&component.artifact, &digest, version)
                {
                    running.push(Running {
                        target: target_label(&biome.env, &biome.biome),
                        component: component.name.to_string(),
                        artifact: component.artifact.clone(),
                        digest,
                        sha: biome.sha.clone(),
                        served_as: "process",
                    });
                }
            }
        }
    }

    // Models are not processes: the environment's endpoint serves them, by its registrations.
    for served in crate::models::served_models(context, &project)? {
        let version = ArtifactName::parse(&served.artifact)
            .map(|name| name.version.to_string())
            .unwrap_or_default();
        if needle.matches(&served.artifact, &served.digest, &version) {
            let biome = served.biome.clone().unwrap_or_else(|| served.env.clone());
            running.push(Running {
                target: target_label(&served.env, &biome),
                component: served.model.clone(),
                artifact: served.artifact.clone(),
                digest: served.digest.clone(),
                sha: version,
                served_as: "model",
            });
        }
    }

    let state = deployment::state_store(context)?;
    let deployments: Vec<Deployment> = state
        .history(project.as_str(), None)?
        .into_iter()
        .filter(|d| {
            d.components
                .iter()
                .any(|c| needle.matches(&c.artifact, &c.digest, &d.sha))
        })
        .collect();

    let mut provenance: BTreeMap<String, Provenance> = BTreeMap::new();
    let mut stored = Vec::new();
    let mut stores = vec![(
        "build".to_owned(),
        context.artifact_store_root(project.as_str()),
    )];
    for env in spec.environments.keys() {
        stores.push((
            env.to_string(),
            deployment::env_store_root(context, &project, env),
        ));
    }
    for (label, root) in stores.into_iter().filter(|(_, r)| r.exists()) {
        let check = ArtifactStore::open(&root)?.check_all()?;
        for artifact in check.artifacts {
            let name = artifact.name.file_name();
            if !needle.matches(
                &name,
                &artifact.provenance.digest.to_string(),
                &artifact.name.version.to_string(),
            ) {
                continue;
            }
            let intact = artifact.integrity.is_intact();
            match provenance.entry(name) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(artifact.provenance.clone());
                }
                std::collections::btree_map::Entry::Occupied(mut entry) if intact => {
                    entry.insert(artifact.provenance.clone());
                }
                std::collections::btree_map::Entry::Occupied(_) => {}
            }
            stored.push(StoredCopy {
                store: label.clone(),
                check: artifact,
            });
        }
    }
    if running.is_empty() && deployments.is_empty() && stored.is_empty() {
        crate::fail!(
            NotFound,
            "nothing in project `{project}` matches `{}`: no running component, no deployment and no stored artifact\nhint: `sandpit history ENV` lists deployments with their commits; `sandpit artifacts` lists artifacts and digests",
            raw.trim()
        );
    }
    Ok(TraceReport {
        running,
        deployments,
        provenance: provenance.into_values().collect(),
        stored,
    })
}
