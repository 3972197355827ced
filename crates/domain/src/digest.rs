//! sha256 content digests, spelled `sha256:<64 hex>` wherever a user sees them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A sha256 digest of some bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest: expected `sha256:` followed by 64 lowercase hex characters")]
pub struct DigestError(String);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(hex::encode(Sha256::digest(bytes)))
    }

    /// Wraps a finished hasher.
    pub fn from_hasher(hasher: Sha256) -> Digest {
        Digest(hex::encode(hasher.finalize()))
    }

    /// Accepts `sha256:<hex>` or bare `<hex>`.
    pub fn parse(raw: &str) -> Result<Digest, DigestError> {
        let hex_part = raw.strip_prefix("sha256:").unwrap_or(raw);
        if hex_part.len() == 64
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest(hex_part.to_owned()))
        } else {
            Err(DigestError(raw.to_owned()))
        }
    }

    /// The 64 hex characters, as used in file names.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Digest::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_known_bytes() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            digest.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&digest.to_string()).unwrap(), digest);
        assert_eq!(Digest::parse(digest.hex()).unwrap(), digest);
        assert!(Digest::parse("sha256:xyz").is_err());
    }
}
