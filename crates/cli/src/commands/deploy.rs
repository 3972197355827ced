//! `sandpit deploy ENV [--sha REV] [--allow-older] [--json]`

use std::process::ExitCode;

use sandpit_ops::deploy::DeployOptions;
use sandpit_ops::Context;

use crate::output;
use crate::progress::TerminalProgress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose base receives the deployment.
    #[arg(value_parser = crate::arguments::name)]
    env: String,
    /// The revision to deploy (default: HEAD; uncommitted changes are never deployed).
    #[arg(long, value_name = "REV")]
    sha: Option<String>,
    /// Deploy even if the commit is older than the one running there.
    #[arg(long)]
    allow_older: bool,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let options = DeployOptions {
        env: args.env,
        rev: args.sha,
        allow_older: args.allow_older,
    };
    let mut progress = TerminalProgress::new(json);
    let (_, outcome) = sandpit_ops::deploy::deploy(
        context,
        &options,
        &mut progress,
        &mut |component, message| {
            if !json {
                output::print_event(component, message);
            }
        },
    )
    .await?;
    output::print_deploy_outcome(&outcome, json)?;
    Ok(ExitCode::SUCCESS)
}
