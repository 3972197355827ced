//! `sandpit build [--sha REV] [--allow-dirty] [--json]`

use std::process::ExitCode;

use sandpit_ops::build::BuildOptions;
use sandpit_ops::Context;

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
    pub fn sha(&self) -> Option<&str> {
        self.sha.as_deref()
    }

    pub fn allow_dirty(&self) -> bool {
        self.allow_dirty
    }

    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            rev: self.sha.clone(),
            allow_dirty: self.allow_dirty,
        }
    }
}

/// `build --json`: the API's document.
pub use sandpit_server::wire::changes::BuildSummary as BuildJson;

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
pub use sandpit_server::wire::changes::outcome_word;
