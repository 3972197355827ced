//! Whose a biome is and how protected an environment is: the facts the server's role checks
//! need, read from the state store and the definition, then decided by
//! [`crate::authorization::authorize_change`] (pure). A biome's owner is the requester of its
//! newest `up`; one nobody brought up yet is owned by whoever does.

use sandpit_domain::Name;
use sandpit_state::DeploymentKind;

use crate::authorization::{authorize_change, Change};
use crate::deployment::state_store;
use crate::Context;

/// The requester of the newest `up` of `biome` in `project`, if it was ever brought up.
pub fn biome_owner(
    context: &Context,
    project: &Name,
    biome: &Name,
) -> anyhow::Result<Option<String>> {
    let state = state_store(context)?;
    Ok(state
        .history(project.as_str(), None)?
        .into_iter()
        .find(|d| d.kind == DeploymentKind::Up && d.biome.as_deref() == Some(biome.as_str()))
        .map(|d| d.requested_by))
}

/// Refuses `context.principal` unless it may change biome `biome` (`up`, `down`, `restart`).
pub fn authorize_biome(context: &Context, biome: &Name) -> anyhow::Result<()> {
    let spec = context.source.spec()?;
    let owner = biome_owner(context, &spec.project.name, biome)?;
    authorize_change(
        &context.principal,
        Change::Biome {
            name: biome.as_str(),
            owner: owner.as_deref(),
        },
    )
}

/// Refuses `context.principal` unless it may change the biome `raw` names (a target: `BIOME`,
/// `ENV/BIOME`; an environment's name is refused later by the use case).
pub fn authorize_biome_target(context: &Context, raw: &str) -> anyhow::Result<()> {
    let spec = context.source.spec()?;
    let target = crate::target::resolve(context, &spec, Some(raw))?;
    authorize_biome(context, &target.name)
}

/// Refuses `context.principal` unless it may deploy (`promotion: false`: `deploy`, `rollback`)
/// or promote into environment `env`.
pub fn authorize_environment(context: &Context, env: &str, promotion: bool) -> anyhow::Result<()> {
    let spec = context.source.spec()?;
    let env = crate::deploy::environment(&spec, env)?;
    authorize_change(
        &context.principal,
        Change::Environment {
            name: env.as_str(),
            protected: spec.environments[&env].protected,
            promotion,
        },
    )
}

/// Refuses `context.principal` unless it may change the variables of target `raw`: an
/// environment's are a deployment into it, a biome's a change of that biome.
pub fn authorize_config(context: &Context, raw: &str) -> anyhow::Result<()> {
    let spec = context.source.spec()?;
    let target = crate::config::resolve_target(context, &spec, Some(raw))?;
    if target.is_base() {
        authorize_environment(context, target.env.as_str(), false)
    } else {
        authorize_biome(context, &target.biome)
    }
}
