//! One biome as it runs (`sandpit status BIOME --json`, and what `up`, `restart` and a rollout
//! answer with): one document for the CLI and the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::status::BiomeModel;
use sandpit_runtime::protocol::BiomeStatus;

/// A biome (or an environment's base) and its components, as the daemon reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BiomeDocument {
    pub biome: String,
    pub project: String,
    pub env: String,
    /// The version it runs: a commit, or `<sha>-dirty-<hash>`.
    pub sha: String,
    /// `starting`, `healthy`, `degraded`, `failed`, `stopped`, …
    pub state: String,
    pub data_dir: String,
    pub components: Vec<ComponentDocument>,
    pub database: Option<DatabaseDocument>,
    /// What the environment's model endpoint answers for the biome under plain model names
    /// (`status` only; empty when the biome is not registered with an endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<ModelDocument>>,
    /// When the reaper removes it (RFC 3339; `status` only, and only for a biome with a
    /// recorded expiry: environment bases never expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One model a biome is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelDocument {
    /// The model's (component's) name, as requests name it.
    pub name: String,
    /// `<component>-<version>.zip`.
    pub artifact: String,
    pub digest: String,
    /// `biome` (the biome's own version) or `environment` (the base's, which a biome without a
    /// version of its own falls back to; the base's own models are the environment's).
    pub source: String,
    /// The biome's `SANDPIT_MODELS_URL`, under which plain model names resolve; `null` when the
    /// endpoint's port is not known.
    pub endpoint: Option<String>,
    /// The model's Open Inference Protocol route: `<endpoint>/v2/models/<name>`.
    pub url: Option<String>,
}

/// The biome's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseDocument {
    pub name: String,
    pub template: String,
    /// The variable components read the URL from.
    pub url_env: String,
    /// Only with `--show-secrets`: it carries the biome role's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One component of a biome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComponentDocument {
    pub name: String,
    /// `service`, `job` or `model`.
    pub kind: String,
    /// `starting`, `healthy`, `unhealthy`, `succeeded`, `failed`, `stopped`, …
    pub state: String,
    pub pid: Option<u32>,
    pub url: Option<String>,
    pub restarts: u32,
    pub artifact: String,
    pub digest: String,
    pub log: String,
    pub detail: Option<String>,
}

impl ComponentDocument {
    /// Healthy, or (a job) succeeded: nothing to explain.
    pub fn is_good(&self) -> bool {
        matches!(self.state.as_str(), "healthy" | "succeeded")
    }
}

impl From<&BiomeModel> for ModelDocument {
    fn from(model: &BiomeModel) -> ModelDocument {
        ModelDocument {
            name: model.name.clone(),
            artifact: model.artifact.clone(),
            digest: model.digest.clone(),
            source: model.source.as_str().to_owned(),
            endpoint: model.endpoint.clone(),
            url: model
                .endpoint
                .as_ref()
                .map(|endpoint| format!("{endpoint}/v2/models/{}", model.name)),
        }
    }
}

impl BiomeDocument {
    /// `database_url` only with `--show-secrets` (read by `ops::database::read_url`).
    pub fn new(status: &BiomeStatus, database_url: Option<String>) -> BiomeDocument {
        BiomeDocument {
            database: status.database.as_ref().map(|d| DatabaseDocument {
                name: d.name.clone(),
                template: d.template.clone(),
                url_env: "DATABASE_URL".to_owned(),
                url: database_url,
            }),
            biome: status.biome.to_string(),
            project: status.project.to_string(),
            env: status.env.to_string(),
            sha: status.sha.clone(),
            state: status.state.clone(),
            data_dir: status.data_dir.display().to_string(),
            components: status
                .components
                .iter()
                .map(|c| ComponentDocument {
                    name: c.name.to_string(),
                    kind: c.kind.to_string(),
                    state: c.state.to_string(),
                    pid: c.pid,
                    url: c.url.clone(),
                    restarts: c.restarts,
                    artifact: c.artifact.clone(),
                    digest: c.digest.to_string(),
                    log: c.log.display().to_string(),
                    detail: c.detail.clone(),
                })
                .collect(),
            models: None,
            expires_at: None,
        }
    }

    /// With when it expires (what `status` shows).
    pub fn with_expiry(mut self, expiry: Option<&sandpit_state::Expiry>) -> BiomeDocument {
        self.expires_at = expiry.map(|e| e.expires_at.clone());
        self
    }

    /// With the models the biome is answered with (what `status` shows).
    pub fn with_models(mut self, models: &[BiomeModel]) -> BiomeDocument {
        self.models = Some(models.iter().map(ModelDocument::from).collect());
        self
    }
}
