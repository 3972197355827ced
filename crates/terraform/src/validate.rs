//! Whether terraform accepts a module, with located diagnostics (what `sandpit build` checks).
//!
//! `init -backend=false` runs first (validation needs the providers installed). A syntax error
//! makes `init` itself fail with a located message in prose, not JSON; `validate -json` parses
//! the configuration even then and reports the same error with `range.filename`/`start`, so it
//! runs either way and its diagnostics are what the caller gets. Only when it finds nothing
//! although `init` failed (a provider that cannot be installed, say) is `init`'s own output the
//! reason.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::binary::Terraform;
use crate::diagnostics::{self, InvalidModule};
use crate::environment::{self, Additions};
use crate::process::{self, Invocation, Stdout};

/// `terraform init -backend=false`, then `terraform validate -json`, in `dir` (which gets
/// `.terraform/` and, with providers, `.terraform.lock.hcl`). Nothing is logged: the
/// diagnostics (or, for a failure to run terraform at all, what failed) are the answer.
pub fn validate(
    terraform: &Terraform,
    dir: &Path,
    plugin_cache_dir: &Path,
    cli_config_file: Option<&Path>,
) -> Result<(), InvalidModule> {
    let env = environment::additions(Additions {
        plugin_cache_dir,
        cli_config_file,
        vars: &BTreeMap::new(),
        backend: None,
        extra_env: &[],
    })
    .map_err(|e| InvalidModule::unlocated("could not run terraform", e.to_string()))?;
    std::fs::create_dir_all(plugin_cache_dir).map_err(|e| {
        InvalidModule::unlocated(
            "could not run terraform",
            format!(
                "could not create the plugin cache `{}`: {e}",
                plugin_cache_dir.display()
            ),
        )
    })?;
    let invocation = |args: &[&str]| Invocation {
        binary: terraform.binary(),
        program: terraform.program_name(),
        dir,
        args: args.iter().map(OsString::from).collect(),
        env: env.clone(),
    };

    let init = invocation(&["init", "-input=false", "-no-color", "-backend=false"]);
    let init_finished = process::run(&init, Stdout::Captured, None).map_err(|e| {
        InvalidModule::unlocated(
            format!("`{}` could not run", init.command_name()),
            e.to_string(),
        )
    })?;
    // `init` prints its progress on stdout and its errors on stderr; both explain a failure.
    let init_output = || {
        let stdout = String::from_utf8_lossy(&init_finished.stdout);
        let mut lines: Vec<String> = stdout.lines().map(crate::failure::colour_free).collect();
        lines.extend(init_finished.watch.tail().lines().map(str::to_owned));
        let tail: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .skip(lines.len().saturating_sub(crate::failure::TAIL_LINES))
            .collect();
        tail.join("\n")
    };

    let check = invocation(&["validate", "-json", "-no-color"]);
    let checked = process::run(&check, Stdout::Captured, None).map_err(|e| {
        InvalidModule::unlocated(
            format!("`{}` could not run", check.command_name()),
            e.to_string(),
        )
    })?;
    let document = String::from_utf8_lossy(&checked.stdout);
    match verdict(&document, init_finished.status.success()) {
        Verdict::Valid => Ok(()),
        Verdict::Invalid(invalid) => Err(invalid),
        Verdict::InitFailed => Err(InvalidModule::unlocated(
            format!(
                "`{}` failed ({})",
                init.command_name(),
                init_finished.status
            ),
            init_output(),
        )),
        Verdict::Unreadable(problem) => Err(InvalidModule::unlocated(
            format!(
                "`{}` printed something unexpected ({problem})",
                check.command_name()
            ),
            checked.watch.tail(),
        )),
    }
}

/// What `validate`'s answer is.
#[derive(Debug, PartialEq)]
enum Verdict {
    Valid,
    /// `validate -json`'s diagnostics: they say where, even when `init` failed too.
    Invalid(InvalidModule),
    /// `validate -json` found nothing (or printed no document), but `init` failed: its output
    /// is the reason.
    InitFailed,
    /// `init` succeeded and `validate -json` printed no document: what was wrong with it.
    Unreadable(String),
}

/// The verdict on a module from `validate -json`'s document and whether `init` succeeded (pure).
fn verdict(document: &str, init_succeeded: bool) -> Verdict {
    match (diagnostics::from_validate_json(document), init_succeeded) {
        (Ok(Some(invalid)), _) => Verdict::Invalid(invalid),
        (Ok(None), true) => Verdict::Valid,
        (Ok(None) | Err(_), false) => Verdict::InitFailed,
        (Err(problem), true) => Verdict::Unreadable(problem),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_speaks_first_and_init_only_when_validate_found_nothing() {
        const VALID: &str = r#"{"valid":true,"diagnostics":[]}"#;
        const INVALID: &str = r#"{"valid":false,"diagnostics":[{"severity":"error","summary":"Bad","range":{"filename":"main.tf","start":{"line":1,"column":2}}}]}"#;
        let located = || {
            Verdict::Invalid(InvalidModule {
                diagnostics: vec![crate::Diagnostic {
                    severity: crate::Severity::Error,
                    summary: "Bad".into(),
                    detail: String::new(),
                    file: Some("main.tf".into()),
                    line: Some(1),
                    column: Some(2),
                }],
            })
        };
        let cases = [
            (VALID, true, Verdict::Valid),
            (INVALID, true, located()),
            // A syntax error: init fails, validate locates it.
            (INVALID, false, located()),
            (VALID, false, Verdict::InitFailed),
            ("", false, Verdict::InitFailed),
            (
                "",
                true,
                Verdict::Unreadable(
                    "not a `validate -json` document: EOF while parsing a value at line 1 column 0"
                        .into(),
                ),
            ),
        ];
        for (document, init_succeeded, expected) in cases {
            assert_eq!(
                verdict(document, init_succeeded),
                expected,
                "{document} {init_succeeded}"
            );
        }
    }
}
