//! Integration tests for `sandpit-database` against a real PostgreSQL started by the tests.
//!
//! One server is shared by the whole binary (each test uses its own project name); the crash
//! test starts a private one because it kills it.

mod binaries;
mod biomes;
mod cluster;
mod crash;
mod fixture;
mod in_place;
mod locks;
mod ownership;
mod shared;
mod templates;
mod timeouts;
