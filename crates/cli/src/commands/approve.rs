//! `sandpit approve ID` and `sandpit reject ID [--reason TEXT]`: here, or through the control
//! plane when one is configured (the decision is then the token's user's). Both print from the
//! server's wire types, so the text and `--json` are the same either way.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::deployments::{DeploymentRecord, DeploymentResult};
use sandpit_server::wire::RejectRequest;

use crate::output;
use crate::remote::Remote;

/// How long a remote approval is waited for: the server runs the deployment before it
/// answers, and gives up after `sandpit_server::CHANGE_TIMEOUT`.
const DECISION_WAIT: Duration =
    sandpit_server::CHANGE_TIMEOUT.saturating_add(Duration::from_secs(30));

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
    output::print_deploy_outcome(&DeploymentResult::from(&outcome), json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn reject(context: &Context, args: RejectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let deployment = sandpit_ops::approve::reject(context, args.id, args.reason.as_deref())?;
    print_rejected(&DeploymentRecord::from(&deployment), json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn approve_remote(
    remote: &Remote,
    args: ApproveArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !json {
        eprintln!(
            "approving deployment #{}; the server runs it when no approval is missing…",
            args.id
        );
    }
    let path = format!("/api/v1/deployments/{}/approve", args.id);
    let decision: DeploymentResult = remote
        .call_within(Method::POST, &path, None::<&()>, DECISION_WAIT)
        .await?;
    output::print_deploy_outcome(&decision, json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn reject_remote(
    remote: &Remote,
    args: RejectArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/deployments/{}/reject", args.id);
    let request = RejectRequest {
        reason: args.reason,
    };
    let deployment: DeploymentRecord = remote.call(Method::POST, &path, Some(&request)).await?;
    print_rejected(&deployment, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_rejected(deployment: &DeploymentRecord, json: bool) -> anyhow::Result<()> {
    if json {
        output::print_json(deployment)
    } else {
        println!(
            "deployment #{} to {} is rejected",
            deployment.id, deployment.target
        );
        Ok(())
    }
}
