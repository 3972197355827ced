//! `sandpit env [BIOME] [--component C]`: the environment a component of a biome is started with,
//! as the daemon builds it (the same function builds a started process's), secrets included.

use std::collections::{BTreeMap, BTreeSet};

use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;

use crate::daemon_connection;
use crate::Context;

/// What one component of a biome gets: every variable, and which of them are secrets.
#[derive(Clone)]
pub struct BiomeEnv {
    /// The biome's status when the environment was asked for (its database, its components).
    pub status: BiomeStatus,
    /// The component whose environment this is (the default one when none was named).
    pub component: Name,
    /// Every variable with its value, secrets included.
    pub vars: BTreeMap<String, String>,
    /// The names of the variables whose values are secrets (`DATABASE_URL`, …).
    pub secret_names: BTreeSet<String>,
    /// Where a command "in" the component runs, when not in the user's checkout: a terraform
    /// component's working directory (its module as deployed, initialised against its state).
    pub dir: Option<std::path::PathBuf>,
}

impl BiomeEnv {
    /// Every variable, sorted, with its value, or `None` for a secret unless `show_secrets`.
    pub fn shown(&self, show_secrets: bool) -> BTreeMap<&str, Option<&str>> {
        self.vars
            .iter()
            .map(|(name, value)| {
                let hidden = !show_secrets && self.secret_names.contains(name);
                (name.as_str(), (!hidden).then_some(value.as_str()))
            })
            .collect()
    }
}

/// Shows the names of secrets, never their values.
impl std::fmt::Debug for BiomeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiomeEnv")
            .field("biome", &self.status.biome)
            .field("component", &self.component)
            .field("vars", &self.shown(false))
            .finish()
    }
}

/// The environment of `component` (default: the first service in start order, else the first
/// job) of the biome `biome` names ([`crate::target::resolve`]; an unknown one gets a
/// did-you-mean). A read: it never starts the daemon, and a biome that does not run has nothing
/// to give.
pub async fn environment(
    context: &Context,
    biome: Option<&str>,
    component: Option<&str>,
) -> anyhow::Result<BiomeEnv> {
    let status = crate::status::status(context, biome).await?;
    let component = component
        .map(|raw| Name::parse(raw).map_err(crate::error::name_refused))
        .transpose()?;
    // A terraform component is no process of the daemon's: its environment is terraform's,
    // pointed at the biome's state in sandpit's backend.
    if let Some(name) = &component {
        let spec = context.source.spec()?;
        if spec
            .components
            .get(name)
            .is_some_and(|c| c.kind == sandpit_domain::ComponentKind::Terraform)
        {
            let found = crate::terraform::environment_of(
                context,
                &status.project,
                &status.env,
                &status.biome,
                name,
            )
            .await?;
            return Ok(BiomeEnv {
                status,
                component: name.clone(),
                vars: found.vars,
                secret_names: found.secret_names,
                dir: Some(found.dir),
            });
        }
    }
    let client = daemon_connection::running(context).await?;
    let env = daemon_connection::answer(
        client
            .env(status.project.clone(), status.biome.clone(), component)
            .await,
    )?;
    Ok(BiomeEnv {
        status,
        component: env.component,
        vars: env.vars,
        secret_names: env.secret_names,
        dir: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_unless_asked_for() {
        let status: BiomeStatus = serde_json::from_value(serde_json::json!({
            "project": "geo", "biome": "alice", "env": "dev", "sha": "0123456789ab",
            "state": "healthy", "components": [], "data_dir": "/data", "database": null
        }))
        .unwrap();
        let env = BiomeEnv {
            status,
            component: Name::parse("web").unwrap(),
            vars: BTreeMap::from([
                ("PORT".to_owned(), "41000".to_owned()),
                (
                    "DATABASE_URL".to_owned(),
                    "postgres://a:hunter2@h/db".to_owned(),
                ),
            ]),
            secret_names: BTreeSet::from(["DATABASE_URL".to_owned()]),
            dir: None,
        };
        // (show_secrets, DATABASE_URL shown as)
        for (show, expected) in [(false, None), (true, Some("postgres://a:hunter2@h/db"))] {
            let shown = env.shown(show);
            assert_eq!(
                shown.keys().copied().collect::<Vec<_>>(),
                ["DATABASE_URL", "PORT"]
            );
            assert_eq!(shown["DATABASE_URL"], expected);
            assert_eq!(shown["PORT"], Some("41000"));
        }
        let printed = format!("{env:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
