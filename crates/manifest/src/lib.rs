//! Deployment manifests for environment agents: the signed record the control plane writes next
//! to the artifacts in an environment's store, the keys that sign it, and the pure decision of
//! which manifest an agent applies next.
//!
//! No I/O lives here: callers read and write the bytes (through `sandpit-bucket`); this crate
//! says what the bytes mean and whether they are to be believed.

mod document;
mod keys;
mod plan;

pub use document::{
    manifest_key, parse_manifest_key, signature_key, Artifact, Definition, Manifest, ManifestError,
    SCHEMA_VERSION,
};
pub use keys::{KeyError, PublicKey, SecretKey};
pub use plan::{next_action, Action, Seen};
