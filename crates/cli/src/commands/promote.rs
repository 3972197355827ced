//! `sandpit promote FROM TO [--json]`: on this machine, or with a control plane, on the
//! server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::PromoteRequest;
use sandpit_server::wire::deployments::DeploymentResult;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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
    output::print_deploy_outcome(&DeploymentResult::from(&outcome), json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/environments/{}/promotions",
        project_path(project),
        path_segment(&args.to)
    );
    let request = PromoteRequest { from: args.from };
    let answer: DeploymentResult = remote.change(Method::POST, &path, Some(&request)).await?;
    output::print_deploy_outcome(&answer, json)?;
    Ok(ExitCode::SUCCESS)
}
