//! `sandpit down BIOME`: stop every process of a biome and remove it.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

/// Stops the biome's processes, then drops its database and role (after the processes, so
/// nothing is connected any more).
pub async fn down(
    context: &Context,
    biome: &str,
    mut on_event: impl FnMut(Option<&sandpit_domain::Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let project = spec.project.name.clone();
    let target = crate::target::Target::parse(biome)?;
    let biome = target.name.clone();
    if spec.environments.contains_key(&biome) {
        // An environment's base holds the environment's data: removing it is its own, deliberate
        // act, recorded and approved like a deployment.
        anyhow::bail!(
            "`{biome}` is an environment, not a biome: `sandpit down` only removes biomes\nhint: to stop `{biome}`'s deployment and drop its database, run `sandpit env destroy {biome} --confirm {biome}`"
        );
    }
    let request = Request::Down {
        project,
        biome: biome.clone(),
    };
    let status = match daemon_connection::request(context, &request, &mut on_event).await? {
        ReplyBody::Biome(status) => status,
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    };
    let dropped = crate::database::drop(context, &spec, &status.env, &biome, &mut |m| on_event(None, m))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "biome `{biome}`'s processes are stopped, but its database was not dropped: {e}\nhint: run `sandpit down {biome}` again once the database is reachable"
            )
        })?;
    if dropped {
        on_event(None, "dropped its database and role");
    }
    crate::models::detach(context, &spec, &status.env, &biome).await?;
    Ok(status)
}
