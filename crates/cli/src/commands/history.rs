//! `sandpit history TARGET [--json]`: on this machine, or with a control plane, on the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::deployments::DeploymentList;

use crate::output;
use crate::remote::{project_path, query_value, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `ENV`, `ENV/BIOME` or `BIOME`.
    #[arg(value_parser = crate::arguments::target)]
    target: String,
}

pub fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let deployments = sandpit_ops::history::history(context, &args.target)?;
    print(
        &DeploymentList::from(deployments.as_slice()),
        &args.target,
        json,
    )
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/history?target={}",
        project_path(project),
        query_value(&args.target)
    );
    let list: DeploymentList = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&list, &args.target, json)
}

fn print(list: &DeploymentList, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(list)?;
    } else if list.deployments.is_empty() {
        println!("no deployments to {target} yet");
    } else {
        output::print_deployments(&list.deployments);
    }
    Ok(ExitCode::SUCCESS)
}
