//! `sandpit deploy ENV [--sha REV | --branch B] [--allow-older] [--json]`: on this machine, or
//! with a control plane, on the server's (which builds only a pushed commit).

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::deploy::DeployOptions;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::Context;
use sandpit_server::wire::changes::DeployRequest;
use sandpit_server::wire::deployments::DeploymentResult;

use crate::checkout::{requested_commit, Checkout};
use crate::output;
use crate::progress::TerminalProgress;
use crate::remote::{path_segment, project_path, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose base receives the deployment.
    #[arg(value_parser = crate::arguments::name)]
    env: String,
    /// The revision to deploy (default: HEAD; uncommitted changes are never deployed).
    #[arg(long, value_name = "REV")]
    sha: Option<String>,
    /// Deploy the head of this branch (with a control plane: of the project's repository).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// Deploy even if the commit is older than the one running there.
    #[arg(long)]
    allow_older: bool,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let rev = match (args.sha, args.branch) {
        (Some(_), Some(_)) => {
            return Err(failure(
                ErrorKind::InvalidInput,
                "--sha and --branch name two commits\nhint: give one of them",
            ))
        }
        (sha, branch) => sha.or(branch),
    };
    let options = DeployOptions {
        env: args.env,
        rev,
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
    output::print_deploy_outcome(&DeploymentResult::from(&outcome), json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let checkout = Checkout::find(directory);
    let (sha, branch) = requested_commit(
        checkout.as_ref(),
        args.sha.as_deref(),
        args.branch.as_deref(),
    )?;
    let request = DeployRequest {
        sha,
        branch,
        allow_older: args.allow_older,
    };
    let path = format!(
        "{}/environments/{}/deployments",
        project_path(project),
        path_segment(&args.env)
    );
    let answer: DeploymentResult = remote.change(Method::POST, &path, Some(&request)).await?;
    output::print_deploy_outcome(&answer, json)?;
    Ok(ExitCode::SUCCESS)
}
