//! `sandpit gc [--env ENV] [--dry-run] [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this environment's store (default: every environment).
    #[arg(long, value_name = "ENV", value_parser = crate::arguments::name)]
    env: Option<String>,
    /// Report what would be removed without removing it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let collected = sandpit_ops::gc::gc(context, args.env.as_deref(), args.dry_run).await?;
    if json {
        output::print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "environments": collected.iter().map(|g| serde_json::json!({
                "env": g.env,
                "kept_digests": g.kept,
                "removed": g.report.removed_names,
                "removed_blobs": g.report.removed_blobs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "freed_bytes": g.report.freed_bytes,
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for g in &collected {
        println!(
            "{}: {verb} {} artifact name(s), {} blob(s), {} bytes; kept {} digest(s) still referenced",
            g.env,
            g.report.removed_names.len(),
            g.report.removed_blobs.len(),
            g.report.freed_bytes,
            g.kept
        );
        for name in &g.report.removed_names {
            println!("  {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
