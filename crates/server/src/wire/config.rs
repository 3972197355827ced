//! `sandpit config [TARGET] --json` and `GET /api/v1/projects/{project}/config/{target}`: one
//! document for both. Over the API a secret's value is never sent (`value` is `null`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::config::{Level, Listing};

/// A target's configuration variables and secrets, and whether what runs has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigListing {
    pub target: String,
    pub env: String,
    pub biome: Option<String>,
    /// The deployment that runs in the target, or `null`.
    pub deployment: Option<i64>,
    /// Whether what runs was started with these values.
    pub up_to_date: bool,
    pub variables: Vec<ConfigVariable>,
    pub pending: Vec<PendingConfigChange>,
}

/// One variable as `config` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigVariable {
    pub key: String,
    /// The component it is set for; `null`: every one.
    pub component: Option<String>,
    /// Where it is set: the environment (`dev`) or the biome (`dev/alice`).
    pub from: String,
    /// `environment` or `biome`.
    pub level: String,
    pub secret: bool,
    /// `null` for a secret (unless `--show-secrets` on the machine itself).
    pub value: Option<String>,
    /// The components that get this value.
    pub applies_to: Vec<String>,
    /// Every component it was meant for gets another value.
    pub overridden: bool,
}

/// A change of the target's configuration waiting for approvals (its keys, never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingConfigChange {
    pub deployment: i64,
    pub requested_by: String,
    pub approvals_missing: u32,
    pub change: String,
}

impl From<&Listing> for ConfigListing {
    fn from(listing: &Listing) -> ConfigListing {
        ConfigListing {
            target: listing.target.clone(),
            env: listing.env.to_string(),
            biome: listing.biome.as_ref().map(ToString::to_string),
            deployment: listing.deployment,
            up_to_date: listing.up_to_date,
            variables: listing
                .variables
                .iter()
                .map(|v| ConfigVariable {
                    key: v.key.to_string(),
                    component: v.component.as_ref().map(ToString::to_string),
                    from: v.from.clone(),
                    level: match v.level {
                        Level::Environment => "environment",
                        Level::Biome => "biome",
                    }
                    .to_owned(),
                    secret: v.secret,
                    value: v.value.clone(),
                    applies_to: v.applies_to.iter().map(ToString::to_string).collect(),
                    overridden: v.applies_to.is_empty(),
                })
                .collect(),
            pending: listing
                .pending
                .iter()
                .map(|p| PendingConfigChange {
                    deployment: p.deployment,
                    requested_by: p.requested_by.clone(),
                    approvals_missing: p.approvals_missing,
                    change: p.change.clone(),
                })
                .collect(),
        }
    }
}
