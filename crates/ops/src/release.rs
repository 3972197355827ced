//! What a biome or an environment's base should run: the desired state handed to the daemon,
//! made from a `sandpit.toml` and the artifacts (by digest) chosen for each component.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::bail;
use sandpit_domain::{Digest, Name};
use sandpit_runtime::protocol::{BiomeSpec, BiomeStatus, ComponentSpec};
use sandpit_spec::Spec;

use crate::daemon_connection;
use crate::Context;

/// A component's variables, from the least to the most binding: its own `env` from
/// `sandpit.toml`, then its configuration (`sandpit config`: plain values, and secrets read from
/// files at start), then what sandpit injects (`injected`, e.g. `SANDPIT_MODELS_URL`, and the
/// database URLs, which are secrets). A secret removes a plain variable of the same name, so the
/// value the daemon reads from its file is the one the process gets. (The daemon adds `PORT`
/// and the other `SANDPIT_*` variables last, over all of these.)
fn component_env(
    own: &BTreeMap<String, String>,
    configured: crate::config::ComponentVariables,
    injected: &BTreeMap<String, String>,
    database_secrets: &BTreeMap<String, PathBuf>,
) -> (BTreeMap<String, String>, BTreeMap<String, PathBuf>) {
    let mut secret_env = configured.secret_env;
    secret_env.extend(database_secrets.clone());
    let mut env = own.clone();
    env.extend(configured.env);
    env.extend(injected.clone());
    env.retain(|name, _| !secret_env.contains_key(name));
    (env, secret_env)
}

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
    /// Its registration with the model endpoint, unloaded while it sleeps.
    pub models: Option<sandpit_runtime::protocol::ModelsRegistration>,
    /// The target's configuration variables, per component (`sandpit config`).
    pub config: crate::config::Injected,
    /// Overlay biomes: services served by another biome's running instance (the environment's
    /// base), by name → that biome; not run by this target (`ops::overlay`).
    pub borrowed: BTreeMap<Name, Name>,
    /// Overlay biomes: models not registered for the biome, answered by the base's version.
    pub shared_models: BTreeSet<Name>,
    /// What its terraform components gave the components depending on them (applied before the
    /// release is handed to the daemon, `ops::terraform`).
    pub terraform: crate::terraform::TerraformOutputs,
}

impl Release<'_> {
    /// Whose configuration this release gets: its environment's, and its biome's.
    pub(crate) fn config_target(&self) -> crate::config::ConfigTarget {
        crate::config::ConfigTarget {
            env: self.env.clone(),
            biome: self.biome.clone(),
        }
    }

    /// Who serves a component this release does not run itself: the lender of a borrowed
    /// service, the environment (its base's registration) for a shared model.
    pub fn borrowed_from(&self, component: &Name) -> Option<&Name> {
        self.borrowed
            .get(component)
            .or_else(|| self.shared_models.contains(component).then_some(&self.env))
    }

    /// The daemon's view: components in start order, with the configuration, database and
    /// model endpoint variables injected (see [`component_env`] for which wins).
    /// Borrowed services are left out (see [`BiomeSpec::borrowed`]).
    pub fn desired_state(&self) -> anyhow::Result<BiomeSpec> {
        let spec = self.spec;
        // Read by the daemon from their owner-only files when it starts a component: the
        // desired state it saves holds no secret.
        let database_secrets: BTreeMap<String, PathBuf> = self
            .database
            .as_ref()
            .map(|d| d.secret_env.clone())
            .unwrap_or_default();
        let mut components = Vec::new();
        for component in spec.start_order() {
            if !component.kind.runs_as_process() {
                // Models are served by the environment's model endpoint; terraform components
                // were applied before the release is handed over (their outputs are in `env`).
                continue;
            }
            if self.borrowed.contains_key(&component.name) {
                // Runs in its lender; the daemon points `SANDPIT_URL_*` there.
                continue;
            }
            let Some(chosen) = self.artifacts.get(&component.name) else {
                bail!("no artifact was chosen for `{}`", component.name);
            };
            let mut configured = self.config.component(&component.name);
            // A terraform component's outputs are configuration of its dependants (they win
            // over `config set` of the same name: they are what the infrastructure is).
            let outputs = self.terraform.for_component(component);
            configured.env.extend(outputs.env);
            configured.secret_env.extend(outputs.secret_env);
            configured
                .env
                .retain(|name, _| !configured.secret_env.contains_key(name));
            let (env, secret_env) = component_env(
                &component.env,
                configured,
                &self.extra_env,
                &database_secrets,
            );
            components.push(ComponentSpec {
                name: component.name.clone(),
                kind: component.kind,
                artifact: chosen.artifact.clone(),
                digest: chosen.digest.clone(),
                run: component.run.clone().unwrap_or_default(),
                health: component.health.clone(),
                start_timeout_secs: component.start_timeout.as_secs(),
                env,
                secret_env,
                depends_on: component
                    .depends_on
                    .iter()
                    .filter(|d| {
                        spec.components
                            .get(*d)
                            .is_some_and(|c| c.kind.runs_as_process())
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
            idle_timeout_secs: self.idle_timeout().map(|span| span.as_secs()),
            gateway_port: spec.gateway.port,
            models: self.models.clone(),
            borrowed: self.borrowed.clone(),
        })
    }

    /// How long the target may be idle before it sleeps: a biome's from `[biomes]`, a base's
    /// only when its environment opts in.
    fn idle_timeout(&self) -> Option<sandpit_domain::Span> {
        if self.biome == self.env {
            self.spec
                .environments
                .get(&self.env)
                .and_then(|e| e.idle_timeout)
        } else {
            self.spec.biomes.idle_timeout
        }
    }

    /// Hands the desired state to the daemon and waits until it has converged (or failed).
    pub async fn apply(
        &self,
        context: &Context,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> anyhow::Result<BiomeStatus> {
        let desired = self.desired_state()?;
        let client = daemon_connection::started(context).await?;
        daemon_connection::answer(client.up(desired, on_event).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ComponentVariables;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, PathBuf> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), PathBuf::from(v)))
            .collect()
    }

    #[test]
    fn configuration_wins_over_sandpit_toml_and_loses_to_what_sandpit_injects() {
        let own = map(&[
            ("GREETING", "from-toml"),
            ("MODE", "toml"),
            ("TOKEN", "toml-token"),
            ("DATABASE_URL", "postgres://own"),
        ]);
        let configured = ComponentVariables {
            env: map(&[
                ("GREETING", "configured"),
                ("LEVEL", "debug"),
                ("SANDPIT_MODELS_URL", "http://configured"),
            ]),
            secret_env: files(&[("TOKEN", "/config/token"), ("DATABASE_URL", "/config/db")]),
        };
        let injected = map(&[("SANDPIT_MODELS_URL", "http://endpoint")]);
        let database = files(&[("DATABASE_URL", "/databases/alice.database-url")]);
        let (env, secret_env) = component_env(&own, configured, &injected, &database);
        assert_eq!(
            env,
            map(&[
                ("GREETING", "configured"),
                ("LEVEL", "debug"),
                ("MODE", "toml"),
                ("SANDPIT_MODELS_URL", "http://endpoint"),
            ]),
            "secrets take their names out of the plain variables"
        );
        assert_eq!(
            secret_env,
            files(&[
                ("DATABASE_URL", "/databases/alice.database-url"),
                ("TOKEN", "/config/token"),
            ]),
            "the database URL is sandpit's, whatever else claims the name"
        );
    }

    #[test]
    fn nothing_configured_leaves_a_component_as_it_was() {
        let own = map(&[("MODE", "toml")]);
        let injected = map(&[("SANDPIT_MODELS_URL", "http://endpoint")]);
        let database = files(&[("DATABASE_URL", "/db")]);
        let (env, secret_env) =
            component_env(&own, ComponentVariables::default(), &injected, &database);
        assert_eq!(
            env,
            map(&[("MODE", "toml"), ("SANDPIT_MODELS_URL", "http://endpoint")])
        );
        assert_eq!(secret_env, database);
    }
}
