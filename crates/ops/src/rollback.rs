//! `sandpit rollback ENV [--to ID]`: redeploy the digests of the previous (or a named) successful
//! deployment, with no rebuild, as a new deployment that says what it rolls back from and to.

use anyhow::bail;
use sandpit_domain::Name;
use sandpit_state::{DeploymentKind, DeploymentState, NewDeployment};

use crate::deploy::{environment, DeployOutcome};
use crate::deployment::{self, requester};
use crate::project::ProjectDir;
use crate::Context;

pub async fn rollback(
    context: &Context,
    env: &str,
    to: Option<i64>,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let env = environment(&spec, env)?;
    let project = spec.project.name.to_string();
    let mut state = deployment::state_store(context)?;
    let Some(current) = state.current(&project, env.as_str())? else {
        bail!("nothing has been deployed to `{env}`, so there is nothing to roll back");
    };
    let restore = match to {
        Some(id) => {
            let Some(named) = state.get(id)? else {
                bail!("there is no deployment #{id}; `sandpit history {env}` lists them");
            };
            if named.target != env.as_str() {
                bail!("deployment #{id} went to `{}`, not `{env}`", named.target);
            }
            // It must have run successfully once (it may have been rolled back since).
            if named.started_at.is_none()
                || !matches!(
                    named.state,
                    DeploymentState::Succeeded | DeploymentState::RolledBack
                )
                || named.message.is_some()
            {
                bail!(
                    "deployment #{id} never succeeded ({}); only what once worked can be restored",
                    named.state.as_str()
                );
            }
            named
        }
        None => match state.previous_successful(&project, env.as_str(), current.id)? {
            Some(previous) => previous,
            None => bail!(
                "`{env}` has no earlier successful deployment than #{} to roll back to",
                current.id
            ),
        },
    };
    if restore.id == current.id {
        bail!("deployment #{} is what runs in `{env}` already", restore.id);
    }
    let recorded = state.create(&NewDeployment {
        project,
        target: env.to_string(),
        env: env.to_string(),
        biome: None,
        sha: restore.sha.clone(),
        components: restore.components.clone(),
        requested_by: requester(context)?,
        approvals_required: 0,
        kind: DeploymentKind::Rollback,
        rollback_of: Some(current.id),
        restores: Some(restore.id),
    })?;
    drop(state);
    let rollout = deployment::execute(context, recorded.id, on_event).await?;
    Ok(DeployOutcome {
        deployment: rollout.deployment.clone(),
        rollout: Some(rollout),
    })
}
