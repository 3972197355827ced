//! End-to-end tests: the real `sandpit` binary against real git repositories, real processes and
//! real HTTP, each test in a temporary directory with its own `SANDPIT_HOME` (and so its own daemon).
//!
//! One test binary for the whole suite keeps link times low (as cargo and ripgrep do).

mod harness;

mod build;
mod cli;
mod config;
mod cost;
mod database;
mod doctor;
mod environments;
mod faults;
mod gateway;
mod gitlab_reports;
mod hooks;
mod models;
mod overlay;
mod pipelines;
mod reaper;
mod remote_reads;
mod remote_writes;
mod runtime;
mod security;
mod server;
mod sleep;
mod terraform;
mod tf;
