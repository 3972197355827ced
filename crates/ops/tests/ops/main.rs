//! Use cases driven in-process against real git repositories and real state, one binary.

mod commit_source;
mod fixtures;
