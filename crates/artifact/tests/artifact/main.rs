//! Integration tests for packaging, extraction and the artifact store (one test binary).

mod extract;
mod fixtures;
mod package;
mod package_format;
mod properties;
mod store;
