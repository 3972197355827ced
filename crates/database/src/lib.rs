//! Per-biome databases on one shared PostgreSQL instance per environment.
//!
//! The shape, from the bottom up:
//!
//! - [`binaries`] finds PostgreSQL's server programs (`initdb`, `postgres`).
//! - [`cluster`] initialises the embedded instance under sandpit's state directory and describes
//!   the command that runs it; the supervisor (`sandpit-runtime`) spawns and watches that command,
//!   this crate never keeps a server process of its own.
//! - [`migrations`] (pure) orders a project's migration files and hashes them.
//! - [`script`] (pure) splits a file into statements with a small SQL lexer and refuses
//!   transaction control, since sandpit runs each file in a transaction of its own.
//! - [`plan`] (pure) compares what a database has applied with a commit's migrations: pending,
//!   changed (refused) and ahead (allowed).
//! - [`names`] (pure) turns validated project and biome names into PostgreSQL identifiers and
//!   quotes every identifier and literal that goes into SQL.
//! - [`timeouts`] bounds every wait on the server: connecting, each round trip, each lock.
//! - [`steps`] reports how long each step of creating and dropping a biome database took.
//! - [`admin`] talks SQL to the instance as its administrator: one template database per migration
//!   content hash, a database and a login role per biome cloned from it, a read-only shared
//!   reference database, and dropping all of it again. In place, it brings an existing database
//!   forward to a commit's migrations after a rehearsal on its live data that is rolled back.
//!
//! Isolation is PostgreSQL's own: `CONNECT` is revoked from `PUBLIC` on every database sandpit
//! creates, each biome role owns exactly its own database (and, as its `pg_database_owner`, the
//! objects cloned into it from a template), and the shared database only grants `SELECT`. Passwords are carried as [`Secret`] so they never reach errors, `Debug` output or logs.

pub mod admin;
pub mod binaries;
pub mod cluster;
pub mod error;
mod execute;
mod history;
pub mod migrations;
pub mod names;
pub mod plan;
pub mod script;
pub mod secret;
pub mod steps;
pub mod timeouts;

pub use admin::{libpq_url, Admin, BiomeDatabase};
pub use binaries::PgBinaries;
pub use cluster::{EmbeddedCluster, LaunchCommand, RunAs, ADMIN_USER, PREPARE_WAIT};
pub use error::DatabaseError;
pub use migrations::{MigrationFile, MigrationSet};
pub use names::{quote_identifier, quote_literal, TemplateName};
pub use plan::{plan, AppliedMigration, ChangedMigration, MigrationKind, MigrationPlan};
pub use secret::{RedactedUrl, Secret};
pub use timeouts::Timeouts;
