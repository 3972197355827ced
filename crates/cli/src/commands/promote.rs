//! `sandpit promote FROM TO [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose running artifacts are promoted.
    #[arg(value_parser = crate::arguments::name)]
    from: String,
    /// The environment that receives them (its `promote_from` must be FROM).
    #[arg(value_parser = crate::arguments::name)]
    to: String,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let outcome =
        sandpit_ops::promote::promote(context, &args.from, &args.to, &mut |component, message| {
            if !json {
                output::print_event(component, message);
            }
        })
        .await?;
    output::print_deploy_outcome(&outcome, json)?;
    Ok(ExitCode::SUCCESS)
}
