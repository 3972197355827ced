//! Commits, versions and artifact names: how every byte stays traceable to a commit.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::Name;

/// A full 40-hex git commit id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

/// Why a string is not a commit id or version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("`{0}` is not a full 40-character hexadecimal commit id")]
    NotACommit(String),
    #[error("`{0}` is not a version: expected `<40-hex sha>` or `<40-hex sha>-dirty-<12 hex>`")]
    NotAVersion(String),
}

fn is_lower_hex(raw: &str, len: usize) -> bool {
    raw.len() == len
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl CommitId {
    pub fn parse(raw: &str) -> Result<CommitId, VersionError> {
        if is_lower_hex(raw, 40) {
            Ok(CommitId(raw.to_owned()))
        } else {
            Err(VersionError::NotACommit(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character abbreviation shown in human output.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CommitId {
    type Error = VersionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CommitId::parse(&value)
    }
}

impl From<CommitId> for String {
    fn from(id: CommitId) -> String {
        id.0
    }
}

/// What a build is a build *of*: a commit, or a commit plus uncommitted changes.
///
/// A dirty version is spelled `<sha>-dirty-<12 hex of the diff's hash>` so it can never pass for
/// the commit it started from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    commit: CommitId,
    dirty: Option<String>,
}

impl Version {
    pub fn clean(commit: CommitId) -> Version {
        Version {
            commit,
            dirty: None,
        }
    }

    /// `diff_hash` is the hex digest of the uncommitted changes; its first 12 characters are kept.
    pub fn dirty(commit: CommitId, diff_hash: &str) -> Version {
        Version {
            commit,
            dirty: Some(diff_hash.chars().take(12).collect()),
        }
    }

    pub fn parse(raw: &str) -> Result<Version, VersionError> {
        if let Some((sha, rest)) = raw.split_once("-dirty-") {
            if is_lower_hex(sha, 40) && is_lower_hex(rest, 12) {
                return Ok(Version::dirty(CommitId(sha.to_owned()), rest));
            }
            return Err(VersionError::NotAVersion(raw.to_owned()));
        }
        CommitId::parse(raw)
            .map(Version::clean)
            .map_err(|_| VersionError::NotAVersion(raw.to_owned()))
    }

    pub fn commit(&self) -> &CommitId {
        &self.commit
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.is_some()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dirty {
            None => write!(f, "{}", self.commit),
            Some(hash) => write!(f, "{}-dirty-{hash}", self.commit),
        }
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Version::parse(&value)
    }
}

impl From<Version> for String {
    fn from(version: Version) -> String {
        version.to_string()
    }
}

/// `<component>-<version>.zip`, the case study's naming convention for built artifacts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactName {
    pub component: Name,
    pub version: Version,
}

impl ArtifactName {
    pub fn new(component: Name, version: Version) -> ArtifactName {
        ArtifactName { component, version }
    }

    /// Parses `grade-api-<sha>.zip` (or without `.zip`). The version is found from the right, since
    /// component names may contain `-`.
    pub fn parse(raw: &str) -> Option<ArtifactName> {
        let stem = raw.strip_suffix(".zip").unwrap_or(raw);
        // A clean version is 40 chars; a dirty one 40 + 7 + 12.
        for version_len in [40 + "-dirty-".len() + 12, 40] {
            if stem.len() > version_len + 1 {
                let (head, version) = stem.split_at(stem.len() - version_len);
                if let (Some(component), Ok(version)) =
                    (head.strip_suffix('-'), Version::parse(version))
                {
                    if let Ok(component) = Name::parse(component) {
                        return Some(ArtifactName { component, version });
                    }
                }
            }
        }
        None
    }

    /// The file name, e.g. `grade-api-0123…cdef.zip`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.zip", self.component, self.version)
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn commit_ids_are_full_lowercase_hex() {
        assert!(CommitId::parse(SHA).is_ok());
        assert!(CommitId::parse(&SHA[..39]).is_err());
        assert!(CommitId::parse(&SHA.to_uppercase()).is_err());
        assert!(CommitId::parse("HEAD").is_err());
    }

    #[test]
    fn dirty_versions_never_pass_for_the_commit() {
        let commit = CommitId::parse(SHA).unwrap();
        let dirty = Version::dirty(commit.clone(), "abcdefabcdef999999");
        assert_eq!(dirty.to_string(), format!("{SHA}-dirty-abcdefabcdef"));
        assert_ne!(dirty, Version::clean(commit));
        assert_eq!(Version::parse(&dirty.to_string()).unwrap(), dirty);
    }

    #[test]
    fn artifact_names_round_trip() {
        for version in [SHA.to_owned(), format!("{SHA}-dirty-abcdefabcdef")] {
            let raw = format!("grade-api-{version}.zip");
            let parsed = ArtifactName::parse(&raw).unwrap();
            assert_eq!(parsed.component.as_str(), "grade-api");
            assert_eq!(parsed.version.to_string(), version);
            assert_eq!(parsed.file_name(), raw);
        }
        assert!(ArtifactName::parse("grade-api.zip").is_none());
        assert!(ArtifactName::parse(&format!("-{SHA}.zip")).is_none());
    }
}
