//! What a pipeline does and which queued pipeline runs next — pure decisions, table-tested.
//!
//! A pipeline fetches, builds, deploys to the environment at the start of the promotion chain,
//! then promotes into every environment that `promote_from`s one already reached and asks for it
//! with `auto_promote = true`, in chain order (breadth first, by name among siblings).

use std::collections::BTreeMap;

use sandpit_domain::Name;
use sandpit_spec::Spec;
use sandpit_state::{NewStage, StageKind};

use crate::error::{failure, ErrorKind};

/// The environment pipelines deploy to: the one that promotes from no other. When several do,
/// the one others promote from; more than one such is ambiguous and refused.
pub fn first_environment(spec: &Spec) -> anyhow::Result<Name> {
    let roots: Vec<&Name> = spec
        .environments
        .values()
        .filter(|env| env.promote_from.is_none())
        .map(|env| &env.name)
        .collect();
    let promoted_from = |name: &Name| {
        spec.environments
            .values()
            .any(|env| env.promote_from.as_ref() == Some(name))
    };
    let starts: Vec<&Name> = roots.iter().copied().filter(|n| promoted_from(n)).collect();
    match (roots.as_slice(), starts.as_slice()) {
        ([only], _) | (_, [only]) => Ok((*only).clone()),
        _ => Err(failure(
            ErrorKind::InvalidInput,
            format!(
                "a pipeline deploys to the environment its promotions start from, and sandpit.toml has {}: {}\nhint: make the others `promote_from` it, so there is one place changes enter",
                if starts.is_empty() { "several that promote from nothing" } else { "several" },
                (if starts.is_empty() { &roots } else { &starts })
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The stages of a pipeline for `spec`: fetch, build, deploy to [`first_environment`], then the
/// automatic promotions.
pub fn stages(spec: &Spec) -> anyhow::Result<Vec<NewStage>> {
    let first = first_environment(spec)?;
    let mut stages = vec![
        NewStage {
            kind: StageKind::Fetch,
            env: None,
        },
        NewStage {
            kind: StageKind::Build,
            env: None,
        },
        NewStage {
            kind: StageKind::Deploy,
            env: Some(first.to_string()),
        },
    ];
    let mut reached = vec![first];
    let mut next = 0;
    while let Some(from) = reached.get(next).cloned() {
        next += 1;
        for env in spec.environments.values() {
            if env.auto_promote && env.promote_from.as_ref() == Some(&from) {
                stages.push(NewStage {
                    kind: StageKind::Promote,
                    env: Some(env.name.to_string()),
                });
                reached.push(env.name.clone());
            }
        }
    }
    Ok(stages)
}

/// A queued pipeline, as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    /// What a newer pipeline must share to supersede it ([`supersede_key`]); `None` for a
    /// pipeline of a named commit, which nothing supersedes.
    pub key: Option<String>,
}

/// Pipelines of one biome (up or down) supersede each other, else those of one branch.
pub fn supersede_key(biome: Option<&str>, branch: Option<&str>) -> Option<String> {
    match (biome, branch) {
        (Some(biome), _) => Some(format!("biome {biome}")),
        (None, Some(branch)) => Some(format!("branch {branch}")),
        (None, None) => None,
    }
}

/// The stages after the fetch that put a commit into `env` alone: a promotion from the
/// environment it `promote_from`s, or a build and a deploy when it promotes from none.
pub fn into_environment(spec: &Spec, env: &str) -> anyhow::Result<Vec<NewStage>> {
    let name = Name::parse(env).map_err(crate::error::name_refused)?;
    let Some(environment) = spec.environments.get(&name) else {
        return Err(failure(
            ErrorKind::InvalidInput,
            format!(
                "there is no environment `{name}`; sandpit.toml declares: {}",
                spec.environments
                    .keys()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    Ok(match environment.promote_from {
        Some(_) => vec![NewStage {
            kind: StageKind::Promote,
            env: Some(name.to_string()),
        }],
        None => vec![
            NewStage {
                kind: StageKind::Build,
                env: None,
            },
            NewStage {
                kind: StageKind::Deploy,
                env: Some(name.to_string()),
            },
        ],
    })
}

/// What to do with a project's queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueDecision {
    /// `(superseded, by)`: older queued pipelines of a branch that has a newer one queued.
    pub supersede: Vec<(i64, i64)>,
    /// The pipeline to start now: the oldest one left.
    pub run: Option<i64>,
}

/// Given a project's queued pipelines (any order), which are superseded and which runs next —
/// GitLab's "auto-cancel redundant pipelines": of several waiting pipelines of one branch only
/// the newest runs.
pub fn next_in_queue(queued: &[Queued]) -> QueueDecision {
    let mut ordered: Vec<&Queued> = queued.iter().collect();
    ordered.sort_by_key(|q| q.id);
    let mut newest_of_branch: BTreeMap<&str, i64> = BTreeMap::new();
    for q in &ordered {
        if let Some(key) = &q.key {
            newest_of_branch.insert(key, q.id);
        }
    }
    let mut decision = QueueDecision::default();
    for q in ordered {
        let newest = q.key.as_deref().and_then(|b| newest_of_branch.get(b));
        match newest {
            Some(&newest) if newest != q.id => decision.supersede.push((q.id, newest)),
            _ => {
                decision.run.get_or_insert(q.id);
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(environments: &str) -> Spec {
        let source = format!("[project]\nname = \"geo\"\n{environments}");
        sandpit_spec::parse(&source).unwrap_or_else(|d| panic!("{d}"))
    }

    fn labels(stages: &[NewStage]) -> Vec<String> {
        stages
            .iter()
            .map(|s| match &s.env {
                Some(env) => format!("{} {env}", s.kind.as_str()),
                None => s.kind.as_str().to_owned(),
            })
            .collect()
    }

    #[test]
    fn stages_follow_the_chain_as_far_as_auto_promote_asks() {
        // (environments, stages)
        let cases: &[(&str, &[&str])] = &[
            // No environment declared: the implied `dev`.
            ("", &["fetch", "build", "deploy dev"]),
            (
                "[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\n[environments.prod]\npromote_from = \"test\"\n",
                &["fetch", "build", "deploy dev"],
            ),
            (
                "[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\nauto_promote = true\n[environments.prod]\npromote_from = \"test\"\nauto_promote = true\nprotected = true\n",
                &["fetch", "build", "deploy dev", "promote test", "promote prod"],
            ),
            // A gap stops the chain: prod asks, but test (its source) is not promoted by itself.
            (
                "[environments.dev]\n[environments.test]\npromote_from = \"dev\"\n[environments.prod]\npromote_from = \"test\"\nauto_promote = true\n",
                &["fetch", "build", "deploy dev"],
            ),
            // Two environments fed from one: both, by name, before what they feed.
            (
                "[environments.dev]\n[environments.qa]\npromote_from = \"dev\"\nauto_promote = true\n[environments.perf]\npromote_from = \"dev\"\nauto_promote = true\n[environments.prod]\npromote_from = \"qa\"\nauto_promote = true\n",
                &["fetch", "build", "deploy dev", "promote perf", "promote qa", "promote prod"],
            ),
            // A standalone environment beside the chain is not where pipelines deploy.
            (
                "[environments.dev]\n[environments.sandbox]\n[environments.prod]\npromote_from = \"dev\"\nauto_promote = true\n",
                &["fetch", "build", "deploy dev", "promote prod"],
            ),
        ];
        for (environments, expected) in cases {
            let planned = stages(&spec(environments)).unwrap();
            assert_eq!(labels(&planned), *expected, "{environments}");
        }
    }

    #[test]
    fn pipelines_of_a_biome_supersede_each_other_whatever_their_branch() {
        let up = supersede_key(Some("mr-3"), Some("feature"));
        let down = supersede_key(Some("mr-3"), None);
        assert_eq!(up, down);
        assert_ne!(up, supersede_key(None, Some("feature")));
        assert_ne!(up, supersede_key(Some("mr-4"), Some("feature")));
        assert_eq!(supersede_key(None, None), None);
        // A biome named like a branch is still another key.
        assert_ne!(
            supersede_key(Some("main"), None),
            supersede_key(None, Some("main"))
        );
        let decision = next_in_queue(&[
            Queued {
                id: 1,
                key: up.clone(),
            },
            Queued {
                id: 2,
                key: supersede_key(None, Some("feature")),
            },
            Queued { id: 3, key: down },
        ]);
        assert_eq!(decision.supersede, vec![(1, 3)]);
        assert_eq!(decision.run, Some(2));
    }

    #[test]
    fn a_tag_goes_into_one_environment_by_promotion_or_by_deploy() {
        let spec = spec(
            "[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\n",
        );
        assert_eq!(
            labels(&into_environment(&spec, "test").unwrap()),
            ["promote test"]
        );
        assert_eq!(
            labels(&into_environment(&spec, "dev").unwrap()),
            ["build", "deploy dev"]
        );
        let missing = into_environment(&spec, "prod").unwrap_err().to_string();
        assert!(missing.contains("no environment `prod`"), "{missing}");
    }

    #[test]
    fn an_ambiguous_start_is_refused_naming_the_candidates() {
        for (environments, names) in [
            ("[environments.a]\n[environments.b]\n", "`a`, `b`"),
            (
                "[environments.a]\n[environments.b]\n[environments.x]\npromote_from = \"a\"\n[environments.y]\npromote_from = \"b\"\n",
                "`a`, `b`",
            ),
        ] {
            let error = stages(&spec(environments)).unwrap_err();
            assert_eq!(crate::error::kind_of(&error), ErrorKind::InvalidInput);
            let message = error.to_string();
            assert!(message.contains(names), "{message}");
            assert!(message.contains("hint:"), "{message}");
        }
    }

    #[test]
    fn only_the_newest_queued_pipeline_of_a_branch_runs() {
        let q = |id, key: Option<&str>| Queued {
            id,
            key: key.map(str::to_owned),
        };
        // (queue, superseded as (id, by), runs)
        type Case = (Vec<Queued>, Vec<(i64, i64)>, Option<i64>);
        let cases: Vec<Case> = vec![
            (vec![], vec![], None),
            (vec![q(1, Some("main"))], vec![], Some(1)),
            (
                vec![q(1, Some("main")), q(2, Some("main")), q(3, Some("main"))],
                vec![(1, 3), (2, 3)],
                Some(3),
            ),
            // Other branches and named commits keep their place in the queue.
            (
                vec![
                    q(4, Some("main")),
                    q(2, Some("feature")),
                    q(3, None),
                    q(5, Some("main")),
                ],
                vec![(4, 5)],
                Some(2),
            ),
            (vec![q(7, None), q(8, None)], vec![], Some(7)),
        ];
        for (queue, supersede, run) in cases {
            let decision = next_in_queue(&queue);
            assert_eq!(decision, QueueDecision { supersede, run }, "{queue:?}");
        }
    }
}
