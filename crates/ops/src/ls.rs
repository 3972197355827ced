//! `sandpit ls`: the project's biomes, and the environments' base deployments beside them.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

/// What runs for the project, split into biomes and environment bases.
#[derive(Debug)]
pub struct Listing {
    /// `false` when no daemon runs: then nothing runs, and the lists are empty.
    pub daemon_running: bool,
    pub biomes: Vec<BiomeStatus>,
    pub environments: Vec<BiomeStatus>,
}

pub async fn ls(context: &Context) -> anyhow::Result<Listing> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let request = Request::List {
        project: Some(spec.project.name.clone()),
    };
    // A read never starts the daemon: that would bring stopped biomes back as a side effect.
    match daemon_connection::request_if_running(context, &request).await? {
        None => Ok(Listing {
            daemon_running: false,
            biomes: Vec::new(),
            environments: Vec::new(),
        }),
        Some(ReplyBody::Biomes { biomes }) => {
            // An environment's base runs as a biome named after the environment.
            let (environments, biomes) = biomes.into_iter().partition(|b| b.biome == b.env);
            Ok(Listing {
                daemon_running: true,
                biomes,
                environments,
            })
        }
        Some(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
