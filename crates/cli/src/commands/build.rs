//! `sandpit build [--sha REV] [--allow-dirty] [--json]`

use std::process::ExitCode;

use sandpit_build::execute::{BuildReport, Outcome};
use sandpit_ops::build::BuildOptions;
use sandpit_ops::Context;
use serde::Serialize;

use crate::output;
use crate::progress::TerminalProgress;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The revision to build (default: HEAD, refusing uncommitted changes).
    #[arg(long, value_name = "REV")]
    sha: Option<String>,
    /// Build uncommitted changes as `<sha>-dirty-<hash>`.
    #[arg(long)]
    allow_dirty: bool,
}

impl BuildArgs {
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            rev: self.sha.clone(),
            allow_dirty: self.allow_dirty,
        }
    }
}

/// `build --json`
#[derive(Debug, Serialize)]
pub struct BuildJson {
    pub version: String,
    pub components: Vec<BuiltComponentJson>,
}

#[derive(Debug, Serialize)]
pub struct BuiltComponentJson {
    pub name: String,
    pub kind: String,
    /// `built` or `reused`
    pub outcome: String,
    pub artifact: String,
    pub digest: String,
    pub size: u64,
    pub path: String,
    pub log: Option<String>,
}

impl From<&BuildReport> for BuildJson {
    fn from(report: &BuildReport) -> BuildJson {
        BuildJson {
            version: report.version.to_string(),
            components: report
                .components
                .iter()
                .map(|c| BuiltComponentJson {
                    name: c.name.to_string(),
                    kind: c.kind.to_string(),
                    outcome: outcome_word(c.outcome).to_owned(),
                    artifact: c.artifact.name.file_name(),
                    digest: c.artifact.digest.to_string(),
                    size: c.artifact.size,
                    path: c.artifact.file_path.display().to_string(),
                    log: c.log.as_ref().map(|l| l.display().to_string()),
                })
                .collect(),
        }
    }
}

pub fn exec(context: &Context, args: BuildArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut progress = TerminalProgress::new(json);
    let outcome = sandpit_ops::build::build(context, &args.options(), &mut progress)?;
    if json {
        output::print_json(&BuildJson::from(&outcome.report))?;
    } else {
        println!(
            "built {} at {}",
            outcome.spec.project.name, outcome.report.version
        );
        for c in &outcome.report.components {
            println!(
                "  {:<8} {}  {}",
                outcome_word(c.outcome),
                c.artifact.name.file_name(),
                c.artifact.digest
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `built` or `reused`, as printed and as in `--json`.
pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Built => "built",
        Outcome::Reused => "reused",
    }
}
