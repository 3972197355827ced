//! What sandpit reads from a Terraform state document (pure): the root module's outputs, which
//! of them are sensitive, and how many resource instances the state holds — so neither needs a
//! terraform process, and a state nobody applied through sandpit is read the same way.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One root-module output as the state records it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct StateOutput {
    pub value: serde_json::Value,
    #[serde(default)]
    pub sensitive: bool,
}

/// Sensitive values never show in `Debug`.
impl std::fmt::Debug for StateOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value: &dyn std::fmt::Debug = if self.sensitive {
            &"<sensitive>"
        } else {
            &self.value
        };
        f.debug_struct("StateOutput")
            .field("value", value)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    outputs: BTreeMap<String, StateOutput>,
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    instances: Vec<serde_json::Value>,
}

/// What a state holds, as far as sandpit cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSummary {
    pub outputs: BTreeMap<String, StateOutput>,
    /// Managed resource instances (data sources are read, not owned, so they do not count).
    pub resources: usize,
}

/// Reads a state document; `Err` says what was not as expected, never quoting it (it holds
/// values that may be secret).
pub fn summarise(document: &[u8]) -> Result<StateSummary, String> {
    let parsed: Document = serde_json::from_slice(document).map_err(|e| {
        format!(
            "the state is not a Terraform state document (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let resources = parsed
        .resources
        .iter()
        .filter(|r| r.mode != "data")
        .map(|r| r.instances.len())
        .sum();
    Ok(StateSummary {
        outputs: parsed.outputs,
        resources,
    })
}

/// The variable a dependant gets for `output` of terraform component `component`:
/// `SANDPIT_TF_<COMPONENT>_<OUTPUT>`, upper case, `-` as `_`.
pub fn variable_name(component: &str, output: &str) -> String {
    let upper = |text: &str| text.to_ascii_uppercase().replace('-', "_");
    format!("SANDPIT_TF_{}_{}", upper(component), upper(output))
}

/// An output's value as an environment variable's text: a string as it is, anything else
/// (numbers, booleans, lists, maps) as compact JSON.
pub fn variable_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{
      "version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "abc",
      "outputs": {
        "marker": {"value": "0123-alice", "type": "string"},
        "password": {"value": "s3cr3t", "type": "string", "sensitive": true},
        "ports": {"value": [1, 2], "type": ["list", "number"]}
      },
      "resources": [
        {"mode": "managed", "type": "terraform_data", "name": "a", "instances": [{"attributes": {}}]},
        {"mode": "managed", "type": "terraform_data", "name": "b", "instances": [{}, {}]},
        {"mode": "data", "type": "x", "name": "c", "instances": [{}]}
      ]
    }"#;

    #[test]
    fn outputs_and_managed_instances_are_read_from_the_state() {
        let summary = summarise(STATE.as_bytes()).unwrap();
        assert_eq!(summary.resources, 3);
        assert_eq!(summary.outputs.len(), 3);
        assert!(summary.outputs["password"].sensitive);
        assert!(!summary.outputs["marker"].sensitive);
        assert_eq!(
            variable_text(&summary.outputs["marker"].value),
            "0123-alice"
        );
        assert_eq!(variable_text(&summary.outputs["ports"].value), "[1,2]");
        assert!(!format!("{summary:?}").contains("s3cr3t"));
    }

    #[test]
    fn an_empty_or_destroyed_state_has_nothing() {
        let destroyed =
            r#"{"version": 4, "serial": 9, "lineage": "x", "outputs": {}, "resources": []}"#;
        assert_eq!(
            summarise(destroyed.as_bytes()).unwrap(),
            StateSummary::default()
        );
        let error = summarise(b"password=hunter2").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn variable_names_are_upper_case_with_underscores() {
        assert_eq!(
            variable_name("infra", "db_host"),
            "SANDPIT_TF_INFRA_DB_HOST"
        );
        assert_eq!(
            variable_name("edge-net", "public-ip"),
            "SANDPIT_TF_EDGE_NET_PUBLIC_IP"
        );
    }
}
