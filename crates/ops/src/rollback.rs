//! `sandpit rollback ENV [--to ID]`: redeploy the digests of the previous (or a named) successful
//! deployment, with no rebuild, as a new deployment that says what it rolls back from and to.

use sandpit_domain::Name;
use sandpit_state::{DeploymentKind, DeploymentState, NewDeployment};

use crate::deploy::{environment, run_unless_pending, DeployOutcome};
use crate::deployment::{self, requester};
use crate::Context;

pub async fn rollback(
    context: &Context,
    env: &str,
    to: Option<i64>,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = context.source.spec()?;
    let env = environment(&spec, env)?;
    let project = spec.project.name.to_string();
    let mut state = deployment::state_store(context)?;
    // A deployment that does not exist is that, whatever runs (or does not) in `env`.
    if let Some(id) = to {
        if state.get(id)?.is_none() {
            crate::fail!(
                NotFound,
                "there is no deployment #{id}; `sandpit history {env}` lists them"
            );
        }
    }
    let Some(current) = state.current(&project, env.as_str())? else {
        if let Some(destroyed) = state.destroyed(&project, env.as_str())? {
            crate::fail!(
                Conflict,
                "`{env}` was destroyed by deployment #{}, so there is nothing to roll back (what ran before had a database that is gone)\nhint: deploy or promote into `{env}` to start it again",
                destroyed.id
            );
        }
        crate::fail!(
            Conflict,
            "nothing has been deployed to `{env}`, so there is nothing to roll back"
        );
    };
    let restore = match to {
        Some(id) => {
            let Some(named) = state.get(id)? else {
                crate::fail!(
                    NotFound,
                    "there is no deployment #{id}; `sandpit history {env}` lists them"
                );
            };
            if named.target != env.as_str() {
                crate::fail!(
                    InvalidInput,
                    "deployment #{id} went to `{}`, not `{env}`",
                    named.target
                );
            }
            // It must have run successfully once (it may have been rolled back since).
            if named.started_at.is_none()
                || !matches!(
                    named.state,
                    DeploymentState::Succeeded | DeploymentState::RolledBack
                )
                || named.message.is_some()
            {
                crate::fail!(
                    Conflict,
                    "deployment #{id} never succeeded ({}); only what once worked can be restored",
                    named.state.as_str()
                );
            }
            named
        }
        None => match state.previous_successful(&project, env.as_str(), current.id)? {
            Some(previous) => previous,
            None => {
                let origin = state.origin(current.id)?;
                let runs = if origin.id == current.id {
                    format!("#{}", current.id)
                } else {
                    format!("#{}'s artifacts (restored by #{})", origin.id, current.id)
                };
                crate::fail!(
                    Conflict,
                    "`{env}` runs {runs}, and no successful deployment older than #{} is left to roll back to\nhint: `sandpit history {env}` lists them; `sandpit rollback {env} --to ID` picks one",
                    origin.id
                )
            }
        },
    };
    if restore.id == current.id {
        crate::fail!(
            Conflict,
            "deployment #{} is what runs in `{env}` already",
            restore.id
        );
    }
    if restore.kind.removes() {
        crate::fail!(
            Conflict,
            "deployment #{} destroyed `{env}`; it cannot be restored",
            restore.id
        );
    }
    if let Some(destroyed) =
        state.destroyed_between(&project, env.as_str(), restore.id, current.id)?
    {
        crate::fail!(
            Conflict,
            "deployment #{} ran before `{env}` was destroyed by #{}, and its database is gone\nhint: pick a deployment made after #{}",
            restore.id,
            destroyed.id,
            destroyed.id
        );
    }
    // Going back is a change to what runs like any other: a protected environment needs the
    // same approvals as a promotion into it.
    let environment = &spec.environments[&env];
    let approvals_required = environment.approvals_required();
    let recorded = state.create(&NewDeployment {
        project,
        target: env.to_string(),
        env: env.to_string(),
        biome: None,
        sha: restore.sha.clone(),
        components: restore.components.clone(),
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Rollback,
        rollback_of: Some(current.id),
        restores: Some(restore.id),
    })?;
    drop(state);
    run_unless_pending(context, recorded, on_event).await
}
