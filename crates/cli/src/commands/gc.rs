//! `sandpit gc [--env ENV] [--dry-run] [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Collect only this environment's store (default: the build store and every environment's).
    #[arg(long, value_name = "ENV", value_parser = crate::arguments::name)]
    env: Option<String>,
    /// List what would be removed, and how many bytes it takes, without removing anything.
    #[arg(long)]
    dry_run: bool,
}

fn store_json(g: &sandpit_ops::gc::StoreGarbage) -> serde_json::Value {
    serde_json::json!({
        "store": g.store,
        "kept_digests": g.kept,
        "removed": g.report.removed_names,
        "removed_blobs": g.report.removed_blobs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "freed_bytes": g.report.freed_bytes,
    })
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let collected = sandpit_ops::gc::gc(context, args.env.as_deref(), args.dry_run).await?;
    if json {
        output::print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "daemon_running": collected.daemon_running,
            "build_store": collected.build.as_ref().map(store_json),
            "environments": collected.environments.iter().map(|g| {
                let mut value = store_json(g);
                value["env"] = g.store.clone().into();
                value
            }).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    output::print_garbage(
        collected.build.iter().chain(&collected.environments),
        args.dry_run,
    );
    if !collected.daemon_running {
        println!("(the daemon is not running: what its biomes ran before it stopped was kept)");
    }
    Ok(ExitCode::SUCCESS)
}
