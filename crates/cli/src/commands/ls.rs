//! `sandpit ls [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

pub async fn exec(context: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let listing = sandpit_ops::ls::ls(context).await?;
    if json {
        let mut value =
            serde_json::to_value(output::BiomeListJson::from(listing.biomes.as_slice()))?;
        value["environments"] = serde_json::to_value(
            output::BiomeListJson::from(listing.environments.as_slice()).biomes,
        )?;
        value["daemon_running"] = listing.daemon_running.into();
        value["incomplete"] = listing
            .incomplete
            .iter()
            .map(|f| {
                serde_json::json!({
                    "biome": f.biome.as_str(), "env": f.env.as_str(), "state": f.state,
                    "deployment": f.deployment, "message": f.message, "left": f.left,
                })
            })
            .collect();
        output::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    for failed in &listing.incomplete {
        let next = if failed.state == "down-failed" {
            format!("`sandpit down {}` finishes it", failed.biome)
        } else {
            format!(
                "`sandpit up {0}` tries again, `sandpit down {0}` removes it",
                failed.biome
            )
        };
        println!(
            "{:<20} {} (deployment #{}): left behind {}; {next}",
            failed.biome.as_str(),
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
