//! Deployments as `history --json` and `trace --json` list them, and what a change that is a
//! deployment (`deploy`, `promote`, `rollback`, a `config` change of what runs) answers with:
//! one document for the CLI and the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_domain::Name;
use sandpit_ops::deploy::DeployOutcome;
use sandpit_state::{Deployment, DeploymentKind};

use crate::wire::biome::BiomeDocument;

/// One deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentRecord {
    pub id: i64,
    /// `ENV` or `ENV/BIOME`.
    pub target: String,
    pub sha: String,
    /// `pending`, `queued`, `running`, `succeeded`, `failed`, `rejected`, `rolled_back`.
    pub state: String,
    /// `up`, `down`, `deploy`, `promote`, `rollback`, `config`, `destroy`.
    pub kind: String,
    pub requested_by: String,
    pub approved_by: Vec<String>,
    pub approvals_required: u32,
    pub rejected_by: Option<String>,
    pub rollback_of: Option<i64>,
    pub restores: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
    pub components: Vec<DeployedComponentRecord>,
    /// `promote`: the environment promoted from.
    pub promoted_from: Option<String>,
    /// What happened on the way: `rehearsed`, `rehearsal_failed`, `migrated`, `configured`,
    /// `planned` (a terraform component's saved plan, summarised for the approvers: `infra: 1
    /// to add, 0 to change, 0 to destroy: + terraform_data.marker`), `applied` (that plan, applied).
    pub steps: Vec<DeploymentStepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStepRecord {
    pub step: String,
    pub at: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployedComponentRecord {
    pub name: String,
    pub artifact: String,
    pub digest: String,
    /// An overlay biome's borrowed component: the biome (the environment's base) whose
    /// instance served it, at this digest, when the deployment was made. Absent: the target
    /// ran it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowed_from: Option<String>,
}

impl DeploymentRecord {
    /// Approvals still needed before it can run.
    pub fn approvals_missing(&self) -> u32 {
        let approved = u32::try_from(self.approved_by.len()).unwrap_or(u32::MAX);
        self.approvals_required.saturating_sub(approved)
    }

    /// Its kind as a sentence says it: `promote from dev`, `deploy`, …
    pub fn kind_described(&self) -> String {
        match &self.promoted_from {
            Some(from) => format!("{} from {from}", self.kind),
            None => self.kind.clone(),
        }
    }
}

impl From<&Deployment> for DeploymentRecord {
    fn from(d: &Deployment) -> DeploymentRecord {
        DeploymentRecord {
            id: d.id,
            target: d.target.clone(),
            sha: d.sha.clone(),
            state: d.state.as_str().to_owned(),
            kind: d.kind.as_str().to_owned(),
            requested_by: d.requested_by.clone(),
            approved_by: d.approved_by.clone(),
            approvals_required: d.approvals_required,
            rejected_by: d.rejected_by.clone(),
            rollback_of: d.rollback_of,
            restores: d.restores,
            created_at: d.created_at.clone(),
            started_at: d.started_at.clone(),
            finished_at: d.finished_at.clone(),
            message: d.message.clone(),
            components: d
                .components
                .iter()
                .map(|c| DeployedComponentRecord {
                    name: c.name.clone(),
                    artifact: c.artifact.clone(),
                    digest: c.digest.clone(),
                    borrowed_from: c.borrowed_from.clone(),
                })
                .collect(),
            promoted_from: match &d.kind {
                DeploymentKind::Promote { from } => Some(from.clone()),
                _ => None,
            },
            steps: d
                .steps
                .iter()
                .map(|s| DeploymentStepRecord {
                    step: s.step.as_str().to_owned(),
                    at: s.at.clone(),
                    message: s.message.clone(),
                })
                .collect(),
        }
    }
}

/// A recorded deployment and, when it ran at once, what runs now. Answered 202 while it waits
/// for approvals, 200 once it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentResult {
    #[serde(flatten)]
    pub deployment: DeploymentRecord,
    /// What runs in the target after the rollout; absent while pending, or when the rollout
    /// left nothing to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BiomeDocument>,
    /// The rollout's progress lines, in order (API answers only: the CLI prints them on stderr
    /// as they come locally, after the answer remotely).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ProgressLine>,
}

impl DeploymentResult {
    /// Whether it waits for approvals rather than having run.
    pub fn is_pending(&self) -> bool {
        self.deployment.approvals_missing() > 0
    }
}

impl From<&DeployOutcome> for DeploymentResult {
    fn from(outcome: &DeployOutcome) -> DeploymentResult {
        DeploymentResult {
            deployment: DeploymentRecord::from(&outcome.deployment),
            status: outcome
                .rollout
                .as_ref()
                .and_then(|r| r.status.as_ref())
                .map(|status| BiomeDocument::new(status, None)),
            events: Vec::new(),
        }
    }
}

/// One progress line of a rollout (a component starting, a migration running, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgressLine {
    /// The component it is about; `null` for the biome as a whole.
    pub component: Option<String>,
    pub message: String,
}

/// The progress lines of one change, collected in order for the answer.
#[derive(Debug, Default)]
pub struct ProgressLog {
    pub lines: Vec<ProgressLine>,
}

impl ProgressLog {
    /// Records one line; the use cases' `on_event`.
    pub fn record(&mut self, component: Option<&Name>, message: &str) {
        self.lines.push(ProgressLine {
            component: component.map(Name::to_string),
            message: message.to_owned(),
        });
    }

    pub fn take(&mut self) -> Vec<ProgressLine> {
        std::mem::take(&mut self.lines)
    }
}

/// `sandpit history TARGET --json` and `GET /api/v1/projects/{project}/history`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<DeploymentRecord>,
}

impl From<&[Deployment]> for DeploymentList {
    fn from(deployments: &[Deployment]) -> DeploymentList {
        DeploymentList {
            deployments: deployments.iter().map(DeploymentRecord::from).collect(),
        }
    }
}
