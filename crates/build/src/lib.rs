//! Builds from a commit: git snapshot, build plan (what is rebuilt vs reused), build execution,
//! publishing into the artifact store.
//!
//! - [`git`] talks to `git` (as a subprocess, with a controlled environment and never touching
//!   the user's index or work tree).
//! - [`mirror`] keeps a server's bare mirror of a project's repository: fetches it, and says
//!   which commit a branch or sha names in it (hostile URLs refused, credentials redacted).
//! - [`plan`] is pure: from each component's input tree and what the store already holds, it
//!   decides what is built and what is reused.
//! - [`execute`] checks the commit out once into a temporary directory, runs the build commands
//!   with a scrubbed environment, packages and stores the results.

pub mod execute;
pub mod git;
pub mod mirror;
pub mod plan;

pub use execute::{
    build, BuildError, BuildProgress, BuildReport, BuildRequest, ComponentOutcome, ComponentReport,
    NoProgress, Outcome,
};
pub use git::{GitError, Repository, WorkingTreeSnapshot};
pub use mirror::{FetchReport, HeadChange, Mirror, MirrorError, RemoteUrl};
pub use plan::{input_key, plan, ComponentInput, PlannedStep, PACKAGING_FORMAT};
