//! `sandpit reap [--dry-run] [--force]`: one reaper pass over the project's biomes on this
//! machine, each biome's verdict and why; exit 1 when the fail-safe stopped it.

use std::process::ExitCode;

use sandpit_ops::reap::ReapOptions;
use sandpit_ops::Context;
use sandpit_server::wire::reap::ReapReport;

use crate::output::{self, Align, Table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List what would be removed and why; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove past the share guard ([biomes] reap_max_percent); never past a git host that
    /// cannot be asked.
    #[arg(long)]
    force: bool,
}

pub async fn exec(
    context: &Context,
    args: Args,
    git_host_timeout: std::time::Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let options = ReapOptions {
        dry_run: args.dry_run,
        force: args.force,
        git_host_timeout,
    };
    let outcome = sandpit_ops::reap::run(context, &options).await?;
    let report = ReapReport::from(&outcome);
    if json {
        output::print_json(&report)?;
    } else {
        print(&report);
    }
    if let Some(stopped) = &report.stopped {
        if json {
            eprintln!("error: {stopped}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if !report.failed.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print(report: &ReapReport) {
    if report.verdicts.is_empty() {
        println!("project {} has no biomes to reap", report.project);
    } else {
        let mut table = Table::new(&[
            ("BIOME", Align::Left),
            ("ENV", Align::Left),
            ("VERDICT", Align::Left),
            ("WHY", Align::Left),
        ]);
        for v in &report.verdicts {
            table.row(vec![
                v.biome.clone(),
                v.env.clone(),
                v.verdict.clone(),
                v.reason.clone(),
            ]);
        }
        table.print();
    }
    if let Some(stopped) = &report.stopped {
        eprintln!("error: {stopped}");
        return;
    }
    let removing = report.verdicts.iter().filter(|v| v.verdict == "remove");
    if report.dry_run {
        println!(
            "dry run: {} would be removed, nothing was",
            removing.count()
        );
        return;
    }
    for removed in &report.removed {
        println!(
            "removed `{}` (deployment #{})",
            removed.biome, removed.deployment
        );
    }
    for failed in &report.failed {
        eprintln!(
            "error: removing `{}` failed: {}",
            failed.biome, failed.error
        );
    }
    if report.removed.is_empty() && report.failed.is_empty() {
        println!("nothing to remove");
    }
}
