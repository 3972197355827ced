//! `sandpit artifacts`: what the project's artifact store holds, each artifact's bytes checked
//! against its digest — a damaged one is reported, never a reason to stop answering.

use sandpit_artifact::store::{ArtifactStore, StoreCheck};

use crate::Context;

/// The build store's artifacts, or with `env` that environment's store.
pub fn artifacts(context: &Context, env: Option<&str>) -> anyhow::Result<StoreCheck> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let root = match env {
        Some(env) => {
            let env = crate::deploy::environment(&spec, env)?;
            crate::deployment::env_store_root(context, &project, &env)
        }
        None => context.artifact_store_root(project.as_str()),
    };
    if !root.exists() {
        return Ok(StoreCheck::default());
    }
    Ok(ArtifactStore::open(&root)?.check_all()?)
}
