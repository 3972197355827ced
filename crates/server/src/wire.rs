//! The API's JSON shapes, in one place: what handlers answer and accept, with their OpenAPI
//! schemas derived here. They are converted by hand from the use cases' types, so a change in
//! `sandpit-ops` never changes the wire by accident.

pub mod artifacts;
pub mod biomes;
pub mod deployments;
pub mod logs;
pub mod status;
pub mod trace;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::tokens::{CreatedToken as OpsCreatedToken, TokenRecord};

/// Every failure: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `invalid_input`, `needs_approval`, `unavailable` or `internal`.
    pub code: String,
    pub message: String,
    /// What to do about it, when there is something to say.
    pub hint: Option<String>,
}

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /api/v1/whoami`: who the token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub user: String,
    /// Role names: `viewer`, `developer`, `deployer`, `approver`, `admin`.
    pub roles: Vec<String>,
    pub token_id: String,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Who the token speaks for, e.g. `alice@example.com`.
    pub user: String,
    /// At least one of `viewer`, `developer`, `deployer`, `approver`, `admin`.
    pub roles: Vec<String>,
    /// How long it is valid, e.g. `30d`, `12h`, `90m`; `null` or absent: it does not expire.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// `POST /api/v1/tokens` → 201: the token, with the only copy of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// `tok_` and 12 hex digits.
    pub id: String,
    pub user: String,
    pub roles: Vec<String>,
    /// RFC 3339 UTC, like every time here.
    pub created_at: String,
    pub expires_at: Option<String>,
    /// `spt_` and 43 base64url characters. Shown once: only its sha256 is stored.
    pub secret: String,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub created_by: String,
    pub revoked_at: Option<String>,
}

/// `GET /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

fn role_names(record: &TokenRecord) -> Vec<String> {
    record
        .roles
        .iter()
        .map(|role| role.as_str().to_owned())
        .collect()
}

impl From<&TokenRecord> for Token {
    fn from(record: &TokenRecord) -> Token {
        Token {
            id: record.id.clone(),
            user: record.user.clone(),
            roles: role_names(record),
            created_at: record.created_at.clone(),
            expires_at: record.expires_at.clone(),
            created_by: record.created_by.clone(),
            revoked_at: record.revoked_at.clone(),
        }
    }
}

impl From<&OpsCreatedToken> for CreatedToken {
    fn from(created: &OpsCreatedToken) -> CreatedToken {
        CreatedToken {
            id: created.record.id.clone(),
            user: created.record.user.clone(),
            roles: role_names(&created.record),
            created_at: created.record.created_at.clone(),
            expires_at: created.record.expires_at.clone(),
            secret: created.secret.expose().to_owned(),
        }
    }
}
