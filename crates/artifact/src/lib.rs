//! Deterministic packaging, digests, provenance and the content-addressed artifact store.
//!
//! - [`package`] turns a directory into a zip whose bytes depend only on the tree's content
//!   (names, bytes, exec bits, symlinks), so the same commit gives the same digest anywhere.
//! - [`extract`] unpacks a zip refusing anything that could write outside the destination.
//! - [`provenance`] is the record kept beside every artifact: which commit, which inputs, which
//!   command, when.
//! - [`store`] keeps blobs by digest and artifact names as references to them, verifying the
//!   digest every time it hands bytes out; each store owns its bytes (imports clone or copy).
//!
//! Nothing here runs processes or reads environment variables.

mod confinement;
pub mod extract;
mod ordered_pipeline;
pub mod package;
pub mod provenance;
pub mod store;
mod zip_records;

pub use extract::{extract, ExtractError, ExtractSummary};
pub use package::{
    package_dir, package_dir_with, PackOptions, PackPhases, PackageError, PackageSummary,
};
pub use provenance::Provenance;
pub use store::{
    ArtifactCheck, ArtifactStore, GarbageReport, ImportMethod, Imported, Integrity, Retention,
    StoreCheck, StoreError, StoredArtifact, UnreadableRecord,
};
