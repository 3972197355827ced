//! Deployments as `history --json`, `trace --json` and the API list them:
//! `GET /api/v1/projects/{project}/history` answers a [`DeploymentList`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `sandpit history TARGET --json`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
}

/// One deployment into an environment's base or a biome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    pub target: String,
    pub sha: String,
    /// `pending`, `rejected`, `running`, `succeeded`, `failed`, `rolled_back`.
    pub state: String,
    /// `deploy`, `promote`, `rollback`, `up`, `destroy`, `down`, `config`.
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
    pub components: Vec<DeployedComponent>,
    /// `promote`: the environment promoted from.
    pub promoted_from: Option<String>,
    /// What happened on the way: `rehearsed`, `rehearsal_failed`, `migrated`, `configured`.
    pub steps: Vec<DeploymentStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStep {
    pub step: String,
    pub at: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployedComponent {
    pub name: String,
    pub artifact: String,
    pub digest: String,
}

impl From<&sandpit_state::Deployment> for Deployment {
    fn from(d: &sandpit_state::Deployment) -> Deployment {
        Deployment {
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
                .map(|c| DeployedComponent {
                    name: c.name.clone(),
                    artifact: c.artifact.clone(),
                    digest: c.digest.clone(),
                })
                .collect(),
            promoted_from: match &d.kind {
                sandpit_state::DeploymentKind::Promote { from } => Some(from.clone()),
                _ => None,
            },
            steps: d
                .steps
                .iter()
                .map(|s| DeploymentStep {
                    step: s.step.as_str().to_owned(),
                    at: s.at.clone(),
                    message: s.message.clone(),
                })
                .collect(),
        }
    }
}

impl From<&[sandpit_state::Deployment]> for DeploymentList {
    fn from(deployments: &[sandpit_state::Deployment]) -> DeploymentList {
        DeploymentList {
            deployments: deployments.iter().map(Deployment::from).collect(),
        }
    }
}
