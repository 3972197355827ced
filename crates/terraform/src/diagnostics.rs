//! A module terraform refuses, as located diagnostics read from `terraform validate -json`
//! (pure).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why terraform refuses a module: its diagnostics, in terraform's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidModule {
    pub diagnostics: Vec<Diagnostic>,
}

/// One problem terraform reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// `Invalid single-argument block definition`.
    pub summary: String,
    /// Terraform's explanation (may be empty).
    pub detail: String,
    /// The file as terraform names it, relative to the module directory (`main.tf`,
    /// `modules/net/main.tf`); see [`InvalidModule::under`].
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl InvalidModule {
    /// The same diagnostics with each file named from the project's root: `under("infra")`
    /// turns `main.tf` into `infra/main.tf`.
    pub fn under(mut self, module_path: &str) -> InvalidModule {
        let prefix = module_path.trim_end_matches('/');
        if prefix.is_empty() || prefix == "." {
            return self;
        }
        for diagnostic in &mut self.diagnostics {
            if let Some(file) = diagnostic.file.as_mut() {
                *file = format!("{prefix}/{file}");
            }
        }
        self
    }

    /// A module refused for a reason terraform gave no location for (e.g. `init` failed and
    /// `validate` found nothing), with that reason.
    pub(crate) fn unlocated(
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) -> InvalidModule {
        InvalidModule {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                summary: summary.into(),
                detail: detail.into(),
                file: None,
                line: None,
                column: None,
            }],
        }
    }
}

impl std::error::Error for InvalidModule {}

/// One line per diagnostic: `infra/main.tf:5:3: error: <summary>: <detail>`.
impl fmt::Display for InvalidModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, diagnostic) in self.diagnostics.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            write!(f, " ")?;
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}", self.summary)?;
        // Terraform wraps details at 80 columns for terminals; one line reads better here.
        let detail = self.detail.split_whitespace().collect::<Vec<_>>().join(" ");
        if !detail.is_empty() {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// What `validate -json` says: `Ok(None)` for a valid module, `Ok(Some(..))` with its
/// diagnostics otherwise; `Err` when the document is not one (says what was wrong).
pub(crate) fn from_validate_json(document: &str) -> Result<Option<InvalidModule>, String> {
    let report: ValidateJson = serde_json::from_str(document)
        .map_err(|e| format!("not a `validate -json` document: {e}"))?;
    let has_errors = report
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error);
    if report.valid && !has_errors {
        return Ok(None);
    }
    let diagnostics: Vec<Diagnostic> = report
        .diagnostics
        .into_iter()
        .map(|d| Diagnostic {
            severity: d.severity,
            summary: d.summary,
            detail: d.detail,
            file: d.range.as_ref().map(|r| r.filename.clone()),
            line: d.range.as_ref().map(|r| r.start.line),
            column: d.range.as_ref().map(|r| r.start.column),
        })
        .collect();
    if diagnostics.is_empty() {
        return Ok(Some(InvalidModule::unlocated(
            "terraform found the module invalid but gave no reason",
            "",
        )));
    }
    Ok(Some(InvalidModule { diagnostics }))
}

#[derive(Deserialize)]
struct ValidateJson {
    valid: bool,
    #[serde(default)]
    diagnostics: Vec<ValidateDiagnostic>,
}

#[derive(Deserialize)]
struct ValidateDiagnostic {
    severity: Severity,
    summary: String,
    #[serde(default)]
    detail: String,
    range: Option<ValidateRange>,
}

#[derive(Deserialize)]
struct ValidateRange {
    filename: String,
    start: ValidatePosition,
}

#[derive(Deserialize)]
struct ValidatePosition {
    line: u32,
    column: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `validate -json` of a module with a syntax error (captured from terraform 1.11.4; `init`
    /// itself failed on this module).
    const SYNTAX_ERROR: &str = r#"{
  "format_version": "1.0",
  "valid": false,
  "error_count": 1,
  "warning_count": 0,
  "diagnostics": [
    {
      "severity": "error",
      "summary": "Invalid single-argument block definition",
      "detail": "A single-line block definition must end with a closing brace immediately after its single argument definition.",
      "range": {
        "filename": "main.tf",
        "start": {"line": 5, "column": 30, "byte": 78},
        "end": {"line": 5, "column": 37, "byte": 85}
      },
      "snippet": {
        "context": "variable \"x\"",
        "code": "variable \"x\" { type = string default = \"a\" }",
        "start_line": 5,
        "highlight_start_offset": 29,
        "highlight_end_offset": 36,
        "values": []
      }
    }
  ]
}"#;

    /// `validate -json` of a module referring to an undeclared variable (captured; `init`
    /// succeeded on it).
    const UNDECLARED_VARIABLE: &str = r#"{"format_version":"1.0","valid":false,"error_count":1,"warning_count":0,"diagnostics":[{"severity":"error","summary":"Reference to undeclared input variable","detail":"An input variable with the name \"nope\" has not been declared. This variable can be declared with a variable \"nope\" {} block.","range":{"filename":"main.tf","start":{"line":2,"column":11,"byte":42},"end":{"line":2,"column":19,"byte":50}},"snippet":{"context":"resource \"terraform_data\" \"a\"","code":"  input = var.nope","start_line":2,"highlight_start_offset":10,"highlight_end_offset":18,"values":[]}}]}"#;

    const VALID: &str = r#"{"format_version":"1.0","valid":true,"error_count":0,"warning_count":0,"diagnostics":[]}"#;

    #[test]
    fn validate_documents_become_located_diagnostics() {
        let cases: &[(&str, Option<&str>)] = &[
            (VALID, None),
            (
                SYNTAX_ERROR,
                Some("main.tf:5:30: error: Invalid single-argument block definition: A single-line block definition must end with a closing brace immediately after its single argument definition."),
            ),
            (
                UNDECLARED_VARIABLE,
                Some("main.tf:2:11: error: Reference to undeclared input variable: An input variable with the name \"nope\" has not been declared. This variable can be declared with a variable \"nope\" {} block."),
            ),
            // A warning alone leaves the module valid.
            (
                r#"{"valid":true,"diagnostics":[{"severity":"warning","summary":"Deprecated","detail":"","range":{"filename":"a.tf","start":{"line":1,"column":1}}}]}"#,
                None,
            ),
            // An error without a range (e.g. a missing provider) has no location.
            (
                r#"{"valid":false,"diagnostics":[{"severity":"error","summary":"Missing required provider","detail":"This configuration requires\nprovider hashicorp/aws."}]}"#,
                Some("error: Missing required provider: This configuration requires provider hashicorp/aws."),
            ),
            (
                r#"{"valid":false,"diagnostics":[]}"#,
                Some("error: terraform found the module invalid but gave no reason"),
            ),
            // Warnings are kept beside errors, in terraform's order.
            (
                r#"{"valid":false,"diagnostics":[{"severity":"warning","summary":"W","range":{"filename":"b.tf","start":{"line":3,"column":2}}},{"severity":"error","summary":"E","detail":"d","range":{"filename":"modules/x/c.tf","start":{"line":9,"column":1}}}]}"#,
                Some("b.tf:3:2: warning: W\nmodules/x/c.tf:9:1: error: E: d"),
            ),
        ];
        for (document, expected) in cases {
            let got = from_validate_json(document).unwrap();
            assert_eq!(
                got.map(|m| m.to_string()).as_deref(),
                *expected,
                "{document}"
            );
        }
    }

    #[test]
    fn files_are_named_from_the_project_root_on_request() {
        let module = from_validate_json(SYNTAX_ERROR).unwrap().unwrap();
        let cases = [
            ("infra", "infra/main.tf:5:30: error: "),
            ("infra/", "infra/main.tf:5:30: error: "),
            ("deploy/tf", "deploy/tf/main.tf:5:30: error: "),
            (".", "main.tf:5:30: error: "),
            ("", "main.tf:5:30: error: "),
        ];
        for (path, start) in cases {
            let shown = module.clone().under(path).to_string();
            assert!(shown.starts_with(start), "{path:?}: {shown}");
        }
        let unlocated = InvalidModule::unlocated("init failed", "x").under("infra");
        assert_eq!(unlocated.to_string(), "error: init failed: x");
    }

    #[test]
    fn other_documents_are_refused() {
        for document in [
            "",
            "Error: Terraform encountered problems during initialisation",
            r#"{"diagnostics":[]}"#,
            r#"{"valid":false,"diagnostics":[{"severity":"fatal","summary":"x"}]}"#,
        ] {
            let error = from_validate_json(document).unwrap_err();
            assert!(
                error.starts_with("not a `validate -json` document"),
                "{error}"
            );
        }
    }
}
