//! Runs the `terraform` CLI (or OpenTofu's `tofu`) for sandpit: finding the binary, `init`,
//! `validate` with located diagnostics, `plan -out` with a summary, `apply` (directly or of a
//! saved plan), `destroy`, `output -json` and `state list`.
//!
//! It knows nothing about biomes, deployments or sandpit's state store: the caller (ops) says
//! which module directory to run in, with which variables and which backend. What it guarantees:
//!
//! - every terraform process gets the caller's environment minus anything that would change
//!   what terraform does behind sandpit's back (`TF_VAR_*`, `TF_HTTP_*`, `TF_CLI_ARGS*`,
//!   `TF_WORKSPACE`, `TF_DATA_DIR`, `TF_LOG*`), never calls home (`CHECKPOINT_DISABLE=1`), never
//!   prompts (`-input=false`, `TF_INPUT=0`, stdin null) and never colours (`-no-color`);
//! - variables and the http backend's credentials travel only in the environment
//!   (`TF_VAR_<name>`, `TF_HTTP_*`), never on a command line or in a file;
//! - every line terraform prints is appended to the run's log, and a failure carries the last
//!   lines of it, classified (a stale saved plan, a held state lock, anything else);
//! - the module needs no backend block of its own: with an http backend the runner writes
//!   `sandpit_backend_override.tf`, which replaces whatever backend the module declares.
//!
//! The parsers of terraform's output (`version -json`, `validate -json`, `show -json PLAN`,
//! `output -json`, failure messages) are pure functions in their own modules, table-tested on
//! output captured from terraform 1.11; `process.rs` is the only module that spawns.

mod backend_override;
mod binary;
mod diagnostics;
mod environment;
mod error;
mod failure;
mod outputs;
mod plan_summary;
mod process;
mod run;
mod validate;

pub use backend_override::{BACKEND_OVERRIDE_FILE, BACKEND_OVERRIDE_TEXT};
pub use binary::{Terraform, INSTALL_HINT};
pub use diagnostics::{Diagnostic, InvalidModule, Severity};
pub use error::TerraformError;
pub use outputs::Output;
pub use plan_summary::{Action, PlanSummary, ResourceChange};
pub use run::{
    apply, apply_plan, destroy, init, outputs, plan_to_file, state_list, HttpBackend, Run,
    DEFAULT_LOCK_TIMEOUT,
};
pub use validate::validate;
