//! `sandpit rollback ENV [--to ID] [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment to roll back.
    #[arg(value_parser = crate::arguments::name)]
    env: String,
    /// The successful deployment to restore (default: the one before what runs now).
    #[arg(long, value_name = "DEPLOYMENT_ID")]
    to: Option<i64>,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let outcome =
        sandpit_ops::rollback::rollback(context, &args.env, args.to, &mut |component, message| {
            if !json {
                output::print_event(component, message);
            }
        })
        .await?;
    output::print_deploy_outcome(&outcome, json)?;
    Ok(ExitCode::SUCCESS)
}
