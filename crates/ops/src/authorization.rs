//! Which role each verb of the control plane's API needs: one pure table, the only place the
//! server asks (`required_role`), and the refusal that names the role needed and the ones held.

use crate::error::{failure, ErrorKind};
use crate::principal::{Principal, Role};

/// Everything a caller of the API can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Any read: whoami, projects, biomes, status, history, trace, artifacts, logs.
    Read,
    /// `up`, `down`, `restart` or `config` of a biome the caller owns.
    ChangeOwnBiome,
    /// `up` or `down` of a biome someone else owns.
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
        Action::DeployUnprotected
        | Action::PromoteUnprotected
        | Action::RequestIntoProtected
        | Action::RunPipeline => Role::Deployer,
        Action::Approve | Action::Reject => Role::Approver,
        Action::ChangeOthersBiome | Action::ManageTokens | Action::ManageProjects => Role::Admin,
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

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// Every role × every action: allowed or not. Columns: viewer, developer, deployer,
    /// approver, admin.
    const MATRIX: [(Action, [bool; 5]); 11] = [
        (Read, [true, true, true, true, true]),
        (ChangeOwnBiome, [false, true, true, false, true]),
        (ChangeOthersBiome, [false, false, false, false, true]),
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
}
