//! `sandpit history TARGET`: every deployment into an environment's base or a biome, newest first.

use sandpit_state::Deployment;

use crate::deployment;
use crate::target::Target;
use crate::Context;

pub fn history(context: &Context, target: &str) -> anyhow::Result<Vec<Deployment>> {
    let target_text = target;
    let spec = context.source.spec()?;
    let target = Target::parse(target)?;
    let label = target.label(&spec);
    let mut state = deployment::state_store(context)?;
    // A deployment whose sandpit process died is shown as what it is: failed, interrupted.
    state.fail_interrupted(spec.project.name.as_str())?;
    // A bare biome name matches it in whichever environment it lives.
    let all = state.history(spec.project.name.as_str(), None)?;
    let found: Vec<Deployment> = all
        .into_iter()
        .filter(|d| target.matches(&label, &d.target))
        .collect();
    if found.is_empty() && !target.is_base(&spec) {
        // An environment with no deployments yet is an honest empty answer; a name nothing was
        // ever deployed to is a lookup that found nothing.
        let environments = spec
            .environments
            .keys()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(env) = &target.env {
            if !spec.environments.contains_key(env) {
                crate::fail!(NotFound, "there is no environment `{env}` in project `{}`; sandpit.toml declares: {environments}", spec.project.name);
            }
        }
        crate::fail!(
            NotFound,
            "nothing has ever been deployed to `{}` in project `{}`: it is neither an environment nor a biome that was brought up\nhint: environments: {environments}; `sandpit ls` lists the running biomes",
            target_text,
            spec.project.name
        );
    }
    Ok(found)
}
