//! The provenance record kept beside every artifact: which commit and inputs it was built from,
//! by which command, when, and — for reused artifacts — whose bytes it shares.

use sandpit_domain::{CommitId, ComponentKind, Digest, Name, Version};
use serde::{Deserialize, Serialize};

/// Where an artifact's bytes came from. Stored as JSON under the artifact's name; the digest in
/// it is what the name refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub component: Name,
    pub kind: ComponentKind,
    /// The version this artifact is named for (`<sha>` or `<sha>-dirty-<hash>`).
    pub version: Version,
    /// The commit the version starts from.
    pub commit: CommitId,
    /// Git tree id of the component's source subtree at that version.
    pub input_tree: String,
    /// Hash of everything that decides the artifact's content (see `sandpit_build::plan`).
    pub input_key: String,
    /// The `build` command run, if any.
    pub build_command: Option<String>,
    /// Who built it (git `user.email`), when known.
    #[serde(default)]
    pub builder: Option<String>,
    /// The sandpit version that built it.
    pub sandpit_version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    pub digest: Digest,
    /// Size of the zip in bytes.
    pub size: u64,
    /// When the bytes were not rebuilt: the artifact file name whose bytes this name reuses.
    #[serde(default)]
    pub reused_from: Option<String>,
}
