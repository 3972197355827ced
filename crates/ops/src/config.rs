//! `sandpit config`: variables and secrets per environment and biome (Heroku's config vars,
//! GitLab's CI/CD variables), injected into components when they start.
//!
//! - An environment's variables are its base's, and what its biomes inherit; a biome's own win
//!   over them. A biome cannot remove an inherited variable, only override it (with an empty
//!   value if need be): `unset` on a biome removes its own value, and the inherited one applies
//!   again.
//! - A change to a target that runs is a deployment of kind `config` (same commit and digests as
//!   what runs; a protected environment's needs its approvals), which restarts exactly the
//!   components whose variables changed. The change is kept apart (`pending/<id>.json`) and stored
//!   only when that deployment succeeds, so a pending, rejected or failed change never takes
//!   effect — not even at the next deployment. A target that does not run stores the change at
//!   once; it applies at the next `up`, `deploy` or `promote` (which needs approvals of its own
//!   in a protected environment).
//! - A change to an environment applies at once to its base only: its running biomes take it at
//!   their next `up`, so nobody's biome restarts under them; `sandpit config BIOME` says when
//!   what runs is older than its variables.
//! - Secrets are stored and handed to the daemon as owner-only files (`store.rs`), never in the
//!   daemon's state, `history`, messages or command lines.

mod store;
mod variables;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use sandpit_domain::{ComponentKind, Name};
use sandpit_spec::Spec;
use sandpit_state::{Deployment, DeploymentKind, DeploymentState, NewDeployment, StepKind};

pub use variables::{
    check_value, Change, Key, KeyError, Layers, Level, NotSet, Row, Value, ValueError, Variables,
};

use crate::deploy::{run_unless_pending, DeployOutcome};
use crate::deployment::{requester, state_store, target_label};
use crate::error::{failure, ErrorKind};
use crate::project::biome_environment;
use crate::Context;
use store::ConfigDirs;

/// Whose variables: an environment's base (`biome == env`) or a biome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTarget {
    pub env: Name,
    pub biome: Name,
}

impl ConfigTarget {
    pub fn is_base(&self) -> bool {
        self.env == self.biome
    }

    /// `ENV` or `ENV/BIOME`, as deployments record it.
    pub fn label(&self) -> String {
        target_label(&self.env, &self.biome)
    }

    /// The biome's own level; `None` for a base.
    fn biome_level(&self) -> Option<&Name> {
        (!self.is_base()).then_some(&self.biome)
    }
}

/// The target `raw` names (the current branch's biome when `None`; see
/// [`crate::target::resolve`]). A bare biome lives where its newest deployment went, or, when it
/// has none, in the first environment that hosts biomes.
pub fn resolve_target(
    context: &Context,
    spec: &Spec,
    raw: Option<&str>,
) -> anyhow::Result<ConfigTarget> {
    let target = crate::target::resolve(context, spec, raw)?;
    if target.is_base(spec) {
        return Ok(ConfigTarget {
            env: target.name.clone(),
            biome: target.name,
        });
    }
    if spec.environments.contains_key(&target.name) {
        crate::fail!(
            InvalidInput,
            "`{}` is the name of an environment, so it cannot name a biome\nhint: `sandpit config {}` is the environment's",
            target.name,
            target.name
        );
    }
    let env = match &target.env {
        Some(env) => biome_environment(spec, Some(env.as_str()))?,
        None => {
            let recorded = state_store(context)?
                .history(spec.project.name.as_str(), None)?
                .into_iter()
                .find(|d| d.biome.as_deref() == Some(target.name.as_str()))
                .map(|d| Name::parse(&d.env))
                .transpose()?;
            match recorded {
                Some(env) if spec.environments.contains_key(&env) => env,
                _ => biome_environment(spec, None)?,
            }
        }
    };
    Ok(ConfigTarget {
        env,
        biome: target.name,
    })
}

/// The value of `key` set on environment `env`'s base for every component, if any (the
/// reporter's API token).
pub(crate) fn base_value(
    context: &Context,
    project: &Name,
    env: &Name,
    key: &str,
) -> anyhow::Result<Option<Value>> {
    let key = Key::parse(key)?;
    let variables = ConfigDirs::new(context, project).load(env, None)?;
    Ok(variables.entries.get(&(None, key)).cloned())
}

/// The variables `target`'s components get, as stored.
pub(crate) fn load_layers(
    context: &Context,
    project: &Name,
    target: &ConfigTarget,
) -> anyhow::Result<Layers> {
    let dirs = ConfigDirs::new(context, project);
    Ok(Layers {
        env: dirs.load(&target.env, None)?,
        biome: target
            .biome_level()
            .map(|biome| dirs.load(&target.env, Some(biome)))
            .transpose()?,
    })
}

/// What one component gets from its configuration: plain values, and the files secrets are read
/// from when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentVariables {
    pub env: BTreeMap<String, String>,
    pub secret_env: BTreeMap<String, PathBuf>,
}

/// What a release injects from the configuration, per component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injected {
    pub components: BTreeMap<Name, ComponentVariables>,
}

impl Injected {
    /// What `component` gets (nothing when nothing is configured).
    pub fn component(&self, component: &Name) -> ComponentVariables {
        self.components.get(component).cloned().unwrap_or_default()
    }
}

/// Resolves `layers` for every component `spec` runs and writes release `id`'s secret files.
/// An empty secret is passed as an ordinary empty variable: there is nothing to hide, and the
/// daemon takes an empty secret file for a damaged one.
pub(crate) fn release(
    context: &Context,
    spec: &Spec,
    target: &ConfigTarget,
    id: i64,
    layers: &Layers,
) -> anyhow::Result<Injected> {
    if layers.is_pristine() {
        return Ok(Injected::default());
    }
    let mut plain = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for component in spec
        .components
        .values()
        .filter(|c| c.kind != ComponentKind::Model)
    {
        let mut env = BTreeMap::new();
        let mut secret = BTreeMap::new();
        for (key, resolved) in layers.effective(&component.name) {
            if resolved.value.secret && !resolved.value.text.is_empty() {
                secret.insert(key, resolved.value.text);
            } else {
                env.insert(key.to_string(), resolved.value.text);
            }
        }
        plain.insert(component.name.clone(), env);
        if !secret.is_empty() {
            secrets.insert(component.name.clone(), secret);
        }
    }
    let dirs = ConfigDirs::new(context, &spec.project.name);
    let mut files = dirs
        .write_release(&target.env, &target.biome, id, layers.revisions(), &secrets)
        .context("cannot keep the configuration's secrets for the daemon")?;
    Ok(Injected {
        components: plain
            .into_iter()
            .map(|(name, env)| {
                let secret_env = files.remove(&name).unwrap_or_default();
                (name, ComponentVariables { env, secret_env })
            })
            .collect(),
    })
}

/// Whether `target`'s stored variables are what release `id` was made from (nothing was set or
/// unset at either level since).
pub(crate) fn unchanged_since(
    context: &Context,
    project: &Name,
    target: &ConfigTarget,
    id: i64,
) -> anyhow::Result<bool> {
    let layers = load_layers(context, project, target)?;
    let released =
        ConfigDirs::new(context, project).released_revisions(&target.env, &target.biome, id)?;
    Ok(layers.revisions() == released)
}

/// After release `id` reached the daemon: the files of `target`'s earlier releases go.
pub(crate) fn released(context: &Context, project: &Name, target: &ConfigTarget, id: i64) {
    // Best effort: a leftover is owner-only and removed with the next release.
    let _ = ConfigDirs::new(context, project).prune_releases(&target.env, &target.biome, Some(id));
}

/// Release `id` never reached the daemon (a deployment that failed before anything changed).
pub(crate) fn unreleased(context: &Context, project: &Name, target: &ConfigTarget, id: i64) {
    let _ = ConfigDirs::new(context, project).remove_release(&target.env, &target.biome, id);
}

/// Nothing of `target` runs any more (`down`, `env destroy`): its released files go; its stored
/// variables stay and apply to it again if it comes back.
pub fn forget_releases(context: &Context, project: &Name, env: &Name, biome: &Name) {
    let target = ConfigTarget {
        env: env.clone(),
        biome: biome.clone(),
    };
    let _ = ConfigDirs::new(context, project).prune_releases(&target.env, &target.biome, None);
}

/// The target of a recorded deployment.
fn deployment_target(deployment: &Deployment) -> anyhow::Result<(Name, ConfigTarget)> {
    let env = Name::parse(&deployment.env)?;
    let biome = match &deployment.biome {
        Some(biome) => Name::parse(biome)?,
        None => env.clone(),
    };
    Ok((
        Name::parse(&deployment.project)?,
        ConfigTarget { env, biome },
    ))
}

/// The change a `config` deployment requested, and the variables its release gets with it.
pub(crate) struct Requested {
    pub change: Change,
    pub layers: Layers,
}

/// For a `config` deployment about to run: its change, checked against what runs now (it was
/// requested for the deployment it `restores`) and applied to the stored variables — in memory:
/// [`commit`] stores it once the release succeeded.
pub(crate) fn requested(context: &Context, deployment: &Deployment) -> anyhow::Result<Requested> {
    let (project, target) = deployment_target(deployment)?;
    let dirs = ConfigDirs::new(context, &project);
    let Some(change) = dirs.load_pending(&target.env, deployment.id)? else {
        crate::fail!(
            Conflict,
            "the change deployment #{} requested is no longer kept, so nothing was changed\nhint: request it again with `sandpit config set` or `unset`",
            deployment.id
        );
    };
    let current = state_store(context)?.current(&deployment.project, &deployment.target)?;
    if current.as_ref().map(|d| d.id) != deployment.restores {
        let now = current.map_or_else(
            || "nothing runs there".to_owned(),
            |d| format!("deployment #{} runs there", d.id),
        );
        crate::fail!(
            Conflict,
            "what runs in `{}` changed since deployment #{} was requested ({now}), so its change ({}) was not made\nhint: request it again: `sandpit config {}` shows what is set",
            deployment.target,
            deployment.id,
            change.describe(),
            deployment.target
        );
    }
    let stored = load_layers(context, &project, &target)?;
    let mut layers = stored.clone();
    let level = match layers.biome.as_mut() {
        Some(biome) => biome,
        None => &mut layers.env,
    };
    change
        .apply_to(level)
        .map_err(|missing| not_set_error(&target, &stored, &missing))?;
    // The revision it will be stored with, so the release records it.
    level.revision += 1;
    Ok(Requested { change, layers })
}

/// Stores the change of a `config` deployment that succeeded, and records it as its
/// `configured` step (the keys, never a value).
pub(crate) fn commit(
    context: &Context,
    deployment: &Deployment,
    change: &Change,
) -> anyhow::Result<()> {
    let (project, target) = deployment_target(deployment)?;
    let dirs = ConfigDirs::new(context, &project);
    dirs.update(&target.env, target.biome_level(), |level| {
        change.apply_to(level).map_err(|missing| {
            failure(
                ErrorKind::Conflict,
                format!("`{}` is no longer set", missing.key),
            )
        })
    })?;
    dirs.remove_pending(&target.env, deployment.id)?;
    state_store(context)?.record_step(deployment.id, StepKind::Configured, &change.describe())?;
    Ok(())
}

/// A `config` deployment failed: its change is dropped, never stored.
pub(crate) fn discard(context: &Context, deployment: &Deployment) {
    if let Ok((project, target)) = deployment_target(deployment) {
        let _ = ConfigDirs::new(context, &project).remove_pending(&target.env, deployment.id);
    }
}

/// How a change was handled.
#[derive(Debug)]
pub enum Changed {
    /// Recorded as a `config` deployment: run at once, or pending approvals.
    Deployed(Box<DeployOutcome>),
    /// Stored; it applies the next time the target is deployed.
    Stored {
        target: String,
        change: String,
        applies: Deferred,
    },
}

/// When a stored change applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// Nothing runs in the environment's base: at its next `deploy` or `promote`.
    NextDeployment,
    /// The biome does not run: at its next `up`.
    NextUp,
    /// The biome runs a snapshot of a dirty working tree, whose `sandpit.toml` sandpit cannot
    /// read again: at its next `up`.
    DirtySnapshot,
}

/// `sandpit config set|unset`: checks the change against the working tree's `sandpit.toml`,
/// then applies it to what runs (as a `config` deployment) or stores it for the next one.
pub async fn change(
    context: &Context,
    raw_target: Option<&str>,
    change: &Change,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<Changed> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let target = resolve_target(context, &spec, raw_target)?;
    let label = target.label();
    check_components(&spec, change)?;
    change.check()?;
    let dirs = ConfigDirs::new(context, &project);
    let mut state = state_store(context)?;
    sweep_pending(&dirs, &state, &target.env)?;

    // Refuse an `unset` of something not set before recording anything.
    let layers = load_layers(context, &project, &target)?;
    let mut level = layers.biome.clone().unwrap_or_else(|| layers.env.clone());
    change
        .apply_to(&mut level)
        .map_err(|missing| not_set_error(&target, &layers, &missing))?;

    let current = state.current(project.as_str(), &label)?;
    let deferred = match &current {
        None if target.is_base() => Some(Deferred::NextDeployment),
        None => Some(Deferred::NextUp),
        Some(d) if sandpit_domain::Version::parse(&d.sha).is_ok_and(|v| v.is_dirty()) => {
            Some(Deferred::DirtySnapshot)
        }
        Some(_) => None,
    };
    if let Some(applies) = deferred {
        dirs.update(&target.env, target.biome_level(), |level| {
            change
                .apply_to(level)
                .map_err(|missing| not_set_error(&target, &layers, &missing))
        })?;
        return Ok(Changed::Stored {
            target: label,
            change: change.describe(),
            applies,
        });
    }
    let current = current.expect("deferred when nothing runs");
    let approvals_required = if target.is_base() {
        spec.environments
            .get(&target.env)
            .map_or(0, |env| env.approvals_required())
    } else {
        0
    };
    let recorded = state.create(&NewDeployment {
        project: project.to_string(),
        target: label,
        env: target.env.to_string(),
        biome: target.biome_level().map(Name::to_string),
        sha: current.sha.clone(),
        components: current.components.clone(),
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Config,
        rollback_of: None,
        // The deployment whose artifacts it runs again, with the changed variables.
        restores: Some(current.id),
    })?;
    if let Err(error) = dirs.save_pending(&target.env, recorded.id, change) {
        // It could never run: say so in its record.
        let _ = state.mark_failed(recorded.id, &format!("{error:#}"));
        return Err(error);
    }
    drop(state);
    Ok(Changed::Deployed(Box::new(
        run_unless_pending(context, recorded, on_event).await?,
    )))
}

/// Removes the kept changes of deployments that will never run (rejected, failed, or whose
/// process died).
fn sweep_pending(
    dirs: &ConfigDirs,
    state: &sandpit_state::StateStore,
    env: &Name,
) -> anyhow::Result<()> {
    for id in dirs.pending_ids(env)? {
        if state.get(id)?.is_none_or(|d| d.is_finished()) {
            dirs.remove_pending(env, id)?;
        }
    }
    Ok(())
}

/// Every component named in a change must be one `sandpit.toml` runs.
fn check_components(spec: &Spec, change: &Change) -> anyhow::Result<()> {
    let components = match change {
        Change::Set { components, .. } | Change::Unset { components, .. } => components,
    };
    for name in components {
        match spec.components.get(name) {
            Some(c) if c.kind == ComponentKind::Model => crate::fail!(
                InvalidInput,
                "`{name}` is a model: the environment's model endpoint serves it, and it gets no variables\nhint: name a service or a job"
            ),
            Some(_) => {}
            None => {
                let known = spec.components.keys().map(Name::as_str);
                let hint = sandpit_domain::suggestion::did_you_mean(name.as_str(), known)
                    .unwrap_or_else(|| "sandpit.toml declares the components under [services.*] and [jobs.*]".to_owned());
                crate::fail!(
                    InvalidInput,
                    "there is no component `{name}` in sandpit.toml\nhint: {hint}"
                );
            }
        }
    }
    Ok(())
}

/// The message for an `unset` of something `target` does not set itself.
fn not_set_error(target: &ConfigTarget, layers: &Layers, missing: &NotSet) -> anyhow::Error {
    let label = target.label();
    let key = &missing.key;
    let scope = match &missing.component {
        Some(component) => format!(" for `{component}`"),
        None => String::new(),
    };
    let inherited = target.biome_level().is_some()
        && layers.env.entries.keys().any(|(s, k)| {
            k == key && (missing.component.is_none() || s.is_none() || *s == missing.component)
        });
    if inherited {
        failure(
            ErrorKind::InvalidInput,
            format!(
            "`{key}` is not set on `{label}`{scope}: it inherits it from `{env}`\nhint: a biome cannot remove what it inherits; override it (`sandpit config set {label} {key}=`), or unset it on `{env}`",
            env = target.env
            ),
        )
    } else {
        failure(
            ErrorKind::NotFound,
            format!("`{key}` is not set on `{label}`{scope}, so there is nothing to unset\nhint: `sandpit config {label}` lists what is set"),
        )
    }
}

/// One variable as `sandpit config` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: Key,
    /// The component it is set for; `None`: all of them.
    pub component: Option<Name>,
    /// The target it is set on: the environment, or the biome (`ENV/BIOME`).
    pub from: String,
    pub level: Level,
    pub secret: bool,
    /// `None` for a secret, unless it was asked for.
    pub value: Option<String>,
    /// The components that get this value; empty when it is overridden for all it was meant for.
    pub applies_to: Vec<Name>,
}

/// A requested change waiting for approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub deployment: i64,
    pub requested_by: String,
    pub approvals_missing: u32,
    /// What it does (the keys, never a value).
    pub change: String,
}

/// What `sandpit config [TARGET]` shows.
#[derive(Debug, Clone)]
pub struct Listing {
    pub target: String,
    pub env: Name,
    /// `None` for an environment's base.
    pub biome: Option<Name>,
    pub variables: Vec<Listed>,
    /// The deployment that runs in the target; `None` when nothing does.
    pub deployment: Option<i64>,
    /// Whether what runs was started with these values (`false` when nothing runs).
    pub up_to_date: bool,
    pub pending: Vec<PendingChange>,
}

/// `sandpit config [TARGET] [--show-secrets]`. A read: it changes nothing and starts nothing.
pub fn show(
    context: &Context,
    raw_target: Option<&str>,
    show_secrets: bool,
) -> anyhow::Result<Listing> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let target = resolve_target(context, &spec, raw_target)?;
    let label = target.label();
    let layers = load_layers(context, &project, &target)?;
    let mut components: Vec<Name> = spec
        .components
        .values()
        .filter(|c| c.kind != ComponentKind::Model)
        .map(|c| c.name.clone())
        .collect();
    components.sort();
    let variables = layers
        .rows(&components)
        .into_iter()
        .map(|row| Listed {
            from: match row.level {
                Level::Environment => target.env.to_string(),
                Level::Biome => label.clone(),
            },
            secret: row.value.secret,
            value: (!row.value.secret || show_secrets).then(|| row.value.text.clone()),
            key: row.key,
            component: row.scope,
            level: row.level,
            applies_to: row.applies_to,
        })
        .collect();
    let dirs = ConfigDirs::new(context, &project);
    let state = state_store(context)?;
    let current = state.current(project.as_str(), &label)?;
    let up_to_date = match &current {
        Some(d) => dirs.released_revisions(&target.env, &target.biome, d.id)? == layers.revisions(),
        None => false,
    };
    let mut pending = Vec::new();
    for id in dirs.pending_ids(&target.env)? {
        let Some(d) = state.get(id)? else { continue };
        if d.target != label || d.state != DeploymentState::Pending {
            continue;
        }
        if let Some(change) = dirs.load_pending(&target.env, id)? {
            pending.push(PendingChange {
                deployment: id,
                requested_by: d.requested_by.clone(),
                approvals_missing: d.approvals_missing(),
                change: change.describe(),
            });
        }
    }
    Ok(Listing {
        target: label,
        env: target.env.clone(),
        biome: target.biome_level().cloned(),
        variables,
        deployment: current.map(|d| d.id),
        up_to_date,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{kind_of, ErrorKind};

    #[test]
    fn refused_config_changes_have_kinds() {
        let spec = sandpit_spec::parse(
            "[project]\nname = \"p\"\n[environments.dev]\nbiomes = true\n[jobs.j]\npath = \".\"\nrun = \"true\"\n[models.m]\npath = \"m\"\nfile = \"m.onnx\"\n",
        )
        .unwrap();
        let unset = |component: &str| Change::Unset {
            keys: vec![],
            components: vec![Name::parse(component).unwrap()],
        };
        let target = ConfigTarget {
            env: Name::parse("dev").unwrap(),
            biome: Name::parse("alice").unwrap(),
        };
        let key = Key::parse("LOG_LEVEL").unwrap();
        let not_set = NotSet {
            key: key.clone(),
            component: None,
        };
        let mut inheriting = Layers {
            biome: Some(Variables::default()),
            ..Layers::default()
        };
        inheriting.env.entries.insert(
            (None, key),
            Value {
                secret: false,
                text: "1".into(),
            },
        );
        let table: Vec<(&str, anyhow::Error, ErrorKind)> = vec![
            (
                "a model gets no variables",
                check_components(&spec, &unset("m")).unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "an unknown component",
                check_components(&spec, &unset("web")).unwrap_err(),
                ErrorKind::InvalidInput,
            ),
            (
                "nothing to unset",
                not_set_error(&target, &Layers::default(), &not_set),
                ErrorKind::NotFound,
            ),
            (
                "an inherited variable",
                not_set_error(&target, &inheriting, &not_set),
                ErrorKind::InvalidInput,
            ),
        ];
        for (what, error, kind) in table {
            assert_eq!(kind_of(&error), kind, "{what}: {error:#}");
        }
    }
}
