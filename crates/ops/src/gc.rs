//! `sandpit gc [--env ENV] [--dry-run]`: remove artifacts from environment stores that no retained
//! deployment refers to. Retained: the newest `keep_deployments` deployments of every target in
//! the environment, whatever runs or is pending there, and whatever the daemon reports running.

use std::collections::BTreeSet;

use sandpit_artifact::store::GarbageReport;
use sandpit_domain::{Digest, Name};
use sandpit_runtime::protocol::{ReplyBody, Request};

use crate::daemon_connection;
use crate::deploy::environment;
use crate::deployment;
use crate::project::ProjectDir;
use crate::Context;

/// What was (or would be) collected in one environment's store.
#[derive(Debug)]
pub struct EnvironmentGarbage {
    pub env: Name,
    pub kept: usize,
    pub report: GarbageReport,
}

pub async fn gc(
    context: &Context,
    env: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<Vec<EnvironmentGarbage>> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let project = spec.project.name.clone();
    let envs: Vec<Name> = match env {
        Some(raw) => vec![environment(&spec, raw)?],
        None => spec.environments.keys().cloned().collect(),
    };
    // Belt and braces: never collect what runs now, whatever the records say.
    let mut running: BTreeSet<(Name, Digest)> = BTreeSet::new();
    let list = Request::List {
        project: Some(project.clone()),
    };
    if let Some(ReplyBody::Biomes { biomes }) =
        daemon_connection::request_if_running(context, &list).await?
    {
        for biome in biomes {
            for component in biome.components {
                running.insert((biome.env.clone(), component.digest));
            }
        }
    }
    let state = deployment::state_store(context)?;
    let mut collected = Vec::new();
    for env in envs {
        let keep_count = spec.environments[&env].keep_deployments as usize;
        let mut keep: BTreeSet<Digest> = state
            .retained_digests(project.as_str(), env.as_str(), keep_count)?
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect();
        keep.extend(
            running
                .iter()
                .filter(|(e, _)| *e == env)
                .map(|(_, d)| d.clone()),
        );
        let store = deployment::env_store(context, &project, &env)?;
        let report = store.collect_garbage(&keep, dry_run)?;
        collected.push(EnvironmentGarbage {
            env,
            kept: keep.len(),
            report,
        });
    }
    Ok(collected)
}
