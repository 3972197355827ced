//! `sandpit trace SHA|DIGEST|ARTIFACT [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A commit (7 to 40 hex), a digest (`sha256:…`) or an artifact name (`<component>-<sha>.zip`).
    needle: String,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let report = sandpit_ops::trace::trace(context, &args.needle).await?;
    if json {
        let stored: Vec<serde_json::Value> = report
            .stored
            .iter()
            .map(|copy| {
                let mut value = serde_json::to_value(output::ArtifactJson::from(&copy.check))
                    .expect("artifact JSON always serialises");
                value["store"] = copy.store.clone().into();
                value
            })
            .collect();
        output::print_json(&serde_json::json!({
            "running": report.running,
            "deployments": report.deployments.iter().map(output::DeploymentJson::from).collect::<Vec<_>>(),
            "provenance": report.provenance,
            "stored": stored,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.running.is_empty() {
        println!("running nowhere now");
    } else {
        println!("running now:");
        output::print_running(&report.running);
    }
    if !report.deployments.is_empty() {
        println!("deployments that included it:");
        output::print_deployments(&report.deployments);
    }
    for copy in &report.stored {
        match output::integrity_problem(&copy.check) {
            Some(problem) => println!("stored in {}: {problem}", copy.store),
            None => println!(
                "stored in {}: {} {} intact",
                copy.store,
                copy.check.name.file_name(),
                copy.check.provenance.digest
            ),
        }
    }
    for p in &report.provenance {
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
