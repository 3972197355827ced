//! `sandpit trace SHA|DIGEST|ARTIFACT`: where it runs now, every deployment that ever included it,
//! and the provenance of its artifacts.

use std::collections::BTreeMap;

use anyhow::bail;
use sandpit_artifact::provenance::Provenance;
use sandpit_artifact::store::ArtifactStore;
use sandpit_runtime::protocol::{ReplyBody, Request};
use sandpit_state::Deployment;
use serde::Serialize;

use crate::daemon_connection;
use crate::deployment::{self, target_label};
use crate::project::ProjectDir;
use crate::Context;

#[derive(Debug, Serialize)]
pub struct Running {
    pub target: String,
    pub component: String,
    pub artifact: String,
    pub digest: String,
    pub sha: String,
}

#[derive(Debug)]
pub struct TraceReport {
    pub running: Vec<Running>,
    pub deployments: Vec<Deployment>,
    pub provenance: Vec<Provenance>,
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
        bail!("`{raw}` is not a commit (7 to 40 hex), a digest (sha256:<64 hex>) or an artifact name (<component>-<sha>.zip)")
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
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let project = spec.project.name.clone();

    let mut running = Vec::new();
    let request = Request::List {
        project: Some(project.clone()),
    };
    if let Some(ReplyBody::Biomes { biomes }) =
        daemon_connection::request_if_running(context, &request).await?
    {
        for biome in biomes {
            for component in &biome.components {
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
                    });
                }
            }
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
    let mut stores = vec![context.artifact_store_root(project.as_str())];
    for env in spec.environments.keys() {
        stores.push(
            deployment::env_store(context, &project, env)?
                .root()
                .to_path_buf(),
        );
    }
    for root in stores.into_iter().filter(|r| r.exists()) {
        let store = ArtifactStore::open(&root)?;
        for artifact in store.list()? {
            let name = artifact.name.file_name();
            if needle.matches(
                &name,
                &artifact.digest.to_string(),
                &artifact.name.version.to_string(),
            ) {
                provenance.entry(name).or_insert(artifact.provenance);
            }
        }
    }
    Ok(TraceReport {
        running,
        deployments,
        provenance: provenance.into_values().collect(),
    })
}
