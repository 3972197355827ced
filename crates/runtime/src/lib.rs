//! The supervisor: runs biomes as processes, health checks, restarts, logs, reconciliation, and the
//! daemon protocol the CLI speaks to it.
//!
//! This is the only crate that starts long-running processes; [`process`] is the only module in it
//! that spawns.

pub mod client;
pub mod daemon;
pub mod health;
pub mod log_writer;
pub mod logs;
pub mod owner_only;
pub mod port_offer;
pub mod ports;
pub mod process;
pub mod protocol;
pub mod secret_env;
pub mod state_file;
pub mod supervisor;
pub mod usage;

pub use client::{Client, ClientError};
pub use daemon::DaemonPaths;
pub use supervisor::{BiomeKey, Supervisor, SupervisorConfig};
