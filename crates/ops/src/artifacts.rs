//! `sandpit artifacts`: what the project's artifact store holds.

use sandpit_artifact::store::{ArtifactStore, StoredArtifact};

use crate::project::ProjectDir;
use crate::Context;

/// The build store's artifacts, or with `env` that environment's store.
pub fn artifacts(context: &Context, env: Option<&str>) -> anyhow::Result<Vec<StoredArtifact>> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let project = spec.project.name.clone();
    let root = match env {
        Some(env) => {
            let env = crate::deploy::environment(&spec, env)?;
            crate::deployment::env_store(context, &project, &env)?
                .root()
                .to_path_buf()
        }
        None => context.artifact_store_root(project.as_str()),
    };
    if !root.exists() {
        return Ok(Vec::new());
    }
    let store = ArtifactStore::open(&root)?;
    Ok(store.list()?)
}
