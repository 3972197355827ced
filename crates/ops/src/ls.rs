//! `sandpit ls`: the project's biomes, and the environments' base deployments beside them.

use std::collections::BTreeMap;

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::DeploymentKind;

use crate::cost::Cost;
use crate::daemon_connection;
use crate::Context;

/// What runs for the project, split into biomes and environment bases.
#[derive(Debug)]
pub struct Listing {
    /// `false` when no daemon runs: then nothing runs, and the lists are empty.
    pub daemon_running: bool,
    pub biomes: Vec<BiomeStatus>,
    pub environments: Vec<BiomeStatus>,
    /// Biomes whose last operation did not finish and that the daemon does not run: a failed
    /// `down`, or a failed (or interrupted) first `up` that left a database behind.
    pub incomplete: Vec<Incomplete>,
    /// What each of `biomes` and `environments` costs now, by name (`cost.rs`).
    pub costs: BTreeMap<Name, Cost>,
    /// The current expiry of each biome that has one (see `crate::expiry`).
    pub expiries: Vec<sandpit_state::Expiry>,
}

impl Listing {
    /// When `biome` expires (RFC 3339); `None` for an environment base or a biome without one.
    pub fn expires_at(&self, biome: &BiomeStatus) -> Option<&str> {
        self.expiries
            .iter()
            .find(|e| e.env == biome.env.as_str() && e.biome == biome.biome.as_str())
            .map(|e| e.expires_at.as_str())
    }
}

/// A biome whose last operation did not finish: nothing of it runs, but something may be left.
#[derive(Debug)]
pub struct Incomplete {
    pub biome: Name,
    pub env: Name,
    /// `destroy-failed` (its terraform resources could not be destroyed), `down-failed` or
    /// `up-failed`.
    pub state: &'static str,
    /// The failed deployment and why it failed.
    pub deployment: i64,
    pub message: String,
    pub left: Vec<String>,
}

/// Biomes whose newest deployment failed: a `down` (whatever is left), or an `up` that left
/// something behind. Deployments whose process died are marked failed first.
fn incomplete(context: &Context, project: &Name) -> anyhow::Result<Vec<Incomplete>> {
    let mut state = crate::deployment::state_store(context)?;
    state.fail_interrupted(project.as_str())?;
    let mut found = Vec::new();
    for d in state.newest_failed_biome_deployments(project.as_str())? {
        let Some(biome) = &d.biome else { continue };
        let (biome, env) = (Name::parse(biome)?, Name::parse(&d.env)?);
        let left = crate::down::left_behind(context, project, &env, &biome);
        let state = match d.kind {
            // Its infrastructure could not be destroyed: the one part that costs money.
            DeploymentKind::Down if left.iter().any(|l| l.contains("terraform state")) => {
                "destroy-failed"
            }
            DeploymentKind::Down => "down-failed",
            DeploymentKind::Up if !left.is_empty() => "up-failed",
            _ => continue,
        };
        found.push(Incomplete {
            left,
            biome,
            env,
            state,
            deployment: d.id,
            message: d.message.clone().unwrap_or_default(),
        });
    }
    found.sort_by(|a, b| a.biome.cmp(&b.biome));
    Ok(found)
}

pub async fn ls(context: &Context) -> anyhow::Result<Listing> {
    let spec = context.source.spec()?;
    // A read never starts the daemon: that would bring stopped biomes back as a side effect.
    let incomplete = incomplete(context, &spec.project.name)?;
    let expiries = crate::expiry::of_project(context, &spec.project.name)?;
    match daemon_connection::list_brief_if_running(context, &spec.project.name).await? {
        None => Ok(Listing {
            daemon_running: false,
            biomes: Vec::new(),
            environments: Vec::new(),
            incomplete,
            costs: BTreeMap::new(),
            expiries,
        }),
        Some(biomes) => {
            // One measurement for all of them: a listing of hundreds of biomes stays one read
            // of `/proc` (done by the daemon), one query and one request per environment.
            let costs = crate::cost::costs(context, &spec, &biomes).await;
            // An environment's base runs as a biome named after the environment.
            let (environments, biomes): (Vec<_>, Vec<_>) =
                biomes.into_iter().partition(|b| b.biome == b.env);
            let incomplete = incomplete
                .into_iter()
                .filter(|f| !biomes.iter().any(|b| b.biome == f.biome))
                .collect();
            Ok(Listing {
                daemon_running: true,
                biomes,
                environments,
                incomplete,
                costs,
                expiries,
            })
        }
    }
}
