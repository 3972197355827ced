//! `sandpit approve ID` and `sandpit reject ID`: decisions on pending deployments into protected
//! environments. The last approval needed runs the deployment.

use sandpit_domain::Name;
use sandpit_state::Deployment;

use crate::deploy::DeployOutcome;
use crate::deployment::{self, requester};
use crate::Context;

pub async fn approve(
    context: &Context,
    id: i64,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let user = requester(context)?;
    let approved = deployment::state_store(context)?.approve(id, &user)?;
    if approved.approvals_missing() > 0 {
        return Ok(DeployOutcome {
            deployment: approved,
            rollout: None,
        });
    }
    let rollout = deployment::execute(context, id, on_event).await;
    // A pipeline that stopped at this deployment ends with it, whichever way it went.
    crate::pipeline::deployment_decided(context, id)?;
    let rollout = rollout?;
    Ok(DeployOutcome {
        deployment: rollout.deployment.clone(),
        rollout: Some(rollout),
    })
}

pub fn reject(context: &Context, id: i64, reason: Option<&str>) -> anyhow::Result<Deployment> {
    let user = requester(context)?;
    let rejected = deployment::state_store(context)?.reject(id, &user, reason)?;
    crate::pipeline::deployment_decided(context, id)?;
    Ok(rejected)
}
