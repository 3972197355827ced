//! Pipelines: a commit fetched, built, deployed to the first environment and promoted onward,
//! recorded stage by stage. `plan` holds the decisions (which stages, which queued pipeline runs).

pub mod plan;
