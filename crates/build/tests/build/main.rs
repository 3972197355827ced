//! Integration tests against real git repositories in temporary directories (one test binary).

mod execute;
mod fixtures;
mod git;
mod mirror;
