//! Deployments as `history --json` and the API list them: `GET
//! /api/v1/projects/{project}/history` answers a [`DeploymentList`] of [`crate::wire::Deployment`]
//! (the same document `approve`, `reject` and `trace` use).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::wire::{DeployedComponent, Deployment, DeploymentStep};

/// `sandpit history TARGET --json`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
}

impl From<&[sandpit_state::Deployment]> for DeploymentList {
    fn from(deployments: &[sandpit_state::Deployment]) -> DeploymentList {
        DeploymentList {
            deployments: deployments.iter().map(Deployment::from).collect(),
        }
    }
}
