//! `sandpit tf state|unlock TARGET COMPONENT`: a Terraform component's state as the home's
//! backend (`sandpit_tfstate`) keeps it, and clearing a lock its holder left behind. Also what
//! ops gives `terraform` to reach that backend ([`backend_variables`]).

use sandpit_domain::Name;
use sandpit_tfstate::{LockInfo, StateKey, StateVersion};

use crate::target::Target;
use crate::Context;

/// A state's kept versions (oldest first) and its lock.
#[derive(Debug, Clone)]
pub struct StateReport {
    pub key: StateKey,
    pub versions: Vec<StateVersion>,
    pub lock: Option<LockInfo>,
}

/// What `unlock` cleared (`None`: there was no lock).
#[derive(Debug, Clone)]
pub struct UnlockReport {
    pub key: StateKey,
    pub cleared: Option<LockInfo>,
}

/// The state `raw_target`'s `component` has.
pub fn state(context: &Context, raw_target: &str, component: &str) -> anyhow::Result<StateReport> {
    let key = state_key(context, raw_target, component)?;
    let store = sandpit_tfstate::home_store(&context.home);
    Ok(StateReport {
        versions: store.versions(&key)?,
        lock: store.lock(&key)?,
        key,
    })
}

/// Clears the lock on `raw_target`'s `component`'s state, whoever holds it.
pub fn unlock(
    context: &Context,
    raw_target: &str,
    component: &str,
) -> anyhow::Result<UnlockReport> {
    let key = state_key(context, raw_target, component)?;
    let cleared = sandpit_tfstate::home_store(&context.home).force_unlock(&key)?;
    Ok(UnlockReport { key, cleared })
}

/// The key of `component`'s state in the target `raw_target` names (`ENV`, `ENV/BIOME`,
/// `BIOME`), for the project of the current directory. A biome must be known: from the
/// deployment history or by a state it already has.
pub fn state_key(context: &Context, raw_target: &str, component: &str) -> anyhow::Result<StateKey> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let component = Name::parse(component).map_err(|error| {
        crate::error::failure(
            crate::error::ErrorKind::InvalidInput,
            format!(
                "the component `{component}` {}\nhint: {}",
                error.problem(),
                error.hint()
            ),
        )
    })?;
    let modules: Vec<&str> = spec
        .terraform_components()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if !modules.contains(&component.as_str()) {
        let hint =
            sandpit_domain::suggestion::did_you_mean(component.as_str(), modules.iter().copied())
                .unwrap_or_else(|| {
                    if modules.is_empty() {
                        "sandpit.toml declares no `[terraform.<name>]` component".to_owned()
                    } else {
                        format!(
                            "its terraform components are {}",
                            modules
                                .iter()
                                .map(|m| format!("`{m}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                });
        crate::fail!(
            NotFound,
            "`{component}` is not a terraform component of `{project}`\nhint: {hint}"
        );
    }
    let target = crate::target::resolve(context, &spec, Some(raw_target))?;
    let environments: Vec<Name> = spec.environments.keys().cloned().collect();
    let mut known: Vec<(Name, Name)> = crate::deployment::state_store(context)?
        .history(project.as_str(), None)?
        .into_iter()
        .filter_map(|d| Some((Name::parse(&d.env).ok()?, Name::parse(&d.biome?).ok()?)))
        .collect();
    known.extend(
        sandpit_tfstate::home_store(&context.home)
            .keys_of(&project)?
            .into_iter()
            .filter_map(|key| Some((key.environment, key.biome?))),
    );
    let (environment, biome) = locate(&environments, &known, &target)
        .map_err(|not_found| crate::error::failure(crate::error::ErrorKind::NotFound, not_found))?;
    Ok(StateKey {
        project,
        environment,
        biome,
        component,
    })
}

/// Where a target is: its environment and biome (`None`: the base), among the `environments`
/// of the spec and the `known` (environment, biome) pairs; what to say when it is nowhere.
pub fn locate(
    environments: &[Name],
    known: &[(Name, Name)],
    target: &Target,
) -> Result<(Name, Option<Name>), String> {
    let biomes_named = |name: &Name| -> Vec<&Name> {
        let mut envs: Vec<&Name> = known
            .iter()
            .filter(|(_, biome)| biome == name)
            .map(|(env, _)| env)
            .collect();
        envs.sort();
        envs.dedup();
        envs
    };
    let suggestion = |written: &Name, with_environments: bool| {
        let mut candidates: Vec<&str> = known.iter().map(|(_, biome)| biome.as_str()).collect();
        if with_environments {
            candidates.extend(environments.iter().map(Name::as_str));
        }
        sandpit_domain::suggestion::did_you_mean(written.as_str(), candidates)
            .map(|s| format!("\nhint: {s}"))
            .unwrap_or_else(|| "\nhint: `sandpit ls` lists the biomes".to_owned())
    };
    match &target.env {
        Some(env) => {
            if !environments.contains(env) {
                let hint = sandpit_domain::suggestion::did_you_mean(
                    env.as_str(),
                    environments.iter().map(Name::as_str),
                )
                .map(|s| format!("\nhint: {s}"))
                .unwrap_or_default();
                return Err(format!("there is no environment `{env}`{hint}"));
            }
            let envs = biomes_named(&target.name);
            if envs.contains(&env) {
                return Ok((env.clone(), Some(target.name.clone())));
            }
            match envs.first() {
                Some(actual) => Err(format!(
                    "`{}` lives in environment `{actual}`, not `{env}`",
                    target.name
                )),
                None => Err(format!(
                    "there is no biome `{}` in environment `{env}`{}",
                    target.name,
                    suggestion(&target.name, false)
                )),
            }
        }
        None if environments.contains(&target.name) => Ok((target.name.clone(), None)),
        None => match biomes_named(&target.name).first() {
            Some(env) => Ok(((*env).clone(), Some(target.name.clone()))),
            None => Err(format!(
                "there is no environment or biome `{}`{}",
                target.name,
                suggestion(&target.name, true)
            )),
        },
    }
}

/// The variables that point `terraform` at `key`'s state on this home's backend (with the
/// `terraform { backend "http" {} }` override file in the module): the address of the daemon's
/// backend and the state's credential, made on first use. Fails while no daemon has hosted the
/// backend yet: start the daemon first.
pub fn backend_variables(
    context: &Context,
    key: &StateKey,
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(addr) = sandpit_tfstate::endpoint(&context.home)? else {
        crate::fail!(
            Unavailable,
            "the terraform state backend has not been started for this SANDPIT_HOME\nhint: `sandpit daemon start` starts it"
        );
    };
    let credential = sandpit_tfstate::home_store(&context.home).credential(key)?;
    let url = key.url(&format!("http://{addr}"));
    Ok(vec![
        ("TF_HTTP_ADDRESS".to_owned(), url.clone()),
        ("TF_HTTP_LOCK_ADDRESS".to_owned(), url.clone()),
        ("TF_HTTP_UNLOCK_ADDRESS".to_owned(), url),
        ("TF_HTTP_USERNAME".to_owned(), key.path()),
        ("TF_HTTP_PASSWORD".to_owned(), credential),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[test]
    fn targets_are_located_among_environments_and_known_biomes() {
        let environments = [name("dev"), name("prod")];
        let known = [(name("dev"), name("alice")), (name("dev"), name("bob"))];
        /// (target, Ok((env, biome)) or a part of the refusal)
        type Case<'a> = (&'a str, Result<(&'a str, Option<&'a str>), &'a str>);
        let cases: &[Case] = &[
            ("dev", Ok(("dev", None))),
            ("prod", Ok(("prod", None))),
            ("dev/alice", Ok(("dev", Some("alice")))),
            ("alice", Ok(("dev", Some("alice")))),
            (
                "alise",
                Err("there is no environment or biome `alise`\nhint: did you mean `alice`?"),
            ),
            ("prdo", Err("did you mean `prod`?")),
            (
                "prod/alice",
                Err("`alice` lives in environment `dev`, not `prod`"),
            ),
            (
                "dev/alise",
                Err("there is no biome `alise` in environment `dev`\nhint: did you mean `alice`?"),
            ),
            ("stage/alice", Err("there is no environment `stage`")),
            ("zzzzzz", Err("`sandpit ls` lists the biomes")),
        ];
        for (raw, expected) in cases {
            let target = Target::parse(raw).unwrap();
            let got = locate(&environments, &known, &target);
            match (got, expected) {
                (Ok((env, biome)), Ok((e, b))) => {
                    assert_eq!(
                        (env.as_str(), biome.as_ref().map(Name::as_str)),
                        (*e, *b),
                        "{raw}"
                    )
                }
                (Err(message), Err(part)) => assert!(message.contains(part), "{raw}: {message}"),
                (got, want) => panic!("{raw}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn terraform_is_pointed_at_the_daemons_backend_with_the_states_own_credential() {
        let home = tempfile::tempdir().unwrap();
        let context = Context::for_home(home.path());
        let key = StateKey {
            project: name("geo"),
            environment: name("dev"),
            biome: Some(name("alice")),
            component: name("network"),
        };
        let refused = backend_variables(&context, &key).unwrap_err();
        assert_eq!(
            crate::error::kind_of(&refused),
            crate::error::ErrorKind::Unavailable
        );
        assert!(
            refused.to_string().contains("sandpit daemon start"),
            "{refused}"
        );

        std::fs::create_dir_all(home.path().join("runtime")).unwrap();
        std::fs::write(
            home.path().join(sandpit_tfstate::ENDPOINT_FILE),
            r#"{"port":12345}"#,
        )
        .unwrap();
        let variables: std::collections::BTreeMap<String, String> =
            backend_variables(&context, &key)
                .unwrap()
                .into_iter()
                .collect();
        let url = "http://127.0.0.1:12345/v1/states/geo/dev/alice/network";
        assert_eq!(variables["TF_HTTP_ADDRESS"], url);
        assert_eq!(variables["TF_HTTP_LOCK_ADDRESS"], url);
        assert_eq!(variables["TF_HTTP_UNLOCK_ADDRESS"], url);
        assert_eq!(variables["TF_HTTP_USERNAME"], "geo/dev/alice/network");
        let store = sandpit_tfstate::home_store(home.path());
        assert!(store
            .check_credential(&key, &variables["TF_HTTP_PASSWORD"])
            .unwrap());
    }
}
