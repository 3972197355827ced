//! One biome as it runs (`sandpit status BIOME --json`, and what `up`, `restart` and a rollout
//! answer with): one document for the CLI and the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::cost::Cost;
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
    /// Since when it sleeps (RFC 3339), when `state` is `sleeping`: nothing of it runs until a
    /// request through the gateway (or `sandpit wake`) wakes it.
    #[serde(default)]
    pub sleeping_since: Option<String>,
    /// When the last request through the gateway began or ended (RFC 3339); `null`: none since
    /// the daemon started.
    #[serde(default)]
    pub last_request: Option<String>,
    /// How long it may go without a request before it sleeps (`30m`); `null`: it never sleeps.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// What the biome costs now (`status` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostDocument>,
    /// When the reaper removes it (RFC 3339; `status` only, and only for a biome with a
    /// recorded expiry: environment bases never expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Its terraform components' states (`status` only; empty without terraform components).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terraform: Vec<TerraformStateDocument>,
    /// Deployments into it that wait for approvals, oldest first, each with the terraform plan
    /// its approvers are asked to approve (`status` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingDocument>,
}

/// A deployment waiting for approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingDocument {
    pub id: i64,
    /// `deploy`, `promote`, `rollback`, `config`, …
    pub kind: String,
    pub sha: String,
    pub requested_by: String,
    pub approvals_missing: u32,
    /// What its terraform components would change, one line each (`infra: 1 to add, 0 to
    /// change, 0 to destroy: + terraform_data.marker`); approving applies exactly that plan.
    pub plan: Vec<String>,
}

/// One terraform component's state in a biome (kept by sandpit's backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TerraformStateDocument {
    pub component: String,
    /// Managed resource instances in the current state.
    pub resources: usize,
    /// The deployment that last applied it.
    pub applied_by: Option<i64>,
    /// The variables its outputs give the components depending on it (`SANDPIT_TF_<NAME>_<OUTPUT>`).
    pub outputs: Vec<String>,
    /// Those of `outputs` that are secrets (sensitive outputs; their values are never sent).
    pub sensitive_outputs: Vec<String>,
    /// Who holds the state's lock, when someone does: `locked by <who> since <when> (…)`;
    /// `sandpit tf unlock` clears a crashed run's.
    pub lock: Option<String>,
}

/// What a biome (or an environment's base) costs now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CostDocument {
    /// Live processes of its components (each service or running job, and its log writer).
    pub processes: u32,
    /// CPU time its processes have used so far, user and system, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory of its processes, in bytes.
    pub rss_bytes: u64,
    /// The size of its database (`pg_database_size`), in bytes; `null` when it has none or the
    /// environment's instance is not running.
    pub database_bytes: Option<u64>,
    /// Memory its own loaded models hold on the environment's model endpoint, in bytes (a model
    /// it shares with the environment's base is the base's); `null` when the endpoint is not
    /// running.
    pub model_bytes: Option<u64>,
}

// `cpu_seconds` is never NaN (a count of clock ticks over a positive tick rate, and JSON has no
// NaN), so equality is total and the documents that hold a cost stay `Eq`.
impl Eq for CostDocument {}

impl From<&Cost> for CostDocument {
    fn from(cost: &Cost) -> CostDocument {
        CostDocument {
            processes: cost.processes,
            cpu_seconds: cost.cpu_seconds,
            rss_bytes: cost.rss_bytes,
            database_bytes: cost.database_bytes,
            model_bytes: cost.model_bytes,
        }
    }
}

/// Seconds since the Unix epoch as RFC 3339 (UTC).
pub fn epoch_to_rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string()
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
    /// Services: the address through the home's gateway,
    /// `http://<service>.<biome>.<project>.localhost:<port>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// An overlay biome's borrowed service: the biome (the environment's base) whose running
    /// instance serves it; state, URL, artifact and log are that instance's, `pid` is null.
    /// Absent: the biome runs it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowed_from: Option<String>,
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
                    public_url: c.public_url.clone(),
                    borrowed_from: c.borrowed_from.as_ref().map(|b| b.to_string()),
                })
                .collect(),
            models: None,
            sleeping_since: status.sleeping_since.map(epoch_to_rfc3339),
            last_request: status.last_request.map(epoch_to_rfc3339),
            idle_timeout: status
                .idle_timeout_secs
                .map(|secs| sandpit_domain::Span::from_secs(secs).to_string()),
            cost: None,
            expires_at: None,
            terraform: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// With the deployments waiting for approvals (what `status` shows).
    pub fn with_pending(
        mut self,
        pending: &[sandpit_ops::status::PendingDeployment],
    ) -> BiomeDocument {
        self.pending = pending
            .iter()
            .map(|p| PendingDocument {
                id: p.id,
                kind: p.kind.clone(),
                sha: p.sha.clone(),
                requested_by: p.requested_by.clone(),
                approvals_missing: p.approvals_missing,
                plan: p.plan.clone(),
            })
            .collect();
        self
    }

    /// With its terraform states (what `status` shows).
    pub fn with_terraform(
        mut self,
        states: &[sandpit_ops::terraform::StateOverview],
    ) -> BiomeDocument {
        self.terraform = states
            .iter()
            .map(|state| TerraformStateDocument {
                component: state.component.to_string(),
                resources: state.resources,
                applied_by: state.applied_by,
                outputs: state.outputs.iter().map(|(name, _)| name.clone()).collect(),
                sensitive_outputs: state
                    .outputs
                    .iter()
                    .filter(|(_, secret)| *secret)
                    .map(|(name, _)| name.clone())
                    .collect(),
                lock: state.lock.clone(),
            })
            .collect();
        self
    }

    /// With what the biome costs now (what `status` shows).
    pub fn with_cost(mut self, cost: &Cost) -> BiomeDocument {
        self.cost = Some(CostDocument::from(cost));
        self
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
