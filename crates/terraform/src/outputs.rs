//! A module's outputs, read from `terraform output -json` (pure).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// One output's value. A sensitive value never shows in `Debug`, so it cannot reach a log line
/// or an error message by accident; callers pass it on as a secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Output {
    pub value: serde_json::Value,
    pub sensitive: bool,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Output");
        if self.sensitive {
            debug.field("value", &"<sensitive>");
        } else {
            debug.field("value", &self.value);
        }
        debug.field("sensitive", &self.sensitive).finish()
    }
}

/// Reads `output -json`'s document: a map of names to `{sensitive, type, value}`. `Err` says
/// what was not as expected (never quoting the document, which holds the values).
pub(crate) fn from_output_json(document: &str) -> Result<BTreeMap<String, Output>, String> {
    serde_json::from_str(document).map_err(|e| {
        format!(
            "not a map of outputs (at line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_are_read_with_their_sensitivity() {
        // terraform 1.11's output (captured).
        let captured = r#"{
  "id": {
    "sensitive": false,
    "type": "string",
    "value": "xyz-bob"
  },
  "secret": {
    "sensitive": true,
    "type": "string",
    "value": "s-xyz"
  }
}"#;
        /// An output document and the outputs read from it: name, value, sensitive.
        type Case<'a> = (&'a str, &'a [(&'a str, serde_json::Value, bool)]);
        let cases: &[Case] = &[
            (
                captured,
                &[
                    ("id", json!("xyz-bob"), false),
                    ("secret", json!("s-xyz"), true),
                ],
            ),
            // No state yet (or no outputs): an empty object.
            ("{}\n", &[]),
            (
                r#"{"m":{"sensitive":false,"type":["object",{"a":"number"}],"value":{"a":1}},"l":{"sensitive":false,"type":["list","bool"],"value":[true]}}"#,
                &[("l", json!([true]), false), ("m", json!({"a": 1}), false)],
            ),
        ];
        for (document, expected) in cases {
            let outputs = from_output_json(document).unwrap();
            let got: Vec<(&str, serde_json::Value, bool)> = outputs
                .iter()
                .map(|(name, o)| (name.as_str(), o.value.clone(), o.sensitive))
                .collect();
            assert_eq!(&got, expected);
        }
    }

    #[test]
    fn malformed_documents_are_refused_without_quoting_them() {
        for document in [
            "",
            "[]",
            r#"{"secret":{"value":"hunter2"}}"#,
            "Error: hunter2",
        ] {
            let error = from_output_json(document).unwrap_err();
            assert!(error.starts_with("not a map of outputs"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn a_sensitive_value_is_hidden_from_debug() {
        let secret = Output {
            value: json!("hunter2"),
            sensitive: true,
        };
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<sensitive>"), "{shown}");
        let plain = Output {
            value: json!("visible"),
            sensitive: false,
        };
        assert!(format!("{plain:?}").contains("visible"));
    }
}
