//! Which role each verb of the control plane's API needs: one pure table, the only place the
//! server asks (`required_role`), and the refusal that names the role needed and the ones held.
//! A change (`up`, `down`, `deploy`, …) is first classified by [`action_for`]: whose biome it
//! touches, or which environment and whether it is protected.

use crate::error::{failure, ErrorKind};
use crate::principal::{Principal, Role};

/// Everything a caller of the API can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Any read: whoami, projects, biomes, status, history, trace, artifacts, logs.
    Read,
    /// `up`, `down`, `restart` or `config` of a biome the caller owns.
    ChangeOwnBiome,
    /// `up`, `down`, `restart` or `config` of a biome someone else owns (tidying up after a
    /// colleague is a deployer's job, and an admin's).
    ChangeOthersBiome,
    /// `deploy` into an environment that is not protected.
    DeployUnprotected,
    /// `promote` into an environment that is not protected.
    PromoteUnprotected,
    /// `deploy` or `promote` into a protected environment: a request that waits for approval.
    RequestIntoProtected,
    /// Approve a pending deployment (never one's own, whatever the roles).
    Approve,
    /// Reject a pending deployment.
    Reject,
    /// Create, list or revoke API tokens.
    ManageTokens,
    /// Add or remove projects.
    ManageProjects,
    /// Run a project's pipeline, or retry one.
    RunPipeline,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::ChangeOwnBiome,
        Action::ChangeOthersBiome,
        Action::DeployUnprotected,
        Action::PromoteUnprotected,
        Action::RequestIntoProtected,
        Action::Approve,
        Action::Reject,
        Action::ManageTokens,
        Action::ManageProjects,
        Action::RunPipeline,
    ];
}

/// The role an action needs; [`Principal::may`] decides whether the roles held include it.
pub fn required_role(action: Action) -> Role {
    match action {
        Action::Read => Role::Viewer,
        Action::ChangeOwnBiome => Role::Developer,
        Action::ChangeOthersBiome
        | Action::DeployUnprotected
        | Action::PromoteUnprotected
        | Action::RequestIntoProtected
        | Action::RunPipeline => Role::Deployer,
        Action::Approve | Action::Reject => Role::Approver,
        Action::ManageTokens | Action::ManageProjects => Role::Admin,
    }
}

/// `Ok` when `principal` may do `action`; otherwise a [`ErrorKind::Forbidden`] failure naming
/// the role needed and the roles held.
pub fn authorize(principal: &Principal, action: Action) -> anyhow::Result<()> {
    let needed = required_role(action);
    if principal.may(needed) {
        return Ok(());
    }
    let held: Vec<&str> = principal.roles.iter().map(|role| role.as_str()).collect();
    let held = if held.is_empty() {
        "no role".to_owned()
    } else {
        held.join(", ")
    };
    Err(failure(
        ErrorKind::Forbidden,
        format!(
            "this needs the `{}` role; your token has {held}\nhint: ask an admin for a token with the `{}` role (`sandpit tokens create USER --role {}`)",
            needed.as_str(),
            needed.as_str(),
            needed.as_str()
        ),
    ))
}

/// What a change touches, as far as who may make it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// `up`, `down`, `restart` or `config` of a biome; `owner` is the requester of its newest
    /// `up` (`None`: nobody brought it up yet, so whoever does owns it).
    Biome {
        name: &'a str,
        owner: Option<&'a str>,
    },
    /// A deployment into an environment's base: `deploy`, `rollback`, `config` of an
    /// environment (`promotion: false`) or `promote` (`promotion: true`).
    Environment {
        name: &'a str,
        protected: bool,
        promotion: bool,
    },
}

/// The action `change` is when `caller` (a token's user) asks for it (pure).
pub fn action_for(caller: &str, change: Change<'_>) -> Action {
    match change {
        Change::Biome { owner: None, .. } => Action::ChangeOwnBiome,
        Change::Biome {
            owner: Some(owner), ..
        } if owner == caller => Action::ChangeOwnBiome,
        Change::Biome { .. } => Action::ChangeOthersBiome,
        // Into a protected environment, even an admin only asks: approvers decide.
        Change::Environment {
            protected: true, ..
        } => Action::RequestIntoProtected,
        Change::Environment {
            promotion: true, ..
        } => Action::PromoteUnprotected,
        Change::Environment { .. } => Action::DeployUnprotected,
    }
}

/// `Ok` when `principal` may make `change`; otherwise the refusal, which says whose biome it
/// is when that is why.
pub fn authorize_change(principal: &Principal, change: Change<'_>) -> anyhow::Result<()> {
    let caller = match &principal.identity {
        crate::principal::Identity::Named(name) => name.as_str(),
        // The local user holds every role; whose the biome is does not matter.
        crate::principal::Identity::LocalGitUser => "",
    };
    let action = action_for(caller, change);
    authorize(principal, action).map_err(|refused| match change {
        Change::Biome {
            name,
            owner: Some(owner),
        } if action == Action::ChangeOthersBiome => failure(
            ErrorKind::Forbidden,
            format!("biome `{name}` is {owner}'s (they brought it up last): {refused}"),
        ),
        _ => refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// Every role × every action: allowed or not. Columns: viewer, developer, deployer,
    /// approver, admin.
    const MATRIX: [(Action, [bool; 5]); 11] = [
        (Read, [true, true, true, true, true]),
        (ChangeOwnBiome, [false, true, true, false, true]),
        (ChangeOthersBiome, [false, false, true, false, true]),
        (DeployUnprotected, [false, false, true, false, true]),
        (PromoteUnprotected, [false, false, true, false, true]),
        (RequestIntoProtected, [false, false, true, false, true]),
        (Approve, [false, false, false, true, true]),
        (Reject, [false, false, false, true, true]),
        (ManageTokens, [false, false, false, false, true]),
        (ManageProjects, [false, false, false, false, true]),
        (RunPipeline, [false, false, true, false, true]),
    ];

    #[test]
    fn the_role_matrix_allows_each_role_exactly_its_actions() {
        assert_eq!(
            MATRIX.map(|(action, _)| action),
            Action::ALL,
            "the matrix covers every action"
        );
        for (action, allowed) in MATRIX {
            for (role, allowed) in Role::ALL.into_iter().zip(allowed) {
                let principal = Principal::named("u@x", [role]);
                assert_eq!(
                    authorize(&principal, action).is_ok(),
                    allowed,
                    "{role:?} → {action:?}"
                );
            }
        }
    }

    #[test]
    fn a_refusal_names_the_role_needed_and_the_roles_held() {
        let principal = Principal::named("u@x", [Role::Viewer, Role::Approver]);
        let error = authorize(&principal, ManageTokens).unwrap_err();
        assert_eq!(crate::error::kind_of(&error), ErrorKind::Forbidden);
        let message = error.to_string();
        assert!(
            message.starts_with("this needs the `admin` role; your token has viewer, approver"),
            "{message}"
        );
        assert!(message.contains("\nhint: "), "{message}");
        let nobody = Principal::named("u@x", []);
        let message = authorize(&nobody, Read).unwrap_err().to_string();
        assert!(message.contains("your token has no role"), "{message}");
    }

    #[test]
    fn a_change_is_classified_by_whose_biome_or_which_environment_it_touches() {
        let env = |protected, promotion| Change::Environment {
            name: "dev",
            protected,
            promotion,
        };
        // (caller, change, action)
        let table = [
            (
                "alice",
                Change::Biome {
                    name: "b",
                    owner: None,
                },
                ChangeOwnBiome,
            ),
            (
                "alice",
                Change::Biome {
                    name: "b",
                    owner: Some("alice"),
                },
                ChangeOwnBiome,
            ),
            (
                "alice",
                Change::Biome {
                    name: "b",
                    owner: Some("bob"),
                },
                ChangeOthersBiome,
            ),
            ("alice", env(false, false), DeployUnprotected),
            ("alice", env(false, true), PromoteUnprotected),
            ("alice", env(true, false), RequestIntoProtected),
            ("alice", env(true, true), RequestIntoProtected),
        ];
        for (caller, change, action) in table {
            assert_eq!(action_for(caller, change), action, "{caller} {change:?}");
        }
    }

    #[test]
    fn every_role_may_change_what_its_role_allows_and_is_told_whose_biome_it_is() {
        let others = Change::Biome {
            name: "b",
            owner: Some("bob"),
        };
        let own = Change::Biome {
            name: "b",
            owner: Some("u@x"),
        };
        let fresh = Change::Biome {
            name: "b",
            owner: None,
        };
        let deploy = Change::Environment {
            name: "dev",
            protected: false,
            promotion: false,
        };
        let promote = Change::Environment {
            name: "test",
            protected: false,
            promotion: true,
        };
        let request = Change::Environment {
            name: "prod",
            protected: true,
            promotion: true,
        };
        // (change, allowed for viewer, developer, deployer, approver, admin)
        let table = [
            (own, [false, true, true, false, true]),
            (fresh, [false, true, true, false, true]),
            (others, [false, false, true, false, true]),
            (deploy, [false, false, true, false, true]),
            (promote, [false, false, true, false, true]),
            (request, [false, false, true, false, true]),
        ];
        for (change, allowed) in table {
            for (role, allowed) in Role::ALL.into_iter().zip(allowed) {
                let principal = Principal::named("u@x", [role]);
                assert_eq!(
                    authorize_change(&principal, change).is_ok(),
                    allowed,
                    "{role:?} → {change:?}"
                );
            }
        }
        let refused =
            authorize_change(&Principal::named("u@x", [Role::Developer]), others).unwrap_err();
        assert_eq!(crate::error::kind_of(&refused), ErrorKind::Forbidden);
        let message = refused.to_string();
        assert!(message.contains("biome `b` is bob's"), "{message}");
        assert!(
            message.contains("needs the `deployer` role; your token has developer"),
            "{message}"
        );
    }
}
