//! The reaper: removes expired biomes, and merge requests' biomes once GitLab confirms the
//! merge request closed or merged, through the same path as `sandpit down` — each removal a
//! `down` deployment requested by `reaper` that says why. [`plan`] decides (pure, with the
//! fail-safe); [`run_project`] gathers the facts, asks GitLab and removes.
//!
//! A biome's definition is read from where its newest `up` recorded it was brought up from
//! (a checkout's project directory or a server's mirror) at the commit it runs, so the daemon
//! can reap without the user's shell; a biome whose definition cannot be read is kept.

pub mod plan;

use std::time::{Duration, SystemTime};

use sandpit_build::git::Repository;
use sandpit_domain::{CommitId, Name};
use sandpit_spec::Spec;
use sandpit_state::{BiomeSource, Expiry};

use crate::principal::{Principal, Role};
use crate::report::gitlab;
use crate::{Context, Source};
pub use plan::{Action, Plan, Stop, Verdict};

/// Who the reaper's removals are recorded as requested by.
pub const REAPER: &str = "reaper";

/// How long GitLab may take to answer, connecting included, when nothing else is configured.
pub const DEFAULT_GIT_HOST_TIMEOUT: Duration = Duration::from_secs(5);

/// How one run goes.
#[derive(Debug, Clone)]
pub struct ReapOptions {
    /// List the verdicts only.
    pub dry_run: bool,
    /// Past the share guard (never past a git host that cannot be asked).
    pub force: bool,
    /// How long the git host may take to answer (`SANDPIT_GIT_HOST_TIMEOUT_MS`).
    pub git_host_timeout: Duration,
}

impl Default for ReapOptions {
    fn default() -> ReapOptions {
        ReapOptions {
            dry_run: false,
            force: false,
            git_host_timeout: DEFAULT_GIT_HOST_TIMEOUT,
        }
    }
}

/// One biome the reaper removed.
#[derive(Debug, Clone)]
pub struct Removed {
    pub biome: Name,
    pub env: Name,
    /// The `down` deployment that records it.
    pub deployment: i64,
}

/// What one run over a project did.
#[derive(Debug, Clone)]
pub struct ReapOutcome {
    pub project: Name,
    pub dry_run: bool,
    pub plan: Plan,
    pub removed: Vec<Removed>,
    /// Removals that were tried and did not finish (the biome is then `down-failed`).
    pub failed: Vec<(Name, String)>,
}

impl ReapOutcome {
    /// One line for a log: what went, what stayed, or why nothing went.
    pub fn summary(&self) -> String {
        let project = &self.project;
        if let Some(stop) = &self.plan.stop {
            return format!("reaper, project {project}: {stop}");
        }
        let kept = self
            .plan
            .verdicts
            .iter()
            .filter(|v| v.action == Action::Keep)
            .count();
        let removed: Vec<String> = self
            .removed
            .iter()
            .map(|r| format!("{} (deployment #{})", r.biome, r.deployment))
            .collect();
        let mut line = format!(
            "reaper, project {project}: removed {}, kept {kept}",
            if removed.is_empty() {
                "nothing".to_owned()
            } else {
                removed.join(", ")
            }
        );
        for (biome, error) in &self.failed {
            line.push_str(&format!("; removing {biome} failed: {error}"));
        }
        line
    }
}

/// One pass over the project the context's source names (`sandpit reap`).
pub async fn run(context: &Context, options: &ReapOptions) -> anyhow::Result<ReapOutcome> {
    let spec = context.source.spec()?;
    run_project(context, &spec.project.name, options).await
}

/// One pass over every project of the home that has biomes with an expiry (the daemon's
/// automatic runs): each project's outcome, or why its run failed.
pub async fn run_home(
    context: &Context,
    options: &ReapOptions,
) -> Vec<(String, anyhow::Result<ReapOutcome>)> {
    let projects = crate::deployment::state_store(context)
        .and_then(|state| Ok(state.projects_with_expiries()?));
    let projects = match projects {
        Ok(projects) => projects,
        Err(error) => return vec![("every project".to_owned(), Err(error))],
    };
    let mut outcomes = Vec::new();
    for project in projects {
        let outcome = match Name::parse(&project) {
            Ok(name) => run_project(context, &name, options).await,
            Err(error) => Err(error.into()),
        };
        outcomes.push((project, outcome));
    }
    outcomes
}

/// A biome that exists, with what its removal needs.
struct Existing {
    env: Name,
    biome: Name,
    /// The version it runs, recorded on its `down`.
    sha: String,
    expiry: Option<Expiry>,
    /// Its definition and the context that reads it, or why it cannot be read.
    definition: Result<(Spec, Context), String>,
}

/// One pass over `project`'s biomes.
pub async fn run_project(
    context: &Context,
    project: &Name,
    options: &ReapOptions,
) -> anyhow::Result<ReapOutcome> {
    let outcome = |plan: Plan| ReapOutcome {
        project: project.clone(),
        dry_run: options.dry_run,
        plan,
        removed: Vec::new(),
        failed: Vec::new(),
    };
    let existing = match existing_biomes(context, project) {
        Ok(existing) => existing,
        Err(error) => {
            return Ok(outcome(Plan {
                verdicts: Vec::new(),
                stop: Some(Stop::StateStore(format!("{error:#}"))),
            }))
        }
    };
    let client = gitlab::Client::with_timeout(options.git_host_timeout)?;
    let mut candidates = Vec::new();
    for biome in &existing {
        let merge_request = match plan::request_of(biome.biome.as_str()) {
            plan::Request::MergeRequest(iid) => Some(match &biome.definition {
                Ok((spec, _)) => ask_git_host(context, &client, spec, &biome.env, iid).await,
                Err(why) => plan::GitHostAnswer::NotAsked(why.clone()),
            }),
            _ => None,
        };
        candidates.push(plan::Candidate {
            biome: biome.biome.clone(),
            env: biome.env.clone(),
            expiry: biome.expiry.as_ref().and_then(|e| {
                Some(plan::ExpiryFact {
                    at: crate::expiry::expires_at(e)?,
                    shown: e.expires_at.clone(),
                    cause: crate::expiry::cause(e),
                })
            }),
            definition: biome.definition.as_ref().map(drop).map_err(Clone::clone),
            merge_request,
        });
    }
    // The strictest limit any of the biomes' definitions sets.
    let max_percent = existing
        .iter()
        .filter_map(|b| b.definition.as_ref().ok())
        .map(|(spec, _)| spec.biomes.reap_max_percent)
        .min()
        .unwrap_or(sandpit_spec::Biomes::default().reap_max_percent);
    let limit = plan::ShareLimit {
        max_percent,
        force: options.force,
    };
    let decided = plan::plan(&candidates, limit, SystemTime::now());
    let mut done = outcome(decided);
    if done.dry_run || done.plan.stop.is_some() {
        return Ok(done);
    }
    for verdict in done.plan.verdicts.clone() {
        if verdict.action != Action::Remove {
            continue;
        }
        let Some(biome) = existing.iter().find(|b| b.biome == verdict.biome) else {
            continue;
        };
        let Ok((spec, biome_context)) = &biome.definition else {
            continue;
        };
        let removed = crate::down::remove(
            biome_context,
            spec,
            &biome.env,
            &biome.biome,
            biome.sha.clone(),
            Some(&verdict.reason),
            &mut |_, _| {},
        )
        .await;
        match removed {
            Ok(down) => done.removed.push(Removed {
                biome: down.biome,
                env: down.env,
                deployment: down.deployment,
            }),
            Err(error) => done
                .failed
                .push((biome.biome.clone(), format!("{error:#}"))),
        }
    }
    Ok(done)
}

/// The project's biomes that exist (their newest deployment is not a `down` that succeeded,
/// and they came up at least once), with their expiries and definitions.
fn existing_biomes(context: &Context, project: &Name) -> anyhow::Result<Vec<Existing>> {
    let state = crate::deployment::state_store(context)?;
    let expiries = state.expiries(project.as_str())?;
    let history = state.history(project.as_str(), None)?;
    drop(state);
    let mut seen = std::collections::BTreeSet::new();
    let mut existing = Vec::new();
    // Newest first: the first deployment of a target is its newest.
    for newest in &history {
        let Some(biome) = &newest.biome else { continue };
        if !seen.insert(newest.target.clone()) || !crate::expiry::exists(Some(newest)) {
            continue;
        }
        let (env, biome) = (Name::parse(&newest.env)?, Name::parse(biome)?);
        let expiry = expiries
            .iter()
            .find(|e| e.env == env.as_str() && e.biome == biome.as_str())
            .cloned();
        if expiry.is_none() && newest.state != sandpit_state::DeploymentState::Succeeded {
            // A first `up` that failed: `ls` reports what it left; nothing of it runs.
            continue;
        }
        let definition = match expiry.as_ref().and_then(|e| e.source.as_ref()) {
            Some(source) => definition(context, source),
            None => Err("no record says which repository it was brought up from".to_owned()),
        };
        existing.push(Existing {
            env,
            biome,
            sha: newest.sha.clone(),
            expiry,
            definition,
        });
    }
    existing.sort_by(|a, b| a.biome.cmp(&b.biome));
    Ok(existing)
}

/// The biome's definition, read from `source` alone, and a context that acts on it as the
/// reaper.
fn definition(context: &Context, source: &BiomeSource) -> Result<(Spec, Context), String> {
    let path = std::path::Path::new(&source.repository);
    let repo = if source.bare {
        Repository::open_bare(path, context.base_env.clone())
    } else {
        Repository::discover_with_env(path, context.base_env.clone())
    }
    .map_err(|e| format!("its repository {} cannot be opened: {e}", path.display()))?;
    let commit = CommitId::parse(&source.revision)
        .map_err(|e| format!("its revision cannot be read: {e}"))?;
    let reaper = Context {
        source: Source::Commit { repo, commit },
        principal: Principal::named(REAPER, Role::ALL),
        ..context.clone()
    };
    let spec = reaper.source.spec().map_err(|e| {
        format!(
            "sandpit.toml at {} in {}: {e:#}",
            source.revision,
            path.display()
        )
    })?;
    Ok((spec, reaper))
}

/// What GitLab says about merge request `iid`, asked with the token of `[gitlab]` in the
/// biome's definition (the configuration secret on the base of the biome's environment).
async fn ask_git_host(
    context: &Context,
    client: &gitlab::Client,
    spec: &Spec,
    env: &Name,
    iid: u64,
) -> plan::GitHostAnswer {
    let Some(forge) = &spec.gitlab else {
        return plan::GitHostAnswer::NotAsked(
            "its sandpit.toml has no [gitlab] to ask whether it is closed".to_owned(),
        );
    };
    let token = match crate::report::forge_token(
        context,
        spec.project.name.as_str(),
        env.as_str(),
        &forge.token_secret,
    ) {
        Ok(token) => token,
        Err(missing) => return plan::GitHostAnswer::NotAsked(missing),
    };
    let call = gitlab::merge_request(&forge.api_url, &forge.project, iid);
    let answered = client.send(&call, &token).await;
    plan::merge_request_answer(&answered.answer, &answered.body)
}
