//! Ed25519 key pairs shown as base64url text: the control plane's signing key and each agent's
//! own key. Only the public half is ever printed or registered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// A key or signature that could not be read or made, saying which and why.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is not base64url text: {source}")]
    Encoding {
        what: &'static str,
        source: base64::DecodeError,
    },
    #[error("{what} has {found} bytes, {expected} expected")]
    Length {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{0} is not a valid ed25519 public key")]
    NotAKey(&'static str),
    #[error("the operating system gave no random bytes for a new key: {0}")]
    Random(String),
}

/// A private signing key. Debug output never shows the secret.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

impl SecretKey {
    /// A new key from 32 bytes of the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| KeyError::Random(error.to_string()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key from the text [`SecretKey::to_text`] wrote.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let seed = decode::<32>("the secret key", text)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key as base64url text (for a 0600 file in the owner's home, nowhere else).
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A detached signature over exactly `bytes`, as base64url text.
    pub fn sign(&self, bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.0.sign(bytes).to_bytes())
    }
}

/// A public key that verifies signatures; what an agent trusts and what the control plane
/// registers for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bytes = decode::<32>("the public key", text)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::NotAKey("the public key"))
    }

    /// Whether `signature` (base64url text) was made over exactly `bytes` by this key's
    /// secret half. Strict verification: no malleable signatures.
    pub fn verifies(&self, bytes: &[u8], signature: &str) -> bool {
        let Ok(raw) = decode::<64>("the signature", signature.trim()) else {
            return false;
        };
        self.0
            .verify_strict(bytes, &Signature::from_bytes(&raw))
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0.to_bytes()))
    }
}

fn decode<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|source| KeyError::Encoding { what, source })?;
    let found = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length {
        what,
        found,
        expected: N,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let signature = key.sign(b"manifest bytes");
        assert!(key.public().verifies(b"manifest bytes", &signature));
        assert!(!key.public().verifies(b"manifest bytez", &signature));
        assert!(!other.public().verifies(b"manifest bytes", &signature));
        assert!(!key.public().verifies(b"manifest bytes", "not a signature"));
    }

    #[test]
    fn keys_round_trip_through_text() {
        let key = SecretKey::generate().unwrap();
        let again = SecretKey::from_text(&key.to_text()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = PublicKey::from_text(&key.public().to_string()).unwrap();
        assert_eq!(public, key.public());
        assert!(!format!("{key:?}").contains(&key.to_text()));
    }

    #[test]
    fn bad_key_text_says_what_is_wrong() {
        let error = PublicKey::from_text("abc").unwrap_err().to_string();
        assert!(error.contains("public key"), "{error}");
        let error = PublicKey::from_text("!!!").unwrap_err().to_string();
        assert!(error.contains("base64url"), "{error}");
    }
}
