//! `sandpit env destroy ENV --confirm ENV`: remove an environment's base deployment — its
//! processes, its database and its model registrations — as a deliberate, recorded act that
//! needs the same approvals as a promotion when the environment is protected.
//!
//! Biomes living in the environment, its PostgreSQL instance and its model endpoint stay: they
//! serve the biomes. Nothing runs in the target afterwards, `rollback` refuses to reach past the
//! destroy, and the next `deploy` or `promote` starts it again with a new database.

use anyhow::bail;
use sandpit_build::git::Repository;
use sandpit_domain::Name;
use sandpit_runtime::protocol::{ReplyBody, Request};
use sandpit_state::{Deployment, DeploymentKind, NewDeployment};

use crate::daemon_connection;
use crate::deploy::{environment, run_unless_pending, DeployOutcome};
use crate::deployment::{self, requester};
use crate::project::ProjectDir;
use crate::Context;

pub async fn destroy(
    context: &Context,
    env: &str,
    confirm: &str,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let env = environment(&spec, env)?;
    if confirm != env.as_str() {
        bail!(
            "`--confirm {confirm}` does not name the environment being destroyed\nhint: repeat its name to confirm: `sandpit env destroy {env} --confirm {env}`"
        );
    }
    let project = spec.project.name.to_string();
    let mut state = deployment::state_store(context)?;
    let sha = match state.current(&project, env.as_str())? {
        Some(current) => current.sha,
        None => {
            if let Some(destroyed) = state.destroyed(&project, env.as_str())? {
                bail!(
                    "`{env}` was destroyed already, by deployment #{}; nothing has been deployed to it since",
                    destroyed.id
                );
            }
            // Failed deployments may still have left a database behind: destroy cleans it up.
            match state.history(&project, Some(env.as_str()))?.first() {
                Some(last) => last.sha.clone(),
                None => {
                    bail!("nothing has been deployed to `{env}`, so there is nothing to destroy")
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
    let project_dir = ProjectDir::locate(&context.project_dir)?;
    let repo = Repository::discover_with_env(&project_dir.root, context.base_env.clone())?;
    // Where the environment's database is comes from the commit that ran there, falling back to
    // the working tree's file when that commit is gone.
    let spec = match deployment::spec_at(&repo, deployment) {
        Ok(spec) => spec,
        Err(_) => project_dir.load_spec()?,
    };
    let project = spec.project.name.clone();
    let env = Name::parse(&deployment.env)?;
    let listed = daemon_connection::request(
        context,
        &Request::List {
            project: Some(project.clone()),
        },
        |_, _| {},
    )
    .await?;
    let runs = matches!(&listed, ReplyBody::Biomes { biomes } if biomes.iter().any(|b| b.biome == env && b.env == env));
    if runs {
        let request = Request::Down {
            project: project.clone(),
            biome: env.clone(),
        };
        match daemon_connection::request(context, &request, &mut *on_event).await? {
            ReplyBody::Biome(_) => on_event(None, &format!("stopped `{env}`'s components")),
            _ => {
                return Err(daemon_connection::unexpected_answer(
                    "the status of the base",
                ))
            }
        }
    }
    if crate::database::drop(context, &spec, &env, &env, &mut |m| on_event(None, m)).await? {
        on_event(None, &format!("dropped `{env}`'s database and role"));
    }
    crate::models::detach_base(context, &spec, &env).await?;
    Ok(())
}
