//! Use cases, one module per verb: what `sandpit <verb>` does, independent of how it is printed.
//!
//! The CLI turns arguments into calls here and prints what comes back; every function takes the
//! [`Context`] it needs instead of reading the process environment.

pub mod agent;
pub mod approve;
pub mod artifacts;
pub mod authorization;
pub mod build;
pub mod config;
pub mod context;
pub mod cost;
pub mod daemon_connection;
pub mod database;
pub mod deploy;
pub mod deployment;
pub mod destroy;
pub mod doctor;
pub mod down;
pub mod env;
pub mod error;
pub mod exec;
pub mod expiry;
pub mod forge;
pub mod gc;
pub mod history;
pub mod init;
pub mod logs;
pub mod ls;
pub mod models;
pub mod overlay;
pub mod ownership;
pub mod pipeline;
pub mod principal;
pub mod project;
pub mod projects;
pub mod promote;
pub mod psql;
pub mod reap;
pub mod release;
pub mod report;
pub mod restart;
pub mod rollback;
pub mod sleep;
pub mod source;
pub mod sql_files;
pub mod status;
pub mod target;
pub mod terraform;
pub mod tf;
pub mod timings;
pub mod tokens;
pub mod trace;
pub mod up;
pub mod verify;

pub use context::Context;
pub use source::Source;
