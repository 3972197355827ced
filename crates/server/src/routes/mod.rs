//! The routes, one module per resource; each module's `router` is merged by [`crate::app`].
//! A new resource (projects, biomes, history) is a module here plus its paths in
//! [`crate::openapi`].

pub mod artifacts;
pub mod biomes;
pub mod config;
pub mod decisions;
pub mod environments;
pub mod history;
pub mod hooks;
pub mod logs;
pub mod pipelines;
pub mod projects;
pub mod service;
pub mod status;
pub mod tokens;
pub mod trace;
pub mod whoami;
