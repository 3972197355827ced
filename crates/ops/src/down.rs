//! `sandpit down BIOME`: stop every process of a biome and remove it.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

pub async fn down(
    context: &Context,
    biome: &str,
    on_event: impl FnMut(Option<&sandpit_domain::Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    let project = ProjectDir::locate(&context.project_dir)?.project_name()?;
    let biome = crate::up::parse_biome_name(biome)?;
    match daemon_connection::request(context, &Request::Down { project, biome }, on_event).await? {
        ReplyBody::Biome(status) => Ok(status),
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
