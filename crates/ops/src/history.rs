//! `sandpit history TARGET`: every deployment into an environment's base or a biome, newest first.

use sandpit_state::Deployment;

use crate::deployment;
use crate::project::ProjectDir;
use crate::target::Target;
use crate::Context;

pub fn history(context: &Context, target: &str) -> anyhow::Result<Vec<Deployment>> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let target = Target::parse(target)?;
    let label = target.label(&spec);
    let state = deployment::state_store(context)?;
    // A bare biome name matches it in whichever environment it lives.
    let all = state.history(spec.project.name.as_str(), None)?;
    Ok(all
        .into_iter()
        .filter(|d| target.matches(&label, &d.target))
        .collect())
}
