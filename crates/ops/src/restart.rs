//! `sandpit restart [BIOME] [COMPONENT]`: restarts one component of a biome (a job runs again),
//! or every service in dependency order, and waits until they are healthy, as `up` does.
//!
//! Nothing about what runs changes (the same digests, variables and ports), so unlike `up` it is
//! not a deployment and leaves the history alone.

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;

use crate::daemon_connection;
use crate::Context;

/// Restarts `component` (every service when `None`) of the biome `biome` names (the current
/// branch's when `None`). Starts the daemon when none runs: this changes what runs, and a new
/// daemon brings the biome back first.
pub async fn restart(
    context: &Context,
    biome: Option<&str>,
    component: Option<&str>,
    on_event: impl FnMut(Option<&Name>, &str),
) -> anyhow::Result<BiomeStatus> {
    daemon_connection::start(context).await?;
    let status = match crate::status::status(context, biome).await {
        Ok(status) => status,
        Err(error) => return Err(with_component_hint(context, biome, component, error).await),
    };
    let component = component
        .map(|raw| Name::parse(raw).map_err(crate::error::name_refused))
        .transpose()?;
    let client = daemon_connection::started(context).await?;
    daemon_connection::answer(
        client
            .restart(status.project, status.biome, component, on_event)
            .await,
    )
}

/// `sandpit restart web` where `web` is no biome but a component of the current branch's biome:
/// the error says how to name it.
async fn with_component_hint(
    context: &Context,
    biome: Option<&str>,
    component: Option<&str>,
    error: anyhow::Error,
) -> anyhow::Error {
    let (Some(written), None) = (biome, component) else {
        return error;
    };
    let Ok(current) = crate::status::status(context, None).await else {
        return error;
    };
    if current
        .components
        .iter()
        .any(|c| c.name.as_str() == written)
    {
        let hint = format!(
            "`{written}` is a component of `{}`, the current branch's biome: `sandpit restart {} {written}`",
            current.biome, current.biome
        );
        return anyhow::anyhow!("{}\nhint: {hint}", first_line(&error));
    }
    error
}

fn first_line(error: &anyhow::Error) -> String {
    let message = error.to_string();
    message.lines().next().unwrap_or_default().to_owned()
}
