//! `sandpit status [BIOME]`: what one biome runs and how it is doing.

use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

/// The status of the biome `raw` names (the current branch's when `None`; see
/// [`crate::target::resolve`]). An unknown biome is refused with a did-you-mean among the
/// biomes the daemon runs and the ones in the history.
pub async fn status(context: &Context, raw: Option<&str>) -> anyhow::Result<BiomeStatus> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let project = spec.project.name.clone();
    let target = crate::target::resolve(context, &spec, raw)?;
    let biome = target.name.clone();
    // A read never starts the daemon (see `daemon_connection::query`).
    let listed = match daemon_connection::query(
        context,
        &Request::List {
            project: Some(project.clone()),
        },
    )
    .await?
    {
        ReplyBody::Biomes { biomes } => biomes,
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    };
    let Some(status) = listed.iter().find(|b| b.biome == biome) else {
        let mut known: Vec<String> = listed.iter().map(|b| b.biome.to_string()).collect();
        let state = crate::deployment::state_store(context)?;
        known.extend(
            state
                .history(project.as_str(), None)?
                .into_iter()
                .filter_map(|d| d.biome),
        );
        known.sort();
        known.dedup();
        let hint = crate::target::did_you_mean_biome(&known, &biome)
            .map(|s| format!("\nhint: {s}"))
            .unwrap_or_else(|| "\nhint: `sandpit ls` lists the biomes".to_owned());
        anyhow::bail!("there is no biome `{biome}` in project `{project}`{hint}");
    };
    target.check_env(&status.env)?;
    Ok(status.clone())
}
