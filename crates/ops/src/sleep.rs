//! `sandpit sleep BIOME` / `sandpit wake BIOME`: by hand what the daemon does by itself after
//! `[biomes] idle_timeout` and on the next request through the gateway. A sleeping biome keeps
//! its desired state, ports, data and database; nothing of it runs and its models are unloaded.
//!
//! Neither changes what runs when awake (the same digests and variables), so neither is a
//! deployment: the history is left alone, as by `restart`.

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;

use crate::daemon_connection;
use crate::Context;

/// Puts the biome `biome` names (the current branch's when `None`) to sleep. An environment's
/// base sleeps only when its environment opted in (`[environments.<env>] idle_timeout`): other
/// biomes and overlays rely on it.
pub async fn sleep(
    context: &Context,
    biome: Option<&str>,
    on_event: impl FnMut(Option<&Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    let spec = context.source.spec()?;
    let named_environment = biome
        .and_then(|raw| Name::parse(raw).ok())
        .and_then(|name| spec.environments.get(&name));
    if let Some(environment) = named_environment {
        if environment.idle_timeout.is_none() {
            crate::fail!(
                InvalidInput,
                "`{}` is an environment's base, which never sleeps\nhint: to let it sleep when idle, set `idle_timeout` under [environments.{}] in sandpit.toml",
                environment.name,
                environment.name
            );
        }
    }
    let status = crate::status::status(context, biome).await?;
    let client = daemon_connection::started(context).await?;
    daemon_connection::answer(
        client
            .sleep(
                status.project,
                status.biome,
                "sandpit sleep".to_owned(),
                on_event,
            )
            .await,
    )
}

/// Wakes the biome and answers once its services are healthy (at once when it is awake).
pub async fn wake(
    context: &Context,
    biome: Option<&str>,
    on_event: impl FnMut(Option<&Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    daemon_connection::start(context).await?;
    let status = crate::status::status(context, biome).await?;
    let client = daemon_connection::started(context).await?;
    daemon_connection::answer(client.wake(status.project, status.biome, on_event).await)
}
