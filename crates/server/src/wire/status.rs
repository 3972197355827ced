//! `sandpit status BIOME --json` and `GET /api/v1/projects/{project}/status/{target}`: one
//! document for both.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::status::BiomeModel;
use sandpit_runtime::protocol::BiomeStatus;

/// What one biome (or environment base) runs and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BiomeDetail {
    pub biome: String,
    pub project: String,
    pub env: String,
    pub sha: String,
    pub state: String,
    pub data_dir: String,
    pub components: Vec<ComponentDetail>,
    pub database: Option<DatabaseDetail>,
    /// What the environment's model endpoint answers for the biome under plain model names
    /// (`status` only; empty when the biome is not registered with an endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<ModelAnswer>>,
}

/// One model a biome is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelAnswer {
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

/// The biome's database on the environment's PostgreSQL instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseDetail {
    pub name: String,
    pub template: String,
    /// The variable components read the URL from.
    pub url_env: String,
    /// Only with `--show-secrets` on the machine itself: it carries the biome role's password.
    /// The API never sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One component of a biome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComponentDetail {
    pub name: String,
    pub kind: String,
    /// `starting`, `healthy`, `unhealthy`, `succeeded`, `failed`, …
    pub state: String,
    pub pid: Option<u32>,
    pub url: Option<String>,
    pub restarts: u32,
    pub artifact: String,
    pub digest: String,
    pub log: String,
    pub detail: Option<String>,
}

impl ComponentDetail {
    /// Healthy or succeeded: nothing to explain.
    pub fn is_good(&self) -> bool {
        matches!(self.state.as_str(), "healthy" | "succeeded")
    }
}

impl From<&BiomeModel> for ModelAnswer {
    fn from(model: &BiomeModel) -> ModelAnswer {
        ModelAnswer {
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

impl BiomeDetail {
    /// `database_url` only with `--show-secrets` on the machine itself (read by
    /// `ops::database::read_url`); the API always passes `None`.
    pub fn new(status: &BiomeStatus, database_url: Option<String>) -> BiomeDetail {
        BiomeDetail {
            database: status.database.as_ref().map(|d| DatabaseDetail {
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
                .map(|c| ComponentDetail {
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
        }
    }

    /// With the models the biome is answered with (what `status` shows).
    pub fn with_models(mut self, models: &[BiomeModel]) -> BiomeDetail {
        self.models = Some(models.iter().map(ModelAnswer::from).collect());
        self
    }
}
