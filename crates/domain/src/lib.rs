//! sandpit's vocabulary: the names, identifiers and policies every other crate speaks in.
//!
//! Everything here is pure — no I/O, no clocks, no async — so it can be unit-tested with tables.

pub mod backoff;
pub mod component;
pub mod digest;
pub mod name;
pub mod quoted;
pub mod size;
pub mod span;
pub mod suggestion;
pub mod version;

pub use backoff::Backoff;
pub use component::{ComponentKind, ComponentState};
pub use digest::{Digest, DigestError};
pub use name::{Name, NameError, MAX_NAME_LEN};
pub use quoted::{escape_hidden, quoted, Quoted};
pub use size::{ByteSize, ByteSizeError};
pub use span::{Span, SpanError};
pub use version::{ArtifactName, CommitId, Version, VersionError};
