//! Plans saved for approvers: a deployment into a protected environment plans each terraform
//! component when it is recorded (`terraform plan -out`), shows the summary to whoever approves
//! it, and once approved applies exactly that plan — refused when the state or the variables
//! moved meanwhile. The decisions are pure functions here; the files live beside the state's
//! other files, `plans/deployment-<id>.tfplan` (0600: it holds the variables' values) and
//! `plans/deployment-<id>.json` ([`SavedPlan`]).

use std::io;
use std::path::{Path, PathBuf};

use sandpit_state::DeploymentKind;
use sandpit_terraform::PlanSummary;
use serde::{Deserialize, Serialize};

/// What sandpit recorded beside a saved plan when it made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// The deployment it was made for.
    pub deployment: i64,
    /// `applied::fingerprint` of the module and the variables it was planned with.
    pub fingerprint: String,
    /// The state's serial and lineage it was planned against; `None`: there was no state yet.
    pub state: Option<(u64, String)>,
    /// What applying it does, as shown to the approvers.
    pub summary: PlanSummary,
}

/// The directory of a state's saved plans.
pub fn plans_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("plans")
}

/// The plan file of deployment `id` (absolute when `state_dir` is: terraform runs elsewhere).
pub fn plan_file(state_dir: &Path, id: i64) -> PathBuf {
    plans_dir(state_dir).join(format!("deployment-{id}.tfplan"))
}

/// The providers' lock file `init` wrote when the plan was made, put back for the apply.
pub fn lock_file(state_dir: &Path, id: i64) -> PathBuf {
    plans_dir(state_dir).join(format!("deployment-{id}.terraform.lock.hcl"))
}

fn record_file(state_dir: &Path, id: i64) -> PathBuf {
    plans_dir(state_dir).join(format!("deployment-{id}.json"))
}

/// Where deployment `id`'s module is extracted to be planned (apart from `work/`, which stays
/// the module as last applied for `sandpit exec`).
pub fn planning_dir(state_dir: &Path, id: i64) -> PathBuf {
    plans_dir(state_dir).join(format!("deployment-{id}"))
}

pub fn read(state_dir: &Path, id: i64) -> io::Result<Option<SavedPlan>> {
    super::record_file::read(&record_file(state_dir, id))
}

pub fn write(state_dir: &Path, saved: &SavedPlan) -> io::Result<()> {
    super::record_file::write(&record_file(state_dir, saved.deployment), saved)
}

/// Removes deployment `id`'s plan, its record and its planning directory (each if present).
pub fn remove(state_dir: &Path, id: i64) -> io::Result<()> {
    for file in [
        plan_file(state_dir, id),
        record_file(state_dir, id),
        lock_file(state_dir, id),
    ] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    match std::fs::remove_dir_all(planning_dir(state_dir, id)) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// The deployments a state's directory holds saved plans for.
pub fn saved_ids(state_dir: &Path) -> io::Result<Vec<i64>> {
    let entries = match std::fs::read_dir(plans_dir(state_dir)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = id_of(&name.to_string_lossy()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// `deployment-12.tfplan`, `deployment-12.json`, `deployment-12` → 12.
fn id_of(file_name: &str) -> Option<i64> {
    let rest = file_name.strip_prefix("deployment-")?;
    let digits = rest.split('.').next()?;
    digits.parse().ok()
}

/// Whether a deployment is planned for its approvers when it is recorded: it waits for
/// approvals, goes to an environment's base, and applies a release (a destroy plans nothing).
pub fn needs_plan(approvals_required: u32, kind: &DeploymentKind, is_base: bool) -> bool {
    approvals_required > 0 && is_base && !kind.removes()
}

/// What to do with one terraform component of a deployment about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not a planned deployment: apply directly (as for biomes and unprotected environments).
    ApplyDirectly,
    /// Apply the saved, approved plan.
    ApplySaved,
    /// Apply nothing: the deployment fails before anything changed.
    Refuse(Refusal),
}

/// Why an approved plan cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No plan was saved for it (made before plans existed, or its files were removed).
    Missing,
    /// The state changed after the plan was made (a hand-run terraform, another deployment).
    StateMoved,
    /// The module or its variables (the configuration) are not what was planned.
    VariablesChanged,
}

impl Refusal {
    /// What went wrong, for `component`; the caller adds how to plan again.
    pub fn describe(self, component: &str) -> String {
        match self {
            Refusal::Missing => format!(
                "terraform component `{component}` has no saved plan for this deployment, so there is nothing approved to apply"
            ),
            Refusal::StateMoved => format!(
                "terraform component `{component}`: the state changed after this plan was approved"
            ),
            Refusal::VariablesChanged => format!(
                "terraform component `{component}`: its module or variables (the configuration) changed after this plan was approved"
            ),
        }
    }
}

/// The decision for one component: `planned` — the deployment was planned when recorded
/// ([`needs_plan`]); `saved` — its record, when the plan file exists too; the fingerprint of
/// what would be applied now and the state's header now.
pub fn decide(
    planned: bool,
    saved: Option<&SavedPlan>,
    fingerprint_now: &str,
    state_now: Option<&(u64, String)>,
) -> Decision {
    if !planned {
        return Decision::ApplyDirectly;
    }
    let Some(saved) = saved else {
        return Decision::Refuse(Refusal::Missing);
    };
    if saved.state.as_ref() != state_now {
        return Decision::Refuse(Refusal::StateMoved);
    }
    if saved.fingerprint != fingerprint_now {
        return Decision::Refuse(Refusal::VariablesChanged);
    }
    Decision::ApplySaved
}

/// How to plan again and have it approved, for a deployment of `kind` into `env`.
pub fn plan_again_hint(kind: &DeploymentKind, env: &str, sha: &str) -> String {
    let commit = sha.get(..12).unwrap_or(sha);
    match kind {
        DeploymentKind::Promote { from } => {
            format!("promote again to plan and approve anew: `sandpit promote {from} {env}`")
        }
        DeploymentKind::Rollback => {
            format!("roll back again to plan and approve anew: `sandpit rollback {env}`")
        }
        DeploymentKind::Config => {
            "request the change again to plan and approve anew: `sandpit config set` or `unset`"
                .to_owned()
        }
        DeploymentKind::Deploy
        | DeploymentKind::Up
        | DeploymentKind::Destroy
        | DeploymentKind::Down => {
            format!("deploy again to plan and approve anew: `sandpit deploy {env} --sha {commit}`")
        }
    }
}

/// A saved plan that may not be applied: the deployment fails before anything was changed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlanRefused {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(fingerprint: &str, state: Option<(u64, &str)>) -> SavedPlan {
        SavedPlan {
            deployment: 7,
            fingerprint: fingerprint.to_owned(),
            state: state.map(|(serial, lineage)| (serial, lineage.to_owned())),
            summary: PlanSummary::default(),
        }
    }

    #[test]
    fn deployments_waiting_for_approval_into_a_base_are_planned() {
        let promote = DeploymentKind::Promote { from: "dev".into() };
        let cases = [
            (1, &promote, true, true),
            (2, &DeploymentKind::Deploy, true, true),
            (1, &DeploymentKind::Rollback, true, true),
            (1, &DeploymentKind::Config, true, true),
            // Unprotected: applied directly.
            (0, &promote, true, false),
            (0, &DeploymentKind::Rollback, true, false),
            // Biomes never wait for approvals, and are applied directly.
            (1, &DeploymentKind::Up, false, false),
            // A destroy applies no release.
            (1, &DeploymentKind::Destroy, true, false),
            (1, &DeploymentKind::Down, false, false),
        ];
        for (approvals, kind, is_base, expect) in cases {
            assert_eq!(
                needs_plan(approvals, kind, is_base),
                expect,
                "{approvals} {kind:?} {is_base}"
            );
        }
    }

    #[test]
    fn an_approved_plan_is_applied_only_to_the_state_and_variables_it_was_made_with() {
        let at_3 = (3, "lin".to_owned());
        let at_4 = (4, "lin".to_owned());
        let other_lineage = (3, "other".to_owned());
        let plan = saved("f", Some((3, "lin")));
        let fresh = saved("f", None);
        let check = |planned: bool,
                     saved: Option<&SavedPlan>,
                     fingerprint: &str,
                     state: Option<&(u64, String)>,
                     expect: Decision| {
            assert_eq!(
                decide(planned, saved, fingerprint, state),
                expect,
                "{planned} {saved:?} {fingerprint} {state:?}"
            );
        };
        check(false, None, "f", None, Decision::ApplyDirectly);
        check(
            false,
            Some(&plan),
            "g",
            Some(&at_4),
            Decision::ApplyDirectly,
        );
        check(true, Some(&plan), "f", Some(&at_3), Decision::ApplySaved);
        check(true, Some(&fresh), "f", None, Decision::ApplySaved);
        check(
            true,
            None,
            "f",
            Some(&at_3),
            Decision::Refuse(Refusal::Missing),
        );
        check(
            true,
            Some(&plan),
            "f",
            Some(&at_4),
            Decision::Refuse(Refusal::StateMoved),
        );
        check(
            true,
            Some(&plan),
            "f",
            Some(&other_lineage),
            Decision::Refuse(Refusal::StateMoved),
        );
        // Planned against no state; one appeared since.
        check(
            true,
            Some(&fresh),
            "f",
            Some(&at_3),
            Decision::Refuse(Refusal::StateMoved),
        );
        check(
            true,
            Some(&plan),
            "g",
            Some(&at_3),
            Decision::Refuse(Refusal::VariablesChanged),
        );
    }

    #[test]
    fn saved_plan_files_are_found_by_deployment() {
        for (name, expect) in [
            ("deployment-12.tfplan", Some(12)),
            ("deployment-12.json", Some(12)),
            ("deployment-12.terraform.lock.hcl", Some(12)),
            ("deployment-3", Some(3)),
            ("deployment-.tfplan", None),
            ("work", None),
            ("deployment-x.json", None),
        ] {
            assert_eq!(id_of(name), expect, "{name}");
        }
    }

    #[test]
    fn the_hint_says_how_to_plan_again() {
        let hint = plan_again_hint(
            &DeploymentKind::Promote { from: "dev".into() },
            "prod",
            "0123456789abcdef",
        );
        assert!(hint.contains("sandpit promote dev prod"), "{hint}");
        let hint = plan_again_hint(&DeploymentKind::Deploy, "prod", "0123456789abcdef");
        assert!(hint.contains("--sha 0123456789ab"), "{hint}");
    }
}
