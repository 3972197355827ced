//! `sandpit history TARGET [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `ENV`, `ENV/BIOME` or `BIOME`.
    #[arg(value_parser = crate::arguments::target)]
    target: String,
}

pub fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let deployments = sandpit_ops::history::history(context, &args.target)?;
    if json {
        output::print_json(&serde_json::json!({
            "deployments": deployments.iter().map(output::DeploymentJson::from).collect::<Vec<_>>()
        }))?;
    } else if deployments.is_empty() {
        println!("no deployments to {} yet", args.target);
    } else {
        output::print_deployments(&deployments);
    }
    Ok(ExitCode::SUCCESS)
}
