//! `sandpit approve ID` and `sandpit reject ID [--reason TEXT]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The pending deployment's id (`sandpit history ENV` lists them).
    id: i64,
}

#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    /// The pending deployment's id.
    id: i64,
    /// Why, for the record.
    #[arg(long)]
    reason: Option<String>,
}

pub async fn approve(context: &Context, args: ApproveArgs, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = sandpit_ops::approve::approve(context, args.id, &mut |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    output::print_deploy_outcome(&outcome, json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn reject(context: &Context, args: RejectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let deployment = sandpit_ops::approve::reject(context, args.id, args.reason.as_deref())?;
    if json {
        output::print_json(&sandpit_server::wire::deployments::Deployment::from(
            &deployment,
        ))?;
    } else {
        println!(
            "deployment #{} to {} is rejected",
            deployment.id, deployment.target
        );
    }
    Ok(ExitCode::SUCCESS)
}
