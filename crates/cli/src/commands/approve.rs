//! `sandpit approve ID` and `sandpit reject ID [--reason TEXT]`: here, or through the control
//! plane when one is configured (the decision is then the token's user's). Both print from the
//! server's wire types, so the text and `--json` are the same either way.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::{Decision, Deployment, RejectRequest};

use crate::output::{self, Align, Table};
use crate::remote::Remote;

/// How long a remote approval is waited for: the server runs the deployment before it
/// answers, and gives up after `sandpit_server::DECISION_TIMEOUT`.
const DECISION_WAIT: Duration =
    sandpit_server::DECISION_TIMEOUT.saturating_add(Duration::from_secs(30));

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
    print_decision(&Decision::from(&outcome), json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn reject(context: &Context, args: RejectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let deployment = sandpit_ops::approve::reject(context, args.id, args.reason.as_deref())?;
    print_rejected(&Deployment::from(&deployment), json)?;
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
    let decision: Decision = remote
        .call_within(Method::POST, &path, None::<&()>, DECISION_WAIT)
        .await?;
    print_decision(&decision, json)?;
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
    let deployment: Deployment = remote.call(Method::POST, &path, Some(&request)).await?;
    print_rejected(&deployment, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_rejected(deployment: &Deployment, json: bool) -> anyhow::Result<()> {
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

/// What `approve` prints: that it waits for more approvals, or how its rollout went.
fn print_decision(decision: &Decision, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(decision);
    }
    let d = &decision.deployment;
    if d.state == "pending" && d.approvals_missing() > 0 {
        println!(
            "deployment #{} to {} is pending: it needs {} more approval(s) from someone other than {} (`sandpit approve {}`)",
            d.id,
            d.target,
            d.approvals_missing(),
            d.requested_by,
            d.id
        );
        return Ok(());
    }
    match &decision.status {
        Some(status) => {
            println!(
                "deployment #{} to {} {}: {} at {}",
                d.id, d.target, d.state, status.state, d.sha
            );
            for step in &d.steps {
                println!(
                    "  {}: {}",
                    step.step.replace('_', " "),
                    step.message.lines().next().unwrap_or_default()
                );
            }
            let mut urls =
                Table::new(&[("COMPONENT", Align::Left), ("URL", Align::Left)]).without_header();
            for component in &status.components {
                if let Some(url) = &component.url {
                    urls.row(vec![format!("  {}", component.name), url.clone()]);
                }
            }
            urls.print();
        }
        None => {
            let kind = match &d.promoted_from {
                Some(from) => format!("promote from {from}"),
                None => d.kind.clone(),
            };
            println!("deployment #{} ({kind}) to {} {}", d.id, d.target, d.state);
        }
    }
    Ok(())
}
