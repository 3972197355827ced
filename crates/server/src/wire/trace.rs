//! `sandpit trace NEEDLE --json` and `GET /api/v1/projects/{project}/trace/{needle}`: one
//! document for both.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_artifact::provenance::Provenance as OpsProvenance;
use sandpit_ops::trace::{Running as OpsRunning, TraceReport};

use crate::wire::artifacts::Artifact;
use crate::wire::deployments::DeploymentRecord;

/// Where a commit, digest or artifact runs, every deployment of it, and its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    pub running: Vec<Running>,
    pub deployments: Vec<DeploymentRecord>,
    /// One record per matching artifact name.
    pub provenance: Vec<Provenance>,
    /// Every stored copy of a matching artifact, with its integrity.
    pub stored: Vec<StoredArtifact>,
}

/// A component (or model) running a matching artifact now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Running {
    pub target: String,
    pub component: String,
    pub artifact: String,
    pub digest: String,
    pub sha: String,
    /// `process` (run by the daemon) or `model` (served by the environment's model endpoint).
    pub served_as: String,
}

/// A stored copy: the artifact as `artifacts` lists it, and the store holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredArtifact {
    #[serde(flatten)]
    pub artifact: Artifact,
    /// `build`, or the environment whose store holds it.
    pub store: String,
}

/// How an artifact was built (its provenance record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provenance {
    pub component: String,
    /// `service`, `job` or `model`.
    pub kind: String,
    /// `<sha>` or `<sha>-dirty-<hash>`.
    pub version: String,
    pub commit: String,
    /// Git tree id of the component's source subtree at that version.
    pub input_tree: String,
    pub input_key: String,
    pub build_command: Option<String>,
    pub builder: Option<String>,
    pub sandpit_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub digest: String,
    pub size: u64,
    pub reused_from: Option<String>,
}

impl From<&OpsProvenance> for Provenance {
    fn from(p: &OpsProvenance) -> Provenance {
        Provenance {
            component: p.component.to_string(),
            kind: p.kind.as_str().to_owned(),
            version: p.version.to_string(),
            commit: p.commit.to_string(),
            input_tree: p.input_tree.clone(),
            input_key: p.input_key.clone(),
            build_command: p.build_command.clone(),
            builder: p.builder.clone(),
            sandpit_version: p.sandpit_version.clone(),
            started_at: p.started_at.clone(),
            finished_at: p.finished_at.clone(),
            digest: p.digest.to_string(),
            size: p.size,
            reused_from: p.reused_from.clone(),
        }
    }
}

impl From<&OpsRunning> for Running {
    fn from(r: &OpsRunning) -> Running {
        Running {
            target: r.target.clone(),
            component: r.component.clone(),
            artifact: r.artifact.clone(),
            digest: r.digest.clone(),
            sha: r.sha.clone(),
            served_as: r.served_as.to_owned(),
        }
    }
}

impl From<&TraceReport> for Trace {
    fn from(report: &TraceReport) -> Trace {
        Trace {
            running: report.running.iter().map(Running::from).collect(),
            deployments: report
                .deployments
                .iter()
                .map(DeploymentRecord::from)
                .collect(),
            provenance: report.provenance.iter().map(Provenance::from).collect(),
            stored: report
                .stored
                .iter()
                .map(|copy| StoredArtifact {
                    artifact: Artifact::from(&copy.check),
                    store: copy.store.clone(),
                })
                .collect(),
        }
    }
}
