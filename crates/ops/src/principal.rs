//! Who is asking, and what they may do: the identity recorded as a deployment's requester or
//! approver, and its roles. The CLI hands one in for the local user (every role: it is their
//! machine); a server makes one per request from a token.

use std::collections::BTreeSet;

/// What a principal may do; each role includes what the ones before it allow, except that
/// approving is its own (a deployer does not approve, an approver does not deploy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every read.
    Viewer,
    /// `up`, `down`, `restart` and `config` of the biomes they own, and every read.
    Developer,
    /// `deploy` and `promote` into unprotected environments, requests into protected ones.
    Deployer,
    /// `approve` and `reject`.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Developer,
        Role::Deployer,
        Role::Approver,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// The role named `raw`, or what the names are.
    pub fn parse(raw: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "`{}` is not a role; the roles are {}",
                    raw.trim(),
                    names.join(", ")
                )
            })
    }
}

/// Who a principal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A name given for them (`SANDPIT_USER`, or a token's user).
    Named(String),
    /// The local user, known by the project repository's git `user.email`, asked when needed.
    LocalGitUser,
}

/// Who is asking, with their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub identity: Identity,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// The user running the CLI on their own machine: named by `user` (`SANDPIT_USER`) when
    /// given, else by git; with every role.
    pub fn local(user: Option<&str>) -> Principal {
        let identity = match user.map(str::trim).filter(|u| !u.is_empty()) {
            Some(user) => Identity::Named(user.to_owned()),
            None => Identity::LocalGitUser,
        };
        Principal {
            identity,
            roles: Role::ALL.into_iter().collect(),
        }
    }

    /// A named principal with exactly `roles` (a server's token holder).
    pub fn named(name: &str, roles: impl IntoIterator<Item = Role>) -> Principal {
        Principal {
            identity: Identity::Named(name.to_owned()),
            roles: roles.into_iter().collect(),
        }
    }

    /// Whether the principal may do what `role` allows: holding it, holding `admin`, or (for
    /// reads and biome work) holding a role that includes it.
    pub fn may(&self, role: Role) -> bool {
        self.roles.iter().any(|held| includes(*held, role))
    }
}

/// Whether holding `held` allows what `wanted` allows.
fn includes(held: Role, wanted: Role) -> bool {
    match (held, wanted) {
        (Role::Admin, _) => true,
        (held, wanted) if held == wanted => true,
        // Everyone reads; developers and deployers also work on biomes.
        (_, Role::Viewer) => true,
        (Role::Deployer, Role::Developer) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    #[test]
    fn roles_include_what_they_should_and_nothing_else() {
        // (held, wanted, allowed)
        let table = [
            (Viewer, Viewer, true),
            (Viewer, Developer, false),
            (Developer, Viewer, true),
            (Developer, Developer, true),
            (Developer, Deployer, false),
            (Deployer, Developer, true),
            (Deployer, Deployer, true),
            (Deployer, Approver, false),
            (Approver, Viewer, true),
            (Approver, Approver, true),
            (Approver, Deployer, false),
            (Approver, Developer, false),
            (Admin, Approver, true),
            (Admin, Deployer, true),
            (Admin, Admin, true),
            (Deployer, Admin, false),
        ];
        for (held, wanted, allowed) in table {
            let principal = Principal::named("u@x", [held]);
            assert_eq!(principal.may(wanted), allowed, "{held:?} → {wanted:?}");
        }
    }

    #[test]
    fn the_local_user_has_every_role_and_is_named_by_sandpit_user_or_git() {
        let named = Principal::local(Some(" alice@x "));
        assert_eq!(named.identity, Identity::Named("alice@x".into()));
        assert!(Role::ALL.iter().all(|r| named.may(*r)));
        assert_eq!(
            Principal::local(Some("  ")).identity,
            Identity::LocalGitUser
        );
        assert_eq!(Principal::local(None).identity, Identity::LocalGitUser);
    }

    #[test]
    fn roles_parse_by_name_and_a_typo_lists_them() {
        assert_eq!(Role::parse("approver"), Ok(Approver));
        let error = Role::parse("aprover").unwrap_err();
        assert!(error.contains("`aprover` is not a role"), "{error}");
        assert!(
            error.contains("viewer, developer, deployer, approver, admin"),
            "{error}"
        );
    }
}
