//! `sandpit ls --json` and `GET /api/v1/projects/{project}/biomes`: one document for both.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::ls::{Incomplete, Listing};
use sandpit_runtime::protocol::BiomeStatus;

use crate::wire::biome::CostDocument;

/// What runs for a project: its biomes and, apart, its environments' base deployments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BiomeList {
    pub biomes: Vec<BiomeSummary>,
    /// The environments' own (base) deployments.
    pub environments: Vec<BiomeSummary>,
    /// `false` when no daemon runs on the machine: then nothing runs and the lists are empty.
    pub daemon_running: bool,
    /// Biomes whose last operation did not finish and that nothing runs of.
    pub incomplete: Vec<IncompleteBiome>,
}

/// One biome (or environment base) in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BiomeSummary {
    pub name: String,
    pub env: String,
    /// The version it runs: a commit, or `<sha>-dirty-<hash>`.
    pub sha: String,
    /// `starting`, `healthy`, `degraded`, `failed`, `sleeping`, …
    pub state: String,
    /// Since when it sleeps (RFC 3339); `null` when awake.
    #[serde(default)]
    pub sleeping_since: Option<String>,
    /// What it costs now; `null` when not measured.
    #[serde(default)]
    pub cost: Option<CostDocument>,
    /// When the reaper removes it (RFC 3339); `null` for an environment base, or a biome with
    /// no recorded expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A biome left behind by a failed `down` or a failed first `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncompleteBiome {
    pub biome: String,
    pub env: String,
    /// `down-failed` or `up-failed`.
    pub state: String,
    /// The deployment that failed.
    pub deployment: i64,
    pub message: String,
    /// What is still there (a database, model registrations, …).
    pub left: Vec<String>,
}

impl From<&BiomeStatus> for BiomeSummary {
    fn from(biome: &BiomeStatus) -> BiomeSummary {
        BiomeSummary {
            name: biome.biome.to_string(),
            env: biome.env.to_string(),
            sha: biome.sha.clone(),
            state: biome.state.clone(),
            sleeping_since: biome
                .sleeping_since
                .map(crate::wire::biome::epoch_to_rfc3339),
            cost: None,
            expires_at: None,
        }
    }
}

impl From<&Incomplete> for IncompleteBiome {
    fn from(incomplete: &Incomplete) -> IncompleteBiome {
        IncompleteBiome {
            biome: incomplete.biome.to_string(),
            env: incomplete.env.to_string(),
            state: incomplete.state.to_owned(),
            deployment: incomplete.deployment,
            message: incomplete.message.clone(),
            left: incomplete.left.clone(),
        }
    }
}

impl From<&Listing> for BiomeList {
    fn from(listing: &Listing) -> BiomeList {
        let summary = |biome: &BiomeStatus| BiomeSummary {
            cost: listing.costs.get(&biome.biome).map(CostDocument::from),
            ..BiomeSummary::from(biome)
        };
        BiomeList {
            biomes: listing
                .biomes
                .iter()
                .map(|biome| BiomeSummary {
                    expires_at: listing.expires_at(biome).map(str::to_owned),
                    ..summary(biome)
                })
                .collect(),
            environments: listing.environments.iter().map(summary).collect(),
            daemon_running: listing.daemon_running,
            incomplete: listing
                .incomplete
                .iter()
                .map(IncompleteBiome::from)
                .collect(),
        }
    }
}
