//! What a saved plan would do, read from `terraform show -json PLAN` (pure): the counts
//! terraform prints (`N to add, N to change, N to destroy`) and each resource's action, shown
//! to whoever approves the plan.

use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many addresses are shown by [`PlanSummary`]'s one-line `Display`.
const ADDRESSES_SHOWN: usize = 10;

/// The changes a plan makes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Objects created, replacements included (as terraform counts them).
    pub add: u32,
    /// Objects updated in place.
    pub change: u32,
    /// Objects destroyed, replacements included.
    pub destroy: u32,
    /// Every resource that changes, in the plan's order; no-ops and data reads left out.
    pub resources: Vec<ResourceChange>,
}

/// One resource's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `terraform_data.a`, `module.net.aws_vpc.main[0]`.
    pub address: String,
    pub action: Action,
}

/// What happens to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Destroyed and created again (in either order).
    Replace,
    /// Removed from the state while the object itself is kept (a `removed` block with
    /// `destroy = false`): not counted as a destroy, as terraform does not count it.
    Forget,
}

impl Action {
    /// Terraform's symbol for the action in plans.
    fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
            Action::Forget => "forget",
        }
    }
}

impl PlanSummary {
    /// Whether applying the plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Reads `terraform show -json PLAN`'s document. `Err` says what was not as expected.
    pub fn from_show_json(document: &str) -> Result<PlanSummary, String> {
        let plan: ShowJson =
            serde_json::from_str(document).map_err(|e| format!("not a plan document: {e}"))?;
        let mut summary = PlanSummary::default();
        for change in plan.resource_changes {
            let actions: Vec<&str> = change.change.actions.iter().map(String::as_str).collect();
            let action = match actions.as_slice() {
                ["no-op"] | ["read"] => continue,
                ["create"] => Action::Create,
                ["update"] => Action::Update,
                ["delete"] => Action::Delete,
                ["delete", "create"] | ["create", "delete"] => Action::Replace,
                ["forget"] => Action::Forget,
                other => {
                    return Err(format!(
                        "resource `{}` has actions {other:?}, which this version of sandpit does not know",
                        change.address
                    ))
                }
            };
            match action {
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::Forget => {}
            }
            summary.resources.push(ResourceChange {
                address: change.address,
                action,
            });
        }
        Ok(summary)
    }
}

/// `2 to add, 0 to change, 1 to destroy: + terraform_data.a, - terraform_data.b` — one line,
/// the first [`ADDRESSES_SHOWN`] addresses and how many more.
impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        )?;
        let forget = self
            .resources
            .iter()
            .filter(|r| r.action == Action::Forget)
            .count();
        if forget > 0 {
            write!(f, ", {forget} to forget")?;
        }
        for (n, resource) in self.resources.iter().take(ADDRESSES_SHOWN).enumerate() {
            let separator = if n == 0 { ": " } else { ", " };
            write!(
                f,
                "{separator}{} {}",
                resource.action.symbol(),
                resource.address
            )?;
        }
        if self.resources.len() > ADDRESSES_SHOWN {
            write!(f, " and {} more", self.resources.len() - ADDRESSES_SHOWN)?;
        }
        Ok(())
    }
}

/// The part of `show -json`'s document read here.
#[derive(Deserialize)]
struct ShowJson {
    #[serde(default)]
    resource_changes: Vec<ShowResourceChange>,
}

#[derive(Deserialize)]
struct ShowResourceChange {
    address: String,
    change: ShowChange,
}

#[derive(Deserialize)]
struct ShowChange {
    actions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `resource_changes` entry as terraform 1.11 writes it (captured, values trimmed).
    fn entry(address: &str, actions: &[&str]) -> String {
        let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            r#"{{"address":"{address}","mode":"managed","type":"terraform_data","name":"x","change":{{"actions":[{}],"before":null,"after":{{"input":"abc-alice"}},"after_unknown":{{"id":true}},"before_sensitive":false,"after_sensitive":{{}}}}}}"#,
            actions.join(",")
        )
    }

    fn document(entries: &[String]) -> String {
        format!(
            r#"{{"format_version":"1.2","terraform_version":"1.11.4","variables":{{"sha":{{"value":"abc"}}}},"resource_changes":[{}],"applyable":true,"complete":true,"errored":false}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn actions_are_counted_as_terraform_counts_them() {
        use Action::*;
        /// Resources with their `actions`, the counts (add, change, destroy), the changes.
        type Case<'a> = (
            &'a [(&'a str, &'a [&'a str])],
            (u32, u32, u32),
            &'a [(&'a str, Action)],
        );
        let cases: &[Case] = &[
            // The first plan of a module (captured: two terraform_data resources).
            (
                &[
                    ("terraform_data.a", &["create"]),
                    ("terraform_data.b", &["create"]),
                ],
                (2, 0, 0),
                &[("terraform_data.a", Create), ("terraform_data.b", Create)],
            ),
            // After changing a variable: `input` updates in place, `triggers_replace`
            // replaces (captured; terraform printed "1 to add, 1 to change, 1 to destroy").
            (
                &[
                    ("terraform_data.a", &["update"]),
                    ("terraform_data.b", &["delete", "create"]),
                ],
                (1, 1, 1),
                &[("terraform_data.a", Update), ("terraform_data.b", Replace)],
            ),
            // create_before_destroy replaces the other way round.
            (
                &[("terraform_data.c", &["create", "delete"])],
                (1, 0, 1),
                &[("terraform_data.c", Replace)],
            ),
            // No-ops and data reads change nothing.
            (
                &[
                    ("terraform_data.a", &["no-op"]),
                    ("data.terraform_remote_state.x", &["read"]),
                ],
                (0, 0, 0),
                &[],
            ),
            // A `removed { lifecycle { destroy = false } }` block (captured).
            (
                &[("terraform_data.b", &["forget"])],
                (0, 0, 0),
                &[("terraform_data.b", Forget)],
            ),
            // `plan -destroy` (captured).
            (
                &[
                    ("terraform_data.a", &["delete"]),
                    ("module.m.terraform_data.b[0]", &["delete"]),
                ],
                (0, 0, 2),
                &[
                    ("terraform_data.a", Delete),
                    ("module.m.terraform_data.b[0]", Delete),
                ],
            ),
            (&[], (0, 0, 0), &[]),
        ];
        for (entries, (add, change, destroy), resources) in cases {
            let json = document(
                &entries
                    .iter()
                    .map(|(address, actions)| entry(address, actions))
                    .collect::<Vec<_>>(),
            );
            let summary = PlanSummary::from_show_json(&json).unwrap();
            assert_eq!(
                (summary.add, summary.change, summary.destroy),
                (*add, *change, *destroy),
                "{json}"
            );
            let got: Vec<(&str, Action)> = summary
                .resources
                .iter()
                .map(|r| (r.address.as_str(), r.action))
                .collect();
            assert_eq!(&got, resources, "{json}");
        }
    }

    #[test]
    fn a_plan_without_resource_changes_is_empty() {
        // Terraform leaves the key out of a plan of a module without resources.
        let summary = PlanSummary::from_show_json(
            r#"{"format_version":"1.2","terraform_version":"1.11.4","planned_values":{"outputs":{}},"applyable":false,"complete":true,"errored":false}"#,
        )
        .unwrap();
        assert!(summary.is_empty());
        assert_eq!(summary.to_string(), "0 to add, 0 to change, 0 to destroy");
    }

    #[test]
    fn unknown_documents_and_actions_are_refused_saying_which() {
        let cases = [
            (
                "Error: Failed to read the given file as a state or plan file",
                "not a plan document",
            ),
            (
                r#"{"resource_changes":[{"address":"a.b"}]}"#,
                "not a plan document",
            ),
            (
                &document(&[entry("terraform_data.x", &["teleport"])]),
                "`terraform_data.x` has actions [\"teleport\"]",
            ),
            (
                &document(&[entry("terraform_data.x", &[])]),
                "has actions []",
            ),
        ];
        for (json, expected) in cases {
            let error = PlanSummary::from_show_json(json).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn the_summary_is_one_short_line() {
        let change = |address: &str, action| ResourceChange {
            address: address.to_owned(),
            action,
        };
        let summary = PlanSummary {
            add: 2,
            change: 0,
            destroy: 1,
            resources: vec![
                change("terraform_data.a", Action::Create),
                change("terraform_data.b", Action::Delete),
            ],
        };
        assert_eq!(
            summary.to_string(),
            "2 to add, 0 to change, 1 to destroy: + terraform_data.a, - terraform_data.b"
        );
        let summary = PlanSummary {
            add: 1,
            change: 1,
            destroy: 1,
            resources: vec![
                change("terraform_data.a", Action::Update),
                change("terraform_data.b", Action::Replace),
                change("terraform_data.c", Action::Forget),
            ],
        };
        assert_eq!(
            summary.to_string(),
            "1 to add, 1 to change, 1 to destroy, 1 to forget: ~ terraform_data.a, -/+ terraform_data.b, forget terraform_data.c"
        );
        let many = PlanSummary {
            add: 12,
            change: 0,
            destroy: 0,
            resources: (0..12)
                .map(|n| change(&format!("terraform_data.r[{n}]"), Action::Create))
                .collect(),
        };
        let line = many.to_string();
        assert!(line.ends_with("+ terraform_data.r[9] and 2 more"), "{line}");
        assert!(!line.contains('\n'));
    }
}
