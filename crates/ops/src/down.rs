//! `sandpit down BIOME`: stop every process of a biome, drop its database and role, unregister
//! its models — recorded in `history` as a deployment of kind `down`, queued behind any `up` of
//! the same biome so the two never interleave. A `down` that could not finish (a database that
//! does not answer) leaves the biome listed as `down-failed` with what is left, and running it
//! again finishes the job.

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::{DeploymentKind, NewDeployment};

use crate::daemon_connection;
use crate::deployment::{requester, state_store, target_label};
use crate::Context;

/// What a finished `down` reports.
#[derive(Debug)]
pub struct DownOutcome {
    pub biome: Name,
    pub env: Name,
    /// What the daemon stopped; `None` when it no longer ran anything (a second `down`).
    pub stopped: Option<BiomeStatus>,
    /// The deployment that records it.
    pub deployment: i64,
}

/// What is left of a biome whose `down` did not finish.
pub fn left_behind(context: &Context, project: &Name, env: &Name, biome: &Name) -> Vec<String> {
    let mut left = crate::terraform::left_behind(context, project, env, biome);
    if crate::database::may_have_database(context, project, env, biome) {
        left.push("its database and role".to_owned());
    }
    if crate::models::is_registered(context, project, env, biome.as_str()) {
        left.push("its model registration".to_owned());
    }
    left
}

pub async fn down(
    context: &Context,
    raw: Option<&str>,
    mut on_event: impl FnMut(Option<&Name>, &str),
) -> anyhow::Result<DownOutcome> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let target = crate::target::resolve(context, &spec, raw)?;
    let biome = target.name.clone();
    if spec.environments.contains_key(&biome) {
        // An environment's base holds the environment's data: removing it is its own, deliberate
        // act, recorded and approved like a deployment.
        crate::fail!(
            InvalidInput,
            "`{biome}` is an environment, not a biome: `sandpit down` only removes biomes\nhint: to stop `{biome}`'s deployment and drop its database, run `sandpit env destroy {biome} --confirm {biome}`"
        );
    }
    // Where it lives: the newest deployment to it says, else the daemon.
    let state = state_store(context)?;
    let newest = state
        .history(project.as_str(), None)?
        .into_iter()
        .find(|d| {
            d.biome.as_deref() == Some(biome.as_str())
                && target.env.as_ref().is_none_or(|env| env.as_str() == d.env)
        });
    let running = daemon_connection::status_if_running(context, &project, &biome).await;
    let (env, sha) = match (&running, &newest) {
        (Some(status), _) => (status.env.clone(), status.sha.clone()),
        (None, Some(d)) => (Name::parse(&d.env)?, d.sha.clone()),
        (None, None) => crate::fail!(
            NotFound,
            "there is no biome `{biome}` in project `{project}`\nhint: `sandpit ls` lists the biomes"
        ),
    };
    target.check_env(&env)?;
    if running.is_none()
        && newest.as_ref().is_some_and(|d| {
            d.kind == DeploymentKind::Down && d.state == sandpit_state::DeploymentState::Succeeded
        })
        && left_behind(context, &project, &env, &biome).is_empty()
    {
        crate::fail!(
            Conflict,
            "biome `{biome}` is already down (deployment #{})",
            newest.as_ref().map(|d| d.id).unwrap_or_default()
        );
    }
    drop(state);
    remove(context, &spec, &env, &biome, sha, None, &mut on_event).await
}

/// Removes `biome` of `env` (which runs version `sha`) through the same path as `sandpit
/// down`: a deployment of kind `down` — requested by the context's principal, made for
/// `reason` when one is given (the reaper's) — queued behind any `up` of the biome, then
/// [`tear_down`].
pub async fn remove(
    context: &Context,
    spec: &sandpit_spec::Spec,
    env: &Name,
    biome: &Name,
    sha: String,
    reason: Option<&str>,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DownOutcome> {
    let project = &spec.project.name;
    let mut state = state_store(context)?;
    let recorded = state.create_because(
        &NewDeployment {
            project: project.to_string(),
            target: target_label(env, biome),
            env: env.to_string(),
            biome: Some(biome.to_string()),
            sha,
            components: Vec::new(),
            requested_by: requester(context)?,
            approvals_required: 0,
            kind: DeploymentKind::Down,
            rollback_of: None,
            restores: None,
        },
        reason,
    )?;
    // An `up` of the same biome that is still running finishes first (and one that arrives
    // later waits for this down): they never interleave, database included.
    crate::deployment::wait_turn(&mut state, recorded.id).await?;
    state.mark_started(recorded.id, std::process::id())?;
    drop(state);
    let result = tear_down(context, spec, env, biome, on_event).await;
    let mut state = state_store(context)?;
    match result {
        Ok(stopped) => {
            state.mark_succeeded(recorded.id)?;
            Ok(DownOutcome {
                biome: biome.clone(),
                env: env.clone(),
                stopped,
                deployment: recorded.id,
            })
        }
        Err(error) => {
            state.mark_failed(recorded.id, &format!("{error:#}"))?;
            let left = left_behind(context, project, env, biome);
            let left = if left.is_empty() {
                String::new()
            } else {
                format!("; left behind: {}", left.join(", "))
            };
            Err(error.context(format!(
                "`down {biome}` did not finish{left}\nhint: `sandpit down {biome}` again finishes the job once the cause is fixed"
            )))
        }
    }
}

/// Stops the processes (when the daemon runs any) of `biome` in `env` — the environment's base
/// when `biome == env` — then drops its database and role (after the processes, so nothing is
/// connected any more), then unregisters its models. Each step is idempotent, so a second `down`
/// (or `env destroy`) picks up where a failed one stopped.
pub(crate) async fn tear_down(
    context: &Context,
    spec: &sandpit_spec::Spec,
    env: &Name,
    biome: &Name,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<Option<BiomeStatus>> {
    let project = spec.project.name.clone();
    let listed = daemon_connection::answer(
        daemon_connection::started(context)
            .await?
            .list(Some(project.clone()))
            .await,
    )?;
    let runs = listed.iter().any(|b| b.biome == *biome && b.env == *env);
    let stopped = if runs {
        let client = daemon_connection::started(context).await?;
        Some(daemon_connection::answer(
            client.down(project, biome.clone(), &mut *on_event).await,
        )?)
    } else {
        None
    };
    // After the processes (nothing uses the infrastructure any more), before the database: a
    // destroy that fails leaves the biome `destroy-failed`, everything else still in place.
    crate::terraform::destroy_target(context, &spec.project.name, env, biome, on_event).await?;
    let dropped = crate::database::drop(context, spec, env, biome, &mut |m| on_event(None, m))
        .await
        .map_err(|e| e.context(format!("the database of `{biome}` was not dropped")))?;
    if dropped {
        on_event(None, "dropped its database and role");
    }
    if biome == env {
        crate::models::detach_base(context, spec, env).await?;
    } else {
        crate::models::detach(context, spec, env, biome).await?;
    }
    crate::config::forget_releases(context, &spec.project.name, env, biome);
    Ok(stopped)
}
