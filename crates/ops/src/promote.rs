//! `sandpit promote FROM TO`: the exact digests running in FROM's base, copied into TO's store,
//! verified, and deployed — never rebuilt.

use anyhow::bail;
use sandpit_domain::Name;
use sandpit_runtime::protocol::{ReplyBody, Request};
use sandpit_state::{DeployedComponent, DeploymentKind, NewDeployment};

use crate::daemon_connection;
use crate::deploy::{environment, run_unless_pending, DeployOutcome};
use crate::deployment::{self, requester};
use crate::project::ProjectDir;
use crate::Context;

pub async fn promote(
    context: &Context,
    from: &str,
    to: &str,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let from = environment(&spec, from)?;
    let to = environment(&spec, to)?;
    let target = &spec.environments[&to];
    match &target.promote_from {
        Some(source) if *source == from => {}
        Some(source) => bail!(
            "`{to}` takes promotions from `{source}`, not from `{from}`\nhint: `sandpit promote {source} {to}`"
        ),
        None => bail!(
            "`{to}` takes no promotions\nhint: set `promote_from = \"{from}\"` under [environments.{to}] in sandpit.toml"
        ),
    }
    let project = spec.project.name.clone();
    let request = Request::Status {
        project: project.clone(),
        biome: from.clone(),
    };
    let status = match daemon_connection::request_if_running(context, &request).await {
        Ok(Some(ReplyBody::Biome(status))) => status,
        Ok(Some(other)) => bail!("unexpected answer from the daemon: {other:?}"),
        Ok(None) => bail!(
            "the sandpit daemon is not running, so nothing runs in `{from}` to promote\nhint: `sandpit daemon start` brings `{from}` back; then promote again"
        ),
        Err(_) => bail!("nothing is deployed in `{from}`\nhint: `sandpit deploy {from}` first"),
    };
    if status.state != "healthy" {
        bail!(
            "`{from}` is {}, not healthy: only what works is promoted\nhint: `sandpit status {from}` shows what is wrong",
            status.state
        );
    }
    let environment = &spec.environments[&to];
    let approvals_required = environment.approvals_required();
    let mut state = deployment::state_store(context)?;
    // What is recorded as running in FROM also covers models, which the daemon does not run.
    let recorded_source = state.current(project.as_str(), from.as_str())?;
    let mut components: Vec<DeployedComponent> = status
        .components
        .iter()
        .map(|c| DeployedComponent {
            name: c.name.to_string(),
            artifact: c.artifact.clone(),
            digest: c.digest.to_string(),
        })
        .collect();
    if let Some(source) = &recorded_source {
        for component in &source.components {
            if !components.iter().any(|c| c.name == component.name) {
                components.push(component.clone());
            }
        }
    }
    let recorded = state.create(&NewDeployment {
        project: project.to_string(),
        target: to.to_string(),
        env: to.to_string(),
        biome: None,
        sha: status.sha.clone(),
        components,
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Promote {
            from: from.to_string(),
        },
        rollback_of: None,
        restores: None,
    })?;
    drop(state);
    run_unless_pending(context, recorded, on_event).await
}
