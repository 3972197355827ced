//! `sandpit rollback ENV [--to ID] [--json]`: on this machine, or with a control plane, on the
//! server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::RollbackRequest;
use sandpit_server::wire::deployments::DeploymentResult;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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
        "{}/environments/{}/rollbacks",
        project_path(project),
        path_segment(&args.env)
    );
    let request = RollbackRequest { to: args.to };
    let answer: DeploymentResult = remote.change(Method::POST, &path, Some(&request)).await?;
    output::print_deploy_outcome(&answer, json)?;
    Ok(ExitCode::SUCCESS)
}
