//! `sandpit status BIOME`: what one biome runs and how it is doing.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

pub async fn status(context: &Context, biome: &str) -> anyhow::Result<BiomeStatus> {
    let project = ProjectDir::locate(&context.project_dir)?.project_name()?;
    let target = crate::target::Target::parse(biome)?;
    let biome = target.name.clone();
    // A read never starts the daemon (see `daemon_connection::query`).
    match daemon_connection::query(context, &Request::Status { project, biome }).await? {
        ReplyBody::Biome(status) => {
            target.check_env(&status.env)?;
            Ok(status)
        }
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
