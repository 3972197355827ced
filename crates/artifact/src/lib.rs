//! Deterministic packaging, digests, provenance and the content-addressed artifact store.
