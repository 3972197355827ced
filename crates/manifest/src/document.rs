//! The manifest document: what the control plane hands an agent. JSON with a schema version,
//! a per-environment sequence, the definition (the `sandpit.toml` text, so the agent needs no
//! git) and every artifact's digest. The signature is detached and covers the exact bytes
//! stored, so no canonical form is needed: the agent verifies the bytes, then parses them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{PublicKey, SecretKey};

/// The one manifest schema this build reads; a newer one is refused, not guessed at.
pub const SCHEMA_VERSION: u32 = 1;

/// A manifest that must not be applied, saying why.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest `{key}`: the signature does not verify with the trusted control plane key {trusted}; it was not written by that control plane or was changed after signing (nothing deployed)")]
    BadSignature { key: String, trusted: String },
    #[error("manifest `{key}` is not a manifest: {reason}")]
    Unreadable { key: String, reason: String },
    #[error("manifest `{key}` has schema version {found}; this sandpit reads version {SCHEMA_VERSION} (upgrade the agent)")]
    UnknownSchema { key: String, found: u32 },
    #[error("manifest `{key}`: its definition does not match its own sha256 ({expected}, the text and files hash to {found})")]
    DefinitionDigest {
        key: String,
        expected: String,
        found: String,
    },
    #[error("manifest `{key}`: artifact `{file}` has sha256 {found}, the manifest lists {expected} (nothing deployed)")]
    ArtifactDigest {
        key: String,
        file: String,
        expected: String,
        found: String,
    },
}

/// The project definition at the deployed commit, carried whole: the `sandpit.toml` text and
/// every other file a deployment reads from the commit (the database's migrations, seed and
/// shared data set), so an agent needs no git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The `sandpit.toml` text.
    pub text: String,
    /// The SQL files, by their path relative to the project's directory (as `sandpit.toml`
    /// names them, e.g. `migrations/001_init.sql`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// The sha256 (hex) of the canonical listing of the text and the files
    /// ([`Definition::digest`]): one value that changes when any byte of them does.
    pub sha256: String,
}

impl Definition {
    /// A definition of `sandpit.toml` alone.
    pub fn new(text: String) -> Self {
        Self::with_files(text, BTreeMap::new())
    }

    /// A definition of `sandpit.toml` and the files it names.
    pub fn with_files(text: String, files: BTreeMap<String, String>) -> Self {
        let sha256 = Self::digest(&text, &files);
        Self {
            text,
            files,
            sha256,
        }
    }

    /// The sha256 of a canonical listing: one line per file (`sandpit.toml` first, then the
    /// others in path order), each `<sha256 of its bytes> <byte length> <path>`. A path cannot
    /// hold a newline (refused by [`Manifest::open`]), so two listings never read alike.
    pub fn digest(text: &str, files: &BTreeMap<String, String>) -> String {
        let mut listing = format!(
            "{} {} sandpit.toml\n",
            sha256_hex(text.as_bytes()),
            text.len()
        );
        for (path, contents) in files {
            listing.push_str(&format!(
                "{} {} {path}\n",
                sha256_hex(contents.as_bytes()),
                contents.len()
            ));
        }
        sha256_hex(listing.as_bytes())
    }
}

/// Why a carried file's path is not one the agent looks up (`None`: it is fine): relative,
/// `/`-separated names without `.`, `..`, empty parts or control characters.
fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() || path.starts_with('/') {
        return Some("it must be a relative path");
    }
    if path.chars().any(char::is_control) || path.contains('\\') {
        return Some("it holds a control character or a backslash");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Some("it has an empty, `.` or `..` part");
    }
    None
}

/// One artifact the agent must fetch and verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub component: String,
    /// Its key in the environment's store, e.g. `api-<sha>.zip`.
    pub file: String,
    /// sha256 of the file's bytes, hex.
    pub sha256: String,
    pub size: u64,
}

/// A deployment manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    /// Ordered per environment: a higher sequence is newer.
    pub sequence: u64,
    pub id: String,
    pub project: String,
    pub env: String,
    pub version: String,
    pub created_at: String,
    pub requester: String,
    pub definition: Definition,
    pub artifacts: Vec<Artifact>,
}

/// Where a manifest lives in its environment's store: zero-padded so keys list in order.
pub fn manifest_key(sequence: u64, id: &str) -> String {
    format!("manifests/{sequence:012}-{id}.json")
}

/// The sequence and id of a key [`manifest_key`] made; `None` for any other key (signatures,
/// stray files), which a listing skips.
pub fn parse_manifest_key(key: &str) -> Option<(u64, &str)> {
    let name = key.strip_prefix("manifests/")?.strip_suffix(".json")?;
    let (sequence, id) = name.split_once('-')?;
    if sequence.len() != 12 || id.is_empty() || id.contains('/') {
        return None;
    }
    Some((sequence.parse().ok()?, id))
}

/// Where a manifest's detached signature lives.
pub fn signature_key(manifest_key: &str) -> String {
    format!("{manifest_key}.sig")
}

impl Manifest {
    /// The bytes to store and their detached signature.
    pub fn sign(&self, key: &SecretKey) -> (Vec<u8>, String) {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        let signature = key.sign(&bytes);
        (bytes, signature)
    }

    /// The manifest in `bytes`, believed only when `signature` verifies with `trusted` and the
    /// document is of a known schema with a consistent definition. `key` names it in errors.
    pub fn open(
        key: &str,
        bytes: &[u8],
        signature: &str,
        trusted: &PublicKey,
    ) -> Result<Self, ManifestError> {
        if !trusted.verifies(bytes, signature) {
            return Err(ManifestError::BadSignature {
                key: key.to_owned(),
                trusted: trusted.to_string(),
            });
        }
        let unreadable = |reason: String| ManifestError::Unreadable {
            key: key.to_owned(),
            reason,
        };
        // The schema first, so a newer document is refused as newer rather than as malformed.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|error| unreadable(error.to_string()))?;
        let found = value
            .get("schema")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| unreadable("no `schema` number".to_owned()))?;
        if found != u64::from(SCHEMA_VERSION) {
            return Err(ManifestError::UnknownSchema {
                key: key.to_owned(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|error| unreadable(error.to_string()))?;
        if let Some((path, problem)) = manifest
            .definition
            .files
            .keys()
            .find_map(|path| path_problem(path).map(|problem| (path, problem)))
        {
            return Err(unreadable(format!(
                "the carried file {path:?} cannot be used: {problem}"
            )));
        }
        if let Some(artifact) = manifest
            .artifacts
            .iter()
            .find(|a| path_problem(&a.file).is_some() || a.file.contains('/'))
        {
            return Err(unreadable(format!(
                "the artifact file {:?} is not a plain file name",
                artifact.file
            )));
        }
        let found = Definition::digest(&manifest.definition.text, &manifest.definition.files);
        if found != manifest.definition.sha256 {
            return Err(ManifestError::DefinitionDigest {
                key: key.to_owned(),
                expected: manifest.definition.sha256.clone(),
                found,
            });
        }
        Ok(manifest)
    }

    /// Checks a downloaded artifact's bytes against what this manifest lists for it.
    pub fn check_artifact(
        &self,
        key: &str,
        artifact: &Artifact,
        bytes: &[u8],
    ) -> Result<(), ManifestError> {
        let found = sha256_hex(bytes);
        if found != artifact.sha256 || bytes.len() as u64 != artifact.size {
            return Err(ManifestError::ArtifactDigest {
                key: key.to_owned(),
                file: artifact.file.clone(),
                expected: artifact.sha256.clone(),
                found,
            });
        }
        Ok(())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            schema: SCHEMA_VERSION,
            sequence: 3,
            id: "d-abc".to_owned(),
            project: "shop".to_owned(),
            env: "prod".to_owned(),
            version: "1a2b3c".to_owned(),
            created_at: "2026-12-04T20:00:00Z".to_owned(),
            requester: "ci".to_owned(),
            definition: Definition::new("[project]\nname = \"shop\"\n".to_owned()),
            artifacts: vec![Artifact {
                component: "api".to_owned(),
                file: "api-1a2b3c.zip".to_owned(),
                sha256: sha256_hex(b"zip bytes"),
                size: 9,
            }],
        }
    }

    #[test]
    fn a_signed_manifest_opens_as_itself() {
        let key = SecretKey::generate().unwrap();
        let (bytes, signature) = manifest().sign(&key);
        let opened = Manifest::open("m", &bytes, &signature, &key.public()).unwrap();
        assert_eq!(opened, manifest());
        let key = manifest_key(3, "d-abc");
        assert_eq!(key, "manifests/000000000003-d-abc.json");
        assert_eq!(parse_manifest_key(&key), Some((3, "d-abc")));
        assert_eq!(parse_manifest_key(&signature_key(&key)), None);
        assert_eq!(parse_manifest_key("manifests/3-x.json"), None);
    }

    #[test]
    fn a_tampered_manifest_is_refused() {
        let key = SecretKey::generate().unwrap();
        let (bytes, signature) = manifest().sign(&key);
        let forged = String::from_utf8(bytes)
            .unwrap()
            .replace(&sha256_hex(b"zip bytes"), &sha256_hex(b"evil bytes"));
        let error = Manifest::open("m", forged.as_bytes(), &signature, &key.public()).unwrap_err();
        assert!(
            matches!(error, ManifestError::BadSignature { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_manifest_signed_by_another_key_is_refused() {
        let key = SecretKey::generate().unwrap();
        let forger = SecretKey::generate().unwrap();
        let (bytes, signature) = manifest().sign(&forger);
        let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
        assert!(error.to_string().contains("does not verify"), "{error}");
    }

    #[test]
    fn an_unknown_schema_is_refused_as_newer() {
        let key = SecretKey::generate().unwrap();
        let mut newer = manifest();
        newer.schema = 2;
        let (bytes, signature) = newer.sign(&key);
        let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
        assert!(
            matches!(error, ManifestError::UnknownSchema { found: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_definition_that_does_not_match_its_digest_is_refused() {
        let key = SecretKey::generate().unwrap();
        let mut odd = manifest();
        odd.definition.text.push_str("# changed\n");
        let (bytes, signature) = odd.sign(&key);
        let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
        assert!(
            matches!(error, ManifestError::DefinitionDigest { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_definition_digest_covers_every_carried_file() {
        let files = |sql: &str| {
            [("migrations/001.sql".to_owned(), sql.to_owned())]
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        };
        let text = "[project]\nname = \"shop\"\n".to_owned();
        let a = Definition::with_files(text.clone(), files("create table t ();"));
        let b = Definition::with_files(text.clone(), files("create table u ();"));
        assert_ne!(a.sha256, b.sha256);
        assert_ne!(a.sha256, Definition::new(text.clone()).sha256);
        // A file's bytes moved into its name do not give the same listing.
        let moved = Definition::with_files(
            text,
            [(
                "migrations/001.sql create table t ();".to_owned(),
                String::new(),
            )]
            .into_iter()
            .collect(),
        );
        assert_ne!(a.sha256, moved.sha256);

        let key = SecretKey::generate().unwrap();
        let mut carrying = manifest();
        carrying.definition = a;
        let (bytes, signature) = carrying.sign(&key);
        let opened = Manifest::open("m", &bytes, &signature, &key.public()).unwrap();
        assert_eq!(opened.definition.files, files("create table t ();"));
        // Changed after the digest was taken (and signed again): refused.
        carrying
            .definition
            .files
            .insert("migrations/002.sql".to_owned(), "drop table t;".to_owned());
        let (bytes, signature) = carrying.sign(&key);
        let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
        assert!(
            matches!(error, ManifestError::DefinitionDigest { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_carried_path_that_climbs_out_is_refused() {
        let key = SecretKey::generate().unwrap();
        for path in [
            "../etc/passwd",
            "/etc/passwd",
            "a//b.sql",
            "a/./b.sql",
            "a\nb",
        ] {
            let mut odd = manifest();
            odd.definition = Definition::with_files(
                odd.definition.text.clone(),
                [(path.to_owned(), "select 1;".to_owned())]
                    .into_iter()
                    .collect(),
            );
            let (bytes, signature) = odd.sign(&key);
            let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
            assert!(
                matches!(error, ManifestError::Unreadable { .. }),
                "{path}: {error}"
            );
        }
        let mut odd = manifest();
        odd.artifacts[0].file = "../api-1a2b3c.zip".to_owned();
        let (bytes, signature) = odd.sign(&key);
        let error = Manifest::open("m", &bytes, &signature, &key.public()).unwrap_err();
        assert!(error.to_string().contains("plain file name"), "{error}");
    }

    #[test]
    fn an_artifact_is_checked_against_its_listed_digest() {
        let m = manifest();
        m.check_artifact("m", &m.artifacts[0], b"zip bytes")
            .unwrap();
        let error = m
            .check_artifact("m", &m.artifacts[0], b"zip bytez")
            .unwrap_err();
        assert!(error.to_string().contains("api-1a2b3c.zip"), "{error}");
    }
}
