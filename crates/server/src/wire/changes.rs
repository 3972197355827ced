//! The verbs that change what runs — `up`, `down`, `restart`, `deploy`, `promote`, `rollback`,
//! `config set|unset`, and `extend`, which changes when a biome goes — as request bodies and answers: one document per verb for `--json` and
//! the API. Defaults that depend on a checkout (the biome named after the branch, the HEAD
//! commit) are resolved by the CLI and sent explicitly; the server never sees a working tree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_build::execute::{BuildReport, Outcome};
use sandpit_ops::down::DownOutcome;
use sandpit_ops::expiry::ExtendOutcome;
use sandpit_ops::up::UpOutcome;

use crate::wire::biome::BiomeDocument;
use crate::wire::deployments::{DeploymentResult, ProgressLine};

/// `POST /api/v1/projects/{project}/biomes`: `sandpit up`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpRequest {
    /// The biome's name (the CLI sends the one named after its checkout's branch).
    pub biome: String,
    /// The environment it belongs to (default: the first with `biomes = true`).
    #[serde(default)]
    pub env: Option<String>,
    /// The pushed commit to build (full sha, or at least 7 hex digits). At most one of `sha`
    /// and `branch`; neither: the project's branch.
    #[serde(default)]
    pub sha: Option<String>,
    /// A branch of the project's repository, built at its head.
    #[serde(default)]
    pub branch: Option<String>,
    /// Re-clone the biome's database from the new template (its data is lost).
    #[serde(default)]
    pub reset_db: bool,
    /// Overlay: run only the components whose artifacts differ from the environment base's,
    /// borrowing its running instances of the other services (`true`), or run every component
    /// (`false`); absent: as the project's `[biomes] overlay` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<bool>,
}

/// `POST /api/v1/projects/{project}/environments/{env}/deployments`: `sandpit deploy ENV`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The pushed commit to deploy; at most one of `sha` and `branch`; neither: the project's
    /// branch.
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// Deploy even if the commit is older than the one running there.
    #[serde(default)]
    pub allow_older: bool,
}

/// `POST /api/v1/projects/{project}/environments/{env}/promotions`: `sandpit promote FROM ENV`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The environment whose running artifacts are promoted.
    pub from: String,
}

/// `POST /api/v1/projects/{project}/environments/{env}/rollbacks`: `sandpit rollback ENV`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The successful deployment to restore (default: the one before what runs now).
    #[serde(default)]
    pub to: Option<i64>,
}

/// `POST /api/v1/projects/{project}/biomes/{biome}/restart`: `sandpit restart BIOME`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// The component to restart (a job runs again); default: every service.
    #[serde(default)]
    pub component: Option<String>,
}

/// `POST /api/v1/projects/{project}/config/{target}`: `sandpit config set|unset`. Values, and
/// secrets among them, travel only here, in the body: never in a URL, never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigChangeRequest {
    /// Set variables.
    Set {
        /// `KEY` → value, in order.
        assignments: Vec<Assignment>,
        /// Keep the values secret.
        #[serde(default)]
        secret: bool,
        /// Only for these components (default: every service and job).
        #[serde(default)]
        components: Vec<String>,
    },
    /// Remove variables set on the target.
    Unset {
        keys: Vec<String>,
        #[serde(default)]
        components: Vec<String>,
    },
}

/// One `KEY=VALUE`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub key: String,
    pub value: String,
}

/// Never prints the value: it may be a secret.
impl std::fmt::Debug for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=…", self.key)
    }
}

/// What a build made or reused (`sandpit build --json`, and `up`'s `build`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildSummary {
    pub version: String,
    pub components: Vec<BuiltComponent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuiltComponent {
    pub name: String,
    pub kind: String,
    /// `built` or `reused`
    pub outcome: String,
    pub artifact: String,
    pub digest: String,
    pub size: u64,
    pub path: String,
    pub log: Option<String>,
}

/// `built` or `reused`.
pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Built => "built",
        Outcome::Reused => "reused",
    }
}

impl From<&BuildReport> for BuildSummary {
    fn from(report: &BuildReport) -> BuildSummary {
        BuildSummary {
            version: report.version.to_string(),
            components: report
                .components
                .iter()
                .map(|c| BuiltComponent {
                    name: c.name.to_string(),
                    kind: c.kind.to_string(),
                    outcome: outcome_word(c.outcome).to_owned(),
                    artifact: c.artifact.name.file_name(),
                    digest: c.artifact.digest.to_string(),
                    size: c.artifact.size,
                    path: c.artifact.file_path.display().to_string(),
                    log: c.log.as_ref().map(|l| l.display().to_string()),
                })
                .collect(),
        }
    }
}

/// `sandpit up --json`: what was built and what runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpResult {
    pub build: BuildSummary,
    #[serde(flatten)]
    pub biome: BiomeDocument,
    /// `false` when the biome already ran exactly this and nothing was done.
    pub changed: bool,
    /// Milliseconds per phase of the `up`, in the order they ran.
    pub timings: BTreeMap<String, f64>,
    /// The rollout's progress lines, in order (API answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ProgressLine>,
}

impl From<&UpOutcome> for UpResult {
    fn from(outcome: &UpOutcome) -> UpResult {
        UpResult {
            build: BuildSummary::from(&outcome.build.report),
            biome: BiomeDocument::new(&outcome.status, None).with_terraform(&outcome.terraform),
            changed: outcome.changed,
            timings: outcome
                .timings
                .phases()
                .iter()
                .map(|(phase, took)| (phase.as_str().to_owned(), took.as_secs_f64() * 1000.0))
                .collect(),
            events: Vec::new(),
        }
    }
}

/// `sandpit down --json`: the biome is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DownResult {
    pub biome: String,
    pub env: String,
    /// Always `stopped`.
    pub state: String,
    /// The deployment (of kind `down`) that records it.
    pub deployment: i64,
    /// What the daemon stopped; `null` when nothing ran any more (a second `down`).
    pub stopped: Option<BiomeDocument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ProgressLine>,
}

impl From<&DownOutcome> for DownResult {
    fn from(outcome: &DownOutcome) -> DownResult {
        DownResult {
            biome: outcome.biome.to_string(),
            env: outcome.env.to_string(),
            state: "stopped".to_owned(),
            deployment: outcome.deployment,
            stopped: outcome
                .stopped
                .as_ref()
                .map(|status| BiomeDocument::new(status, None)),
            events: Vec::new(),
        }
    }
}

/// `POST /api/v1/projects/{project}/biomes/{biome}/extend`: `sandpit extend BIOME SPAN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// How much longer the biome lives: `3d`, `12h`, `1h30m`, … (units w, d, h, m, s), counted
    /// from its expiry, or from now when that has passed.
    pub span: String,
}

/// `sandpit extend --json`: when the biome expires now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExtendResult {
    pub biome: String,
    pub env: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// The expiry before; `null` when none was recorded.
    pub previous_expires_at: Option<String>,
    /// Who extended it.
    pub extended_by: String,
}

impl From<&ExtendOutcome> for ExtendResult {
    fn from(outcome: &ExtendOutcome) -> ExtendResult {
        ExtendResult {
            biome: outcome.biome.to_string(),
            env: outcome.env.to_string(),
            expires_at: outcome.expiry.expires_at.clone(),
            previous_expires_at: outcome.previous.clone(),
            extended_by: outcome.expiry.requested_by.clone(),
        }
    }
}

/// `sandpit restart --json`: the biome after the restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestartResult {
    #[serde(flatten)]
    pub biome: BiomeDocument,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ProgressLine>,
}

/// `sandpit config set|unset --json`: deployed (a `config` deployment, run or pending), or
/// stored for the target's next deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConfigResult {
    Stored(StoredChange),
    Deployed(Box<DeploymentResult>),
}

/// A change stored, not deployed: nothing runs in the target (or it runs uncommitted changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredChange {
    pub target: String,
    /// What changed, without values (`set A, B`).
    pub change: String,
    /// Always `true`.
    pub stored: bool,
    /// `next_deployment` (a base) or `next_up` (a biome).
    pub applies: String,
    /// `dirty_snapshot` when the biome runs uncommitted changes (so it waits for its next `up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&sandpit_ops::config::Change> for ConfigChangeRequest {
    fn from(change: &sandpit_ops::config::Change) -> ConfigChangeRequest {
        use sandpit_ops::config::Change;
        let names = |components: &[sandpit_domain::Name]| {
            components.iter().map(|c| c.to_string()).collect::<Vec<_>>()
        };
        match change {
            Change::Set {
                assignments,
                secret,
                components,
            } => ConfigChangeRequest::Set {
                assignments: assignments
                    .iter()
                    .map(|(key, value)| Assignment {
                        key: key.to_string(),
                        value: value.clone(),
                    })
                    .collect(),
                secret: *secret,
                components: names(components),
            },
            Change::Unset { keys, components } => ConfigChangeRequest::Unset {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                components: names(components),
            },
        }
    }
}

impl ConfigChangeRequest {
    /// The change asked for, its names checked (`invalid_input` naming the bad one; a value is
    /// never quoted).
    pub fn change(&self) -> anyhow::Result<sandpit_ops::config::Change> {
        use sandpit_ops::config::{Change, Key};
        use sandpit_ops::error::{failure, ErrorKind};
        let key = |raw: &str| {
            Key::parse(raw).map_err(|error| failure(ErrorKind::InvalidInput, error.to_string()))
        };
        let components = |raw: &[String]| {
            raw.iter()
                .map(|c| sandpit_domain::Name::parse(c).map_err(sandpit_ops::error::name_refused))
                .collect::<anyhow::Result<Vec<_>>>()
        };
        Ok(match self {
            ConfigChangeRequest::Set {
                assignments,
                secret,
                components: named,
            } => Change::Set {
                assignments: assignments
                    .iter()
                    .map(|a| Ok((key(&a.key)?, a.value.clone())))
                    .collect::<anyhow::Result<_>>()?,
                secret: *secret,
                components: components(named)?,
            },
            ConfigChangeRequest::Unset {
                keys,
                components: named,
            } => Change::Unset {
                keys: keys.iter().map(|k| key(k)).collect::<anyhow::Result<_>>()?,
                components: components(named)?,
            },
        })
    }
}

impl From<&sandpit_ops::config::Changed> for ConfigResult {
    fn from(changed: &sandpit_ops::config::Changed) -> ConfigResult {
        use sandpit_ops::config::{Changed, Deferred};
        match changed {
            Changed::Deployed(outcome) => {
                ConfigResult::Deployed(Box::new(DeploymentResult::from(outcome.as_ref())))
            }
            Changed::Stored {
                target,
                change,
                applies,
            } => ConfigResult::Stored(StoredChange {
                target: target.clone(),
                change: change.clone(),
                stored: true,
                applies: match applies {
                    Deferred::NextDeployment => "next_deployment",
                    Deferred::NextUp | Deferred::DirtySnapshot => "next_up",
                }
                .to_owned(),
                reason: (*applies == Deferred::DirtySnapshot).then(|| "dirty_snapshot".to_owned()),
            }),
        }
    }
}
