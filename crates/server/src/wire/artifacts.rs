//! `sandpit artifacts --json` and `GET /api/v1/projects/{project}/artifacts`: one document for
//! both; `trace` lists stored copies with the same [`Artifact`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_artifact::store::{ArtifactCheck, Integrity, StoreCheck};

/// An artifact store's artifacts, each checked against its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactList {
    pub artifacts: Vec<Artifact>,
    /// Name records that could not be read: the name is known, what it refers to is not.
    pub unreadable_records: Vec<UnreadableRecord>,
}

/// One named artifact and the state of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub name: String,
    pub component: String,
    pub sha: String,
    /// The digest the name records (what the bytes must hash to).
    pub digest: String,
    /// `intact|modified|missing|unreadable`
    pub integrity: String,
    /// What the stored bytes hash to when they no longer match `digest`.
    pub actual_digest: Option<String>,
    /// Why the blob could not be read (`unreadable`).
    pub detail: Option<String>,
    /// Bytes, when intact.
    pub size: Option<u64>,
    pub path: String,
    pub blob: String,
    pub reused_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnreadableRecord {
    pub name: String,
    pub record: String,
    pub message: String,
}

/// The stable spelling of an integrity state.
pub fn integrity_word(integrity: &Integrity) -> &'static str {
    match integrity {
        Integrity::Intact { .. } => "intact",
        Integrity::Modified { .. } => "modified",
        Integrity::Missing => "missing",
        Integrity::Unreadable { .. } => "unreadable",
    }
}

impl Artifact {
    /// One line about an artifact whose bytes are not what its name records, or `None` when
    /// intact.
    pub fn integrity_problem(&self) -> Option<String> {
        let (name, expected, blob) = (&self.name, &self.digest, &self.blob);
        match self.integrity.as_str() {
            "intact" => None,
            "modified" => Some(format!(
                "{name} is MODIFIED: `{blob}` should be {expected} but is {}",
                self.actual_digest.as_deref().unwrap_or("unknown")
            )),
            "missing" => Some(format!(
                "{name} is MISSING: no blob `{blob}` for {expected}"
            )),
            _ => Some(format!(
                "{name} is UNREADABLE ({expected}): {}",
                self.detail.as_deref().unwrap_or_default()
            )),
        }
    }
}

impl From<&ArtifactCheck> for Artifact {
    fn from(artifact: &ArtifactCheck) -> Artifact {
        let (actual_digest, detail, size) = match &artifact.integrity {
            Integrity::Intact { size } => (None, None, Some(*size)),
            Integrity::Modified { actual } => (Some(actual.to_string()), None, None),
            Integrity::Missing => (None, None, None),
            Integrity::Unreadable { message } => (None, Some(message.clone()), None),
        };
        let file = artifact
            .record_path
            .parent()
            .and_then(|names| names.parent())
            .map(|root| root.join("files").join(artifact.name.file_name()))
            .unwrap_or_default();
        Artifact {
            name: artifact.name.file_name(),
            component: artifact.name.component.to_string(),
            sha: artifact.name.version.to_string(),
            digest: artifact.provenance.digest.to_string(),
            integrity: integrity_word(&artifact.integrity).to_owned(),
            actual_digest,
            detail,
            size,
            path: file.display().to_string(),
            blob: artifact.blob_path.display().to_string(),
            reused_from: artifact.provenance.reused_from.clone(),
        }
    }
}

impl From<&StoreCheck> for ArtifactList {
    fn from(check: &StoreCheck) -> ArtifactList {
        ArtifactList {
            artifacts: check.artifacts.iter().map(Artifact::from).collect(),
            unreadable_records: check
                .unreadable_records
                .iter()
                .map(|r| UnreadableRecord {
                    name: r.name.file_name(),
                    record: r.record_path.display().to_string(),
                    message: r.message.clone(),
                })
                .collect(),
        }
    }
}
