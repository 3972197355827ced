//! `sandpit ls`: the project's biomes.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

pub async fn ls(context: &Context) -> anyhow::Result<Vec<BiomeStatus>> {
    let project = ProjectDir::locate(&context.project_dir)?.project_name()?;
    match daemon_connection::request(
        context,
        &Request::List {
            project: Some(project),
        },
        |_, _| {},
    )
    .await?
    {
        ReplyBody::Biomes { biomes } => Ok(biomes),
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
