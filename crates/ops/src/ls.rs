//! `sandpit ls`: the project's biomes, and the environments' base deployments beside them.

use sandpit_domain::Name;
use sandpit_runtime::protocol::{BiomeStatus, ReplyBody, Request};
use sandpit_state::{DeploymentKind, DeploymentState};

use crate::daemon_connection;
use crate::project::ProjectDir;
use crate::Context;

/// What runs for the project, split into biomes and environment bases.
#[derive(Debug)]
pub struct Listing {
    /// `false` when no daemon runs: then nothing runs, and the lists are empty.
    pub daemon_running: bool,
    pub biomes: Vec<BiomeStatus>,
    pub environments: Vec<BiomeStatus>,
    /// Biomes whose last `down` failed, with what it left behind.
    pub down_failed: Vec<DownFailed>,
}

/// A biome whose `down` did not finish: nothing of it runs, but something is left.
#[derive(Debug)]
pub struct DownFailed {
    pub biome: Name,
    pub env: Name,
    /// The failed `down` deployment and why it failed.
    pub deployment: i64,
    pub message: String,
    pub left: Vec<String>,
}

/// Biomes whose newest deployment is a `down` that failed.
fn down_failed(context: &Context, project: &Name) -> anyhow::Result<Vec<DownFailed>> {
    let state = crate::deployment::state_store(context)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for d in state.history(project.as_str(), None)? {
        if !seen.insert(d.target.clone()) {
            continue;
        }
        let Some(biome) = &d.biome else { continue };
        if d.kind == DeploymentKind::Down && d.state == DeploymentState::Failed {
            let (biome, env) = (Name::parse(biome)?, Name::parse(&d.env)?);
            found.push(DownFailed {
                left: crate::down::left_behind(context, project, &env, &biome),
                biome,
                env,
                deployment: d.id,
                message: d.message.clone().unwrap_or_default(),
            });
        }
    }
    found.sort_by(|a, b| a.biome.cmp(&b.biome));
    Ok(found)
}

pub async fn ls(context: &Context) -> anyhow::Result<Listing> {
    let spec = ProjectDir::locate(&context.project_dir)?.load_spec()?;
    let request = Request::List {
        project: Some(spec.project.name.clone()),
    };
    // A read never starts the daemon: that would bring stopped biomes back as a side effect.
    let down_failed = down_failed(context, &spec.project.name)?;
    match daemon_connection::request_if_running(context, &request).await? {
        None => Ok(Listing {
            daemon_running: false,
            biomes: Vec::new(),
            environments: Vec::new(),
            down_failed,
        }),
        Some(ReplyBody::Biomes { biomes }) => {
            // An environment's base runs as a biome named after the environment.
            let (environments, biomes): (Vec<_>, Vec<_>) =
                biomes.into_iter().partition(|b| b.biome == b.env);
            let down_failed = down_failed
                .into_iter()
                .filter(|f| !biomes.iter().any(|b| b.biome == f.biome))
                .collect();
            Ok(Listing {
                daemon_running: true,
                biomes,
                environments,
                down_failed,
            })
        }
        Some(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}
