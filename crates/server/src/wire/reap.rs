//! `sandpit reap --json`: one reaper run over a project — each biome's verdict and why, what
//! was removed, and why nothing was when the fail-safe stopped the run.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::reap::ReapOutcome;

/// One reaper run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReapReport {
    pub project: String,
    /// `true`: nothing was removed, the verdicts say what would go.
    pub dry_run: bool,
    /// Every biome of the project, by name.
    pub verdicts: Vec<ReapVerdict>,
    /// Why nothing at all was removed (a git host that cannot be asked, the share guard, an
    /// unreadable state store); `null` when the run went ahead.
    pub stopped: Option<String>,
    pub removed: Vec<ReapRemoval>,
    /// Removals that were tried and did not finish.
    pub failed: Vec<ReapFailure>,
}

/// What happens to one biome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReapVerdict {
    pub biome: String,
    pub env: String,
    /// `remove` or `keep`.
    pub verdict: String,
    pub reason: String,
}

/// A biome the run removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReapRemoval {
    pub biome: String,
    pub env: String,
    /// The `down` deployment (requested by `reaper`) that records it.
    pub deployment: i64,
}

/// A removal that did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReapFailure {
    pub biome: String,
    pub error: String,
}

impl From<&ReapOutcome> for ReapReport {
    fn from(outcome: &ReapOutcome) -> ReapReport {
        ReapReport {
            project: outcome.project.to_string(),
            dry_run: outcome.dry_run,
            verdicts: outcome
                .plan
                .verdicts
                .iter()
                .map(|v| ReapVerdict {
                    biome: v.biome.to_string(),
                    env: v.env.to_string(),
                    verdict: v.action.as_str().to_owned(),
                    reason: v.reason.clone(),
                })
                .collect(),
            stopped: outcome.plan.stop.as_ref().map(ToString::to_string),
            removed: outcome
                .removed
                .iter()
                .map(|r| ReapRemoval {
                    biome: r.biome.to_string(),
                    env: r.env.to_string(),
                    deployment: r.deployment,
                })
                .collect(),
            failed: outcome
                .failed
                .iter()
                .map(|(biome, error)| ReapFailure {
                    biome: biome.to_string(),
                    error: error.clone(),
                })
                .collect(),
        }
    }
}
