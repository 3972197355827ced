//! `sandpit ls`: the project's biomes, and the environments' base deployments beside them.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

/// What runs for the project, split into biomes and environment bases.
#[derive(Debug)]
pub struct Listing {
    pub biomes: Vec<BiomeStatus>,
    pub environments: Vec<BiomeStatus>,
}

pub async fn ls(context: &Context) -> anyhow::Result<Listing> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let request = Request::List {
        project: Some(spec.project.name.clone()),
    };
    match daemon_connection::request(context, &request, |_, _| {}).await? {
        ReplyBody::Biomes { biomes } => {
            // An environment's base runs as a biome named after the environment.
            let (environments, biomes) = biomes.into_iter().partition(|b| b.biome == b.env);
            Ok(Listing {
                biomes,
                environments,
            })
        }
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
