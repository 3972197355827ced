//! `sandpit artifacts [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List this environment's store instead of the build store.
    #[arg(long, value_name = "ENV", value_parser = crate::arguments::name)]
    env: Option<String>,
}

pub fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let artifacts = sandpit_ops::artifacts::artifacts(context, args.env.as_deref())?;
    if json {
        output::print_json(&output::ArtifactListJson::from(&artifacts))?;
    } else if artifacts.artifacts.is_empty() && artifacts.unreadable_records.is_empty() {
        println!("no artifacts yet; `sandpit build` makes them");
    } else {
        output::print_artifacts(&artifacts);
    }
    Ok(ExitCode::SUCCESS)
}
