//! What a biome or an environment's base should run: the desired state handed to the daemon,
//! made from a `sandpit.toml` and the artifacts (by digest) chosen for each component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use sandpit_domain::{ComponentKind, Digest, Name};
use sandpit_runtime::protocol::{BiomeSpec, BiomeStatus, ComponentSpec, ReplyBody, Request};
use sandpit_spec::Spec;

use crate::daemon_connection;
use crate::Context;

/// One component's chosen artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub artifact: String,
    pub digest: Digest,
}

/// Everything needed to make a target run something.
pub struct Release<'a> {
    pub spec: &'a Spec,
    pub env: Name,
    /// The biome, or the environment's own name for its base deployment.
    pub biome: Name,
    pub version: String,
    /// The store the digests are read from.
    pub store: &'a Path,
    pub artifacts: BTreeMap<Name, Chosen>,
    pub database: Option<crate::database::BiomeDatabaseGrant>,
    /// More variables for every component (e.g. `SANDPIT_MODELS_URL`).
    pub extra_env: BTreeMap<String, String>,
}

impl Release<'_> {
    /// The daemon's view: components in start order, with the database and model endpoint
    /// variables injected.
    pub fn desired_state(&self) -> anyhow::Result<BiomeSpec> {
        let spec = self.spec;
        let injected = self.extra_env.clone();
        // Read by the daemon from their owner-only files when it starts a component: the
        // desired state it saves holds no secret.
        let secret_env: BTreeMap<String, PathBuf> = self
            .database
            .as_ref()
            .map(|d| d.secret_env.clone())
            .unwrap_or_default();
        let mut components = Vec::new();
        for component in spec.start_order() {
            if component.kind == ComponentKind::Model {
                // Served by the environment's model endpoint, not run as a process.
                continue;
            }
            let Some(chosen) = self.artifacts.get(&component.name) else {
                bail!("no artifact was chosen for `{}`", component.name);
            };
            components.push(ComponentSpec {
                name: component.name.clone(),
                kind: component.kind,
                artifact: chosen.artifact.clone(),
                digest: chosen.digest.clone(),
                run: component.run.clone().unwrap_or_default(),
                health: component.health.clone(),
                start_timeout_secs: component.start_timeout.as_secs(),
                env: component
                    .env
                    .clone()
                    .into_iter()
                    .chain(injected.clone())
                    // A variable of the component's own named like a secret one is overridden.
                    .filter(|(name, _)| !secret_env.contains_key(name))
                    .collect(),
                secret_env: secret_env.clone(),
                depends_on: component
                    .depends_on
                    .iter()
                    .filter(|d| {
                        spec.components
                            .get(*d)
                            .is_some_and(|c| c.kind != ComponentKind::Model)
                    })
                    .cloned()
                    .collect(),
            });
        }
        Ok(BiomeSpec {
            project: spec.project.name.clone(),
            env: self.env.clone(),
            biome: self.biome.clone(),
            version: self.version.clone(),
            store: self.store.to_path_buf(),
            max_artifact_size: spec.project.max_artifact_size.0,
            components,
            database: self.database.as_ref().map(|d| d.info.clone()),
        })
    }

    /// Hands the desired state to the daemon and waits until it has converged (or failed).
    pub async fn apply(
        &self,
        context: &Context,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> anyhow::Result<BiomeStatus> {
        let request = Request::Up {
            biome: self.desired_state()?,
        };
        match daemon_connection::request(context, &request, on_event).await? {
            ReplyBody::Biome(status) => Ok(status),
            _ => Err(daemon_connection::unexpected_answer(
                "the status of the biome",
            )),
        }
    }
}
