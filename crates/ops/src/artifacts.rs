//! `sandpit artifacts`: what the project's artifact store holds.

use sandpit_artifact::store::{ArtifactStore, StoredArtifact};

use crate::project::ProjectDir;
use crate::Context;

pub fn artifacts(context: &Context) -> anyhow::Result<Vec<StoredArtifact>> {
    let project = ProjectDir::locate(&context.project_dir)?.project_name()?;
    let root = context.artifact_store_root(project.as_str());
    if !root.exists() {
        return Ok(Vec::new());
    }
    let store = ArtifactStore::open(&root)?;
    Ok(store.list()?)
}
