//! `sandpit promote FROM TO`: the exact digests running in FROM's base, copied into TO's store,
//! verified, and deployed — never rebuilt.

use sandpit_domain::Name;
use sandpit_spec::Spec;
use sandpit_state::{DeployedComponent, DeploymentKind, NewDeployment};

use crate::daemon_connection;
use crate::deploy::{environment, run_unless_pending, DeployOutcome};
use crate::deployment::{self, requester};
use crate::Context;

pub async fn promote(
    context: &Context,
    from: &str,
    to: &str,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<DeployOutcome> {
    let spec = context.source.spec()?;
    let from = environment(&spec, from)?;
    let to = environment(&spec, to)?;
    if let Some(refusal) = refusal(&spec, &from, &to) {
        crate::fail!(InvalidInput, "{refusal}");
    }
    let project = spec.project.name.clone();
    let asked = match daemon_connection::if_running(context).await {
        Some(client) => Some(client.status(project.clone(), from.clone()).await),
        None => None,
    };
    let status = match asked {
        Some(Ok(status)) => status,
        Some(Err(error @ sandpit_runtime::ClientError::UnexpectedAnswer { .. })) => {
            return Err(daemon_connection::into_user_error(error))
        }
        None => crate::fail!(
            Unavailable,
            "the sandpit daemon is not running, so nothing runs in `{from}` to promote\nhint: `sandpit daemon start` brings `{from}` back; then promote again"
        ),
        Some(Err(_)) => {
            crate::fail!(Conflict, "nothing is deployed in `{from}`\nhint: `sandpit deploy {from}` first")
        }
    };
    if status.state != "healthy" {
        crate::fail!(
            Conflict,
            "`{from}` is {}, not healthy: only what works is promoted\nhint: `sandpit status {from}` shows what is wrong",
            status.state
        );
    }
    let environment = &spec.environments[&to];
    let approvals_required = environment.approvals_required();
    let mut state = deployment::state_store(context)?;
    // What is recorded as running in FROM also covers models, which the daemon does not run.
    let recorded_source = state.current(project.as_str(), from.as_str())?;
    let mut components: Vec<DeployedComponent> = status
        .components
        .iter()
        .map(|c| DeployedComponent {
            name: c.name.to_string(),
            artifact: c.artifact.clone(),
            digest: c.digest.to_string(),
            borrowed_from: None,
        })
        .collect();
    if let Some(source) = &recorded_source {
        for component in &source.components {
            if !components.iter().any(|c| c.name == component.name) {
                components.push(component.clone());
            }
        }
    }
    let recorded = state.create(&NewDeployment {
        project: project.to_string(),
        target: to.to_string(),
        env: to.to_string(),
        biome: None,
        sha: status.sha.clone(),
        components,
        requested_by: requester(context)?,
        approvals_required,
        kind: DeploymentKind::Promote {
            from: from.to_string(),
        },
        rollback_of: None,
        restores: None,
    })?;
    drop(state);
    run_unless_pending(context, recorded, on_event).await
}

/// Why `promote FROM TO` is refused by the promotion chain, with a hint that leads somewhere
/// valid: never a `promote_from` that would make a cycle (the spec refuses those), never a
/// command the chain refuses too. `None` when TO promotes from FROM.
fn refusal(spec: &Spec, from: &Name, to: &Name) -> Option<String> {
    if from == to {
        return Some(format!(
            "cannot promote `{from}` into itself\nhint: `sandpit promote FROM TO` copies what runs in FROM into the next environment, TO"
        ));
    }
    let source_of = |env: &Name| {
        spec.environments
            .get(env)
            .and_then(|e| e.promote_from.clone())
    };
    match source_of(to) {
        Some(source) if source == *from => None,
        Some(source) => Some(format!(
            "`{to}` takes promotions from `{source}`, not from `{from}`\nhint: `sandpit promote {source} {to}`"
        )),
        None => {
            // Where FROM's artifacts come from, FROM first: `to` among them means the artifacts
            // already flow from TO to FROM, and `promote_from = FROM` under TO would close a cycle.
            let mut upstream = vec![from.clone()];
            while let Some(source) = source_of(upstream.last().expect("never empty")) {
                if upstream.contains(&source) {
                    break; // a cycle the spec would have refused; stop rather than loop
                }
                upstream.push(source);
            }
            if let Some(at) = upstream.iter().position(|e| e == to) {
                let flow: Vec<&str> = upstream[..=at].iter().rev().map(Name::as_str).collect();
                return Some(format!(
                    "`{to}` takes no promotions, and promotions flow the other way: `{}`\nhint: `sandpit deploy {to}` deploys a commit to `{to}`; `sandpit promote {} {}` promotes along the chain",
                    flow.join(" -> "),
                    flow[0],
                    flow[1],
                ));
            }
            Some(format!(
                "`{to}` takes no promotions\nhint: set `promote_from = \"{from}\"` under [environments.{to}] in sandpit.toml"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(environments: &str) -> Spec {
        let source = format!(
            "[project]\nname = \"p\"\n\n{environments}\n[jobs.noop]\npath = \".\"\nrun = \"true\"\n"
        );
        sandpit_spec::parse(&source).unwrap_or_else(|e| panic!("{e}\n{source}"))
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    /// Applies a `set promote_from = "X" under [environments.Y]` hint to the spec's source and
    /// checks that the result validates.
    fn suggestion_validates(environments: &str, refusal: &str) {
        let Some(rest) = refusal.split("set `promote_from = \"").nth(1) else {
            return;
        };
        let (source, rest) = rest.split_once('"').unwrap();
        let target = rest
            .split("[environments.")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap();
        let header = format!("[environments.{target}]\n");
        assert!(environments.contains(&header), "{refusal}");
        let changed =
            environments.replace(&header, &format!("{header}promote_from = \"{source}\"\n"));
        let text = format!(
            "[project]\nname = \"p\"\n\n{changed}\n[jobs.noop]\npath = \".\"\nrun = \"true\"\n"
        );
        if let Err(error) = sandpit_spec::parse(&text) {
            panic!("the hint `{refusal}` leads to an invalid sandpit.toml:\n{error}\n{text}");
        }
    }

    #[test]
    fn promotion_refusals_suggest_only_what_validates() {
        let chain = "[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\n[environments.prod]\npromote_from = \"test\"\n[environments.lab]\n";
        let spec = spec(chain);
        let check = |from: &str, to: &str, expect: Option<&[&str]>, refuse: &[&str]| {
            let got = refusal(&spec, &name(from), &name(to));
            match (expect, &got) {
                (None, None) => {}
                (Some(parts), Some(text)) => {
                    for part in parts {
                        assert!(text.contains(part), "{from} -> {to}: {text}");
                    }
                    for part in refuse {
                        assert!(!text.contains(part), "{from} -> {to}: {text}");
                    }
                    suggestion_validates(chain, text);
                }
                _ => panic!("{from} -> {to}: {got:?}"),
            }
        };
        check("dev", "test", None, &[]);
        check("test", "prod", None, &[]);
        // Backwards along the chain: no `promote_from` (it would be a cycle).
        check(
            "test",
            "dev",
            Some(&[
                "flow the other way: `dev -> test`",
                "sandpit deploy dev",
                "sandpit promote dev test",
            ]),
            &["promote_from"],
        );
        check(
            "prod",
            "dev",
            Some(&["`dev -> test -> prod`", "sandpit promote dev test"]),
            &["promote_from"],
        );
        // Skipping a step: the environment's own source.
        check(
            "dev",
            "prod",
            Some(&["from `test`, not from `dev`", "sandpit promote test prod"]),
            &[],
        );
        // Not in the chain at all: adding the key is valid.
        check(
            "prod",
            "lab",
            Some(&["set `promote_from = \"prod\"` under [environments.lab]"]),
            &[],
        );
        check(
            "lab",
            "dev",
            Some(&["set `promote_from = \"lab\"` under [environments.dev]"]),
            &[],
        );
        check("dev", "dev", Some(&["into itself"]), &["promote_from"]);
    }
}
