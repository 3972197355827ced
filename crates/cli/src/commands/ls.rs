//! `sandpit ls [--json]`: on this machine, or with a control plane, on the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::biomes::BiomeList;

use crate::output;
use crate::remote::{project_path, Remote};

pub async fn exec(context: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let listing = sandpit_ops::ls::ls(context).await?;
    print(&BiomeList::from(&listing), json)
}

pub async fn exec_remote(remote: &Remote, project: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = format!("{}/biomes", project_path(project));
    let listing: BiomeList = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&listing, json)
}

fn print(listing: &BiomeList, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(listing)?;
        return Ok(ExitCode::SUCCESS);
    }
    for failed in &listing.incomplete {
        let next = if failed.state == "down-failed" || failed.state == "destroy-failed" {
            format!("`sandpit down {}` finishes it", failed.biome)
        } else {
            format!(
                "`sandpit up {0}` tries again, `sandpit down {0}` removes it",
                failed.biome
            )
        };
        println!(
            "{:<20} {} (deployment #{}): left behind {}; {next}",
            failed.biome,
            failed.state,
            failed.deployment,
            if failed.left.is_empty() {
                "nothing known".to_owned()
            } else {
                failed.left.join(", ")
            },
        );
    }
    if !listing.daemon_running {
        println!("nothing runs: the sandpit daemon is not running");
        println!(
            "hint: `sandpit daemon start` starts it and brings back what ran before it stopped"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !listing.environments.is_empty() {
        println!("environments:");
        output::print_biome_list(&listing.environments);
        println!();
    }
    if listing.biomes.is_empty() {
        println!("no biomes; `sandpit up` creates one for the current branch");
    } else {
        output::print_biome_list(&listing.biomes);
    }
    Ok(ExitCode::SUCCESS)
}
