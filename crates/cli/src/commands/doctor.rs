//! `sandpit doctor [--json]`: every prerequisite, `ok` with what was found or what is wrong and
//! the command that fixes it; exit 1 when any check is an error (warnings keep 0).

use std::process::ExitCode;

use sandpit_ops::doctor::{Expectations, Report, Status};
use sandpit_ops::Context;
use serde::Serialize;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// `doctor --json`: `{"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}`; `status` is
/// `ok|warning|error`, `fix` is null for an `ok`.
#[derive(Debug, Serialize)]
struct DoctorJson<'a> {
    ok: bool,
    checks: Vec<CheckJson<'a>>,
}

#[derive(Debug, Serialize)]
struct CheckJson<'a> {
    name: &'a str,
    status: &'static str,
    detail: &'a str,
    fix: Option<&'a str>,
}

pub async fn exec(context: &Context, _args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let expectations = Expectations {
        home_mode: crate::settings::home_mode(nix::unistd::geteuid().is_root()),
    };
    let report = sandpit_ops::doctor::run(context, expectations).await;
    if json {
        output::print_json(&DoctorJson {
            ok: report.ok(),
            checks: report
                .checks
                .iter()
                .map(|c| CheckJson {
                    name: &c.name,
                    status: c.status.as_str(),
                    detail: &c.detail,
                    fix: c.fix.as_deref(),
                })
                .collect(),
        })?;
    } else {
        print_report(&report);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per check (`ok      git  git 2.43.0 at /usr/bin/git`), its fix indented below it,
/// then a summary.
fn print_report(report: &Report) {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        println!(
            "{:<8}{:<width$}  {}",
            check.status.as_str(),
            check.name,
            check.detail
        );
        if let Some(fix) = &check.fix {
            println!("{:<8}{:<width$}  fix: {fix}", "", "");
        }
    }
    let errors = report.count(Status::Error);
    let warnings = report.count(Status::Warning);
    println!();
    match (errors, warnings) {
        (0, 0) => println!("no problems found"),
        _ => println!(
            "{errors} error{}, {warnings} warning{}{}",
            plural(errors),
            plural(warnings),
            if errors > 0 {
                ": run each fix above, then `sandpit doctor` again"
            } else {
                ""
            }
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
