//! `sandpit deploy ENV [--sha REV] [--allow-older]`: build a commit (or reuse its artifacts) and
//! deploy it into an environment's base — at once, or pending approvals when it is protected.

use sandpit_build::execute::BuildProgress;
use sandpit_domain::{CommitId, Name};
use sandpit_state::{DeployedComponent, Deployment, DeploymentKind, NewDeployment};

use crate::build::{BuildOptions, BuildOutcome};
use crate::deployment::{self, requester, RolloutReport};
use crate::Context;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub env: String,
    pub rev: Option<String>,
    /// Deploy even if the commit is older than (an ancestor of) the one running.
    pub allow_older: bool,
}

/// A recorded deployment, and how it ran when it could run at once.
#[derive(Debug)]
pub struct DeployOutcome {
    pub deployment: Deployment,
    /// `None` while the deployment waits for approvals.
    pub rollout: Option<RolloutReport>,
}

/// Validates an environment name from the command line against the spec.
pub fn environment(spec: &sandpit_spec::Spec, raw: &str) -> anyhow::Result<Name> {
    let name = Name::parse(raw).map_err(|e| {
        crate::error::failure(
            crate::error::ErrorKind::InvalidInput,
            format!(
                "the environment name {} {}\nhint: {}",
                sandpit_domain::quoted(raw),
                e.problem(),
                e.hint()
            ),
        )
    })?;
    if !spec.environments.contains_key(&name) {
        crate::fail!(
            NotFound,
            "there is no environment `{name}`; sandpit.toml declares: {}",
            spec.environments
                .keys()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(name)
}

/// An environment with `promote_from` only receives what ran in the one before it.
fn refuse_promotion_only(spec: &sandpit_spec::Spec, env: &Name) -> anyhow::Result<()> {
    if let Some(source) = &spec.environments[env].promote_from {
        crate::fail!(
            InvalidInput,
            "`{env}` only receives promotions from `{source}`: what runs there is what ran in `{source}`, byte for byte\nhint: `sandpit deploy {source}` (or further up the chain), then `sandpit promote {source} {env}`"
        );
    }
    Ok(())
}

pub async fn deploy(
    context: &Context,
    options: &DeployOptions,
    progress: &mut dyn BuildProgress,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<(BuildOutcome, DeployOutcome)> {
    // Check the name and the environment's rules before spending time on a build.
    let current_spec = context.source.spec()?;
    let env = environment(&current_spec, &options.env)?;
    refuse_promotion_only(&current_spec, &env)?;
    let build = crate::build::build(
        context,
        &BuildOptions {
            rev: options.rev.clone(),
            allow_dirty: false,
        },
        progress,
    )
    .map_err(|error| crate::build::UncommittedChanges::when_deploying(error, &env))?;
    let spec = &build.spec;
    let env = environment(spec, &options.env)?;
    refuse_promotion_only(spec, &env)?;
    let environment = &spec.environments[&env];
    let project_name = spec.project.name.to_string();
    let mut state = deployment::state_store(context)?;
    let version = build.report.version.to_string();
    if let Some(current) = state.current(&project_name, env.as_str())? {
        let repo = &build.repo;
        let running = CommitId::parse(current.sha.get(..40).unwrap_or(&current.sha))?;
        let new = build.report.version.commit().clone();
        if new != running && repo.is_ancestor(&new, &running)? && !options.allow_older {
            crate::fail!(
                Conflict,
                "refusing to deploy {new} to `{env}`: it is older than {running} (deployment #{}), which runs there now\nhint: pass --allow-older to deploy it anyway, or use `sandpit rollback {env}`",
                current.id
            );
        }
    }
    let approvals_required = environment.approvals_required();
    let recorded = state.create(&NewDeployment {
        project: project_name,
        target: env.to_string(),
        env: env.to_string(),
        biome: None,
        sha: version,
        components: build
            .report
            .components
            .iter()
            .map(|c| DeployedComponent {
                name: c.name.to_string(),
                artifact: c.artifact.name.file_name(),
                digest: c.artifact.digest.to_string(),
                borrowed_from: None,
            })
            .collect(),
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Deploy,
        rollback_of: None,
        restores: None,
    })?;
    drop(state);
    let outcome = run_unless_pending(context, recorded, on_event).await?;
    Ok((build, outcome))
}

/// Runs a new deployment now, or leaves it pending when it needs approvals — with its
/// terraform components planned for the approvers (`deployment::plan_pending`).
pub async fn run_unless_pending(
    context: &Context,
    recorded: Deployment,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    if recorded.approvals_missing() > 0 {
        let planned = deployment::plan_pending(context, recorded, on_event).await?;
        return Ok(DeployOutcome {
            deployment: planned,
            rollout: None,
        });
    }
    let rollout = deployment::execute(context, recorded.id, on_event).await?;
    Ok(DeployOutcome {
        deployment: rollout.deployment.clone(),
        rollout: Some(rollout),
    })
}
