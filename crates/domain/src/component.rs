//! Component kinds and the states a running component moves through.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of thing a component is; decides how it is built, packaged and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A long-running HTTP process.
    Service,
    /// Runs to completion (migrations, data preparation).
    Job,
    /// An ONNX model served by the environment's shared model endpoint.
    Model,
    /// A Terraform root module, applied per environment base and biome before what depends on it.
    Terraform,
}

impl ComponentKind {
    /// Whether the supervisor runs it as a process (services and jobs); models are served by the
    /// model endpoint and terraform components are applied by sandpit before the processes start.
    pub fn runs_as_process(self) -> bool {
        matches!(self, ComponentKind::Service | ComponentKind::Job)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Service => "service",
            ComponentKind::Job => "job",
            ComponentKind::Model => "model",
            ComponentKind::Terraform => "terraform",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The observed state of one component of a biome, as `status --json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    /// Started, health check not yet passed (or a job still running).
    Starting,
    /// The health path answers 2xx.
    Healthy,
    /// Running, but the health path stopped answering 2xx or never did within the timeout.
    Unhealthy,
    /// Exited unexpectedly; waiting to be restarted with backoff.
    Crashed,
    /// Not running, on purpose.
    Stopped,
    /// A job that exited 0.
    Succeeded,
    /// A job that exited non-zero.
    Failed,
}

impl ComponentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Starting => "starting",
            ComponentState::Healthy => "healthy",
            ComponentState::Unhealthy => "unhealthy",
            ComponentState::Crashed => "crashed",
            ComponentState::Stopped => "stopped",
            ComponentState::Succeeded => "succeeded",
            ComponentState::Failed => "failed",
        }
    }

    /// Whether this state counts as "working" when summarising a biome.
    pub fn is_good(self) -> bool {
        matches!(self, ComponentState::Healthy | ComponentState::Succeeded)
    }
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
