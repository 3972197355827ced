//! Integration tests against the real `terraform` binary (one test binary), each in a temporary
//! directory of its own with an empty CLI configuration file and only built-in resources, so
//! nothing is ever downloaded.

mod apply;
mod backend;
mod find;
mod fixtures;
mod plan;
mod validate;
