//! `sandpit status [BIOME]`: what one biome runs and how it is doing, and which models the
//! environment's endpoint answers for it.

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;

use crate::daemon_connection;
use crate::models::ServedModel;
use crate::Context;

/// The status of the biome `raw` names (the current branch's when `None`; see
/// [`crate::target::resolve`]). An unknown biome is refused with a did-you-mean among the
/// biomes the daemon runs and the ones in the history.
pub async fn status(context: &Context, raw: Option<&str>) -> anyhow::Result<BiomeStatus> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let target = crate::target::resolve(context, &spec, raw)?;
    let biome = target.name.clone();
    // Every biome (and environment base) the history knows of, for "is there such a thing".
    let recorded: Vec<String> = crate::deployment::state_store(context)?
        .history(project.as_str(), None)?
        .into_iter()
        .map(|d| d.biome.unwrap_or(d.env))
        .collect();
    let not_found = |running: &[BiomeStatus]| {
        let mut known: Vec<String> = running.iter().map(|b| b.biome.to_string()).collect();
        known.extend(recorded.iter().cloned());
        known.sort();
        known.dedup();
        let hint = crate::target::did_you_mean_biome(&known, &biome)
            .map(|s| format!("\nhint: {s}"))
            .unwrap_or_else(|| "\nhint: `sandpit ls` lists the biomes".to_owned());
        crate::error::failure(
            crate::error::ErrorKind::NotFound,
            format!("there is no biome `{biome}` in project `{project}`{hint}"),
        )
    };
    // A read never starts the daemon (see `daemon_connection::running`); a biome nothing was
    // ever brought up as is not found whether it runs or not.
    let client = match daemon_connection::running(context).await {
        Ok(client) => client,
        Err(_) if !recorded.iter().any(|b| b == biome.as_str()) => return Err(not_found(&[])),
        Err(not_running) => return Err(not_running),
    };
    let listed = daemon_connection::answer(client.list(Some(project.clone())).await)?;
    let Some(status) = listed.iter().find(|b| b.biome == biome) else {
        return Err(not_found(&listed));
    };
    target.check_env(&status.env)?;
    Ok(status.clone())
}

/// What the biome of `status` costs now (`cost.rs`): its processes as the daemon measured them,
/// its database's size and its models' memory when the instance and the endpoint run.
pub async fn cost(context: &Context, status: &BiomeStatus) -> anyhow::Result<crate::cost::Cost> {
    let spec = context.source.spec()?;
    let costs = crate::cost::costs(context, &spec, std::slice::from_ref(status)).await;
    Ok(costs.get(&status.biome).copied().unwrap_or_default())
}

/// A deployment into the target that waits for approvals, with the terraform plan its
/// approvers are asked to approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeployment {
    pub id: i64,
    /// `deploy`, `promote`, `rollback`, `config`, …
    pub kind: String,
    pub sha: String,
    pub requested_by: String,
    pub approvals_missing: u32,
    /// Its `planned` steps: one line per terraform component (`infra: 1 to add, …`).
    pub plan: Vec<String>,
}

/// The deployments into `status`'s target that wait for approvals, oldest first.
pub fn pending(context: &Context, status: &BiomeStatus) -> anyhow::Result<Vec<PendingDeployment>> {
    let target = crate::deployment::target_label(&status.env, &status.biome);
    let mut found: Vec<PendingDeployment> = crate::deployment::state_store(context)?
        .history(status.project.as_str(), Some(&target))?
        .into_iter()
        .filter(|d| d.state == sandpit_state::DeploymentState::Pending && d.approvals_missing() > 0)
        .map(|d| PendingDeployment {
            id: d.id,
            kind: d.kind.as_str().to_owned(),
            sha: d.sha.clone(),
            requested_by: d.requested_by.clone(),
            approvals_missing: d.approvals_missing(),
            plan: d
                .steps
                .iter()
                .filter(|s| s.step == sandpit_state::StepKind::Planned)
                .map(|s| s.message.clone())
                .collect(),
        })
        .collect();
    found.reverse();
    Ok(found)
}

/// Where the version of a model that answers for a biome comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The biome registered its own version.
    Biome,
    /// The environment's base serves it: the biome has no version of its own (or it is the base).
    Environment,
}

impl ModelSource {
    /// The stable spelling (`status --json`'s `source`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSource::Biome => "biome",
            ModelSource::Environment => "environment",
        }
    }
}

/// One model the environment's endpoint answers for a biome under its plain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiomeModel {
    pub name: String,
    /// `<component>-<version>.zip`.
    pub artifact: String,
    pub digest: String,
    pub source: ModelSource,
    /// The biome's `SANDPIT_MODELS_URL`; `None` when the endpoint's port is not known.
    pub endpoint: Option<String>,
}

/// The models the environment's endpoint answers for the biome of `status`, by the saved
/// registrations (models are not processes: the daemon does not report them). None for a biome
/// the endpoint does not know.
pub fn models(context: &Context, status: &BiomeStatus) -> anyhow::Result<Vec<BiomeModel>> {
    let is_base = status.biome == status.env;
    let biome = (!is_base).then_some(&status.biome);
    let label = biome.map_or(crate::models::BASE.to_owned(), Name::to_string);
    if !crate::models::is_registered(context, &status.project, &status.env, &label) {
        return Ok(Vec::new());
    }
    let served: Vec<ServedModel> = crate::models::served_models(context, &status.project)?
        .into_iter()
        .filter(|m| m.env == status.env)
        .collect();
    let endpoint = crate::models::models_url(context, &status.project, &status.env, biome);
    Ok(answered(biome, &served)
        .into_iter()
        .map(|(model, source)| BiomeModel {
            name: model.model.clone(),
            artifact: model.artifact.clone(),
            digest: model.digest.clone(),
            source,
            endpoint: endpoint.clone(),
        })
        .collect())
}

/// Which of an environment's served models answer for `biome` (`None`: the base), as the
/// endpoint's registry resolves plain names: the biome's own version, else the base's. Sorted by
/// model name.
fn answered<'a>(
    biome: Option<&Name>,
    served: &'a [ServedModel],
) -> Vec<(&'a ServedModel, ModelSource)> {
    let mut answered: Vec<(&ServedModel, ModelSource)> = served
        .iter()
        .filter(|m| biome.is_some() && m.biome.as_ref() == biome)
        .map(|m| (m, ModelSource::Biome))
        .collect();
    for base in served.iter().filter(|m| m.biome.is_none()) {
        if !answered.iter().any(|(m, _)| m.model == base.model) {
            answered.push((base, ModelSource::Environment));
        }
    }
    answered.sort_by(|a, b| a.0.model.cmp(&b.0.model));
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(biome: Option<&str>, model: &str, digest: &str) -> ServedModel {
        ServedModel {
            env: Name::parse("dev").unwrap(),
            biome: biome.map(|b| Name::parse(b).unwrap()),
            model: model.to_owned(),
            artifact: format!("{model}-{digest}.zip"),
            digest: digest.to_owned(),
        }
    }

    #[test]
    fn a_biome_is_answered_with_its_own_versions_and_the_base_fills_the_rest() {
        let all = [
            served(None, "grade", "base-grade"),
            served(None, "tonnage", "base-tonnage"),
            served(Some("alice"), "grade", "alice-grade"),
            served(Some("alice"), "recovery", "alice-recovery"),
            served(Some("bob"), "tonnage", "bob-tonnage"),
        ];
        let check = |biome: Option<&str>, expect: &[(&str, &str, ModelSource)]| {
            let biome = biome.map(|b| Name::parse(b).unwrap());
            let got: Vec<(&str, &str, ModelSource)> = answered(biome.as_ref(), &all)
                .into_iter()
                .map(|(m, source)| (m.model.as_str(), m.digest.as_str(), source))
                .collect();
            assert_eq!(got, expect, "{biome:?}");
        };
        use ModelSource::{Biome, Environment};
        check(
            Some("alice"),
            &[
                ("grade", "alice-grade", Biome),
                ("recovery", "alice-recovery", Biome),
                ("tonnage", "base-tonnage", Environment),
            ],
        );
        check(
            Some("bob"),
            &[
                ("grade", "base-grade", Environment),
                ("tonnage", "bob-tonnage", Biome),
            ],
        );
        // Registered with no models of its own: everything is the environment's.
        check(
            Some("carol"),
            &[
                ("grade", "base-grade", Environment),
                ("tonnage", "base-tonnage", Environment),
            ],
        );
        // The base is answered with its own, which are the environment's.
        check(
            None,
            &[
                ("grade", "base-grade", Environment),
                ("tonnage", "base-tonnage", Environment),
            ],
        );
        assert_eq!(answered(Some(&Name::parse("alice").unwrap()), &[]), []);
    }
}
