//! `sandpit trace SHA|DIGEST|ARTIFACT [--json]`: on this machine, or with a control plane, on
//! the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::trace::Trace;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A commit (7 to 40 hex), a digest (`sha256:…`) or an artifact name (`<component>-<sha>.zip`).
    needle: String,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let report = sandpit_ops::trace::trace(context, &args.needle).await?;
    print(&Trace::from(&report), json)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/trace/{}",
        project_path(project),
        path_segment(args.needle.trim())
    );
    let trace: Trace = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&trace, json)
}

fn print(trace: &Trace, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(trace)?;
        return Ok(ExitCode::SUCCESS);
    }
    if trace.running.is_empty() {
        println!("running nowhere now");
    } else {
        println!("running now:");
        output::print_running(&trace.running);
    }
    if !trace.deployments.is_empty() {
        println!("deployments that included it:");
        output::print_deployments(&trace.deployments);
    }
    for copy in &trace.stored {
        match copy.artifact.integrity_problem() {
            Some(problem) => println!("stored in {}: {problem}", copy.store),
            None => println!(
                "stored in {}: {} {} intact",
                copy.store, copy.artifact.name, copy.artifact.digest
            ),
        }
    }
    for p in &trace.provenance {
        println!(
            "provenance: {}-{}.zip  {}  built from tree {} by {} at {}",
            p.component,
            p.version,
            p.digest,
            &p.input_tree,
            p.builder.as_deref().unwrap_or("unknown"),
            p.finished_at
        );
    }
    Ok(ExitCode::SUCCESS)
}
