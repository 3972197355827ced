//! `sandpit env destroy ENV --confirm ENV`: remove an environment's base deployment — its
//! processes, its database and its model registrations — as a deliberate, recorded act that
//! needs the same approvals as a promotion when the environment is protected.
//!
//! Biomes living in the environment, its PostgreSQL instance and its model endpoint stay: they
//! serve the biomes. Nothing runs in the target afterwards, `rollback` refuses to reach past the
//! destroy, and the next `deploy` or `promote` starts it again with a new database.

use sandpit_domain::Name;
use sandpit_state::{Deployment, DeploymentKind, NewDeployment};

use crate::deploy::{environment, run_unless_pending, DeployOutcome};
use crate::deployment::{self, requester};
use crate::Context;

pub async fn destroy(
    context: &Context,
    env: &str,
    confirm: &str,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = context.source.spec()?;
    let env = environment(&spec, env)?;
    if confirm != env.as_str() {
        crate::fail!(
            InvalidInput,
            "`--confirm {confirm}` does not name the environment being destroyed\nhint: repeat its name to confirm: `sandpit env destroy {env} --confirm {env}`"
        );
    }
    let project = spec.project.name.to_string();
    let mut state = deployment::state_store(context)?;
    let sha = match state.current(&project, env.as_str())? {
        Some(current) => current.sha,
        None => {
            if let Some(destroyed) = state.destroyed(&project, env.as_str())? {
                crate::fail!(
                    Conflict,
                    "`{env}` was destroyed already, by deployment #{}; nothing has been deployed to it since",
                    destroyed.id
                );
            }
            // Failed deployments may still have left a database behind: destroy cleans it up.
            match state.history(&project, Some(env.as_str()))?.first() {
                Some(last) => last.sha.clone(),
                None => {
                    crate::fail!(
                        Conflict,
                        "nothing has been deployed to `{env}`, so there is nothing to destroy"
                    )
                }
            }
        }
    };
    let environment = &spec.environments[&env];
    let approvals_required = environment.approvals_required();
    let recorded = state.create(&NewDeployment {
        project,
        target: env.to_string(),
        env: env.to_string(),
        biome: None,
        sha,
        components: Vec::new(),
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Destroy,
        rollback_of: None,
        restores: None,
    })?;
    drop(state);
    run_unless_pending(context, recorded, on_event).await
}

/// Runs a recorded destroy: stops the base's processes, drops its database and role, and
/// unregisters its models. Each part is idempotent, so a destroy that failed half-way can be
/// recorded and run again.
pub(crate) async fn tear_down(
    context: &Context,
    deployment: &Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<()> {
    let repo = context.source.repository(&context.base_env)?;
    // Where the environment's database is comes from the commit that ran there, falling back to
    // the source's current file when that commit is gone.
    let spec = match deployment::spec_at(&repo, deployment) {
        Ok(spec) => spec,
        Err(_) => context.source.spec()?,
    };
    let env = Name::parse(&deployment.env)?;
    crate::down::tear_down(context, &spec, &env, &env, on_event).await?;
    Ok(())
}
