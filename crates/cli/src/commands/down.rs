//! `sandpit down BIOME`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome to stop and remove (default: the current branch's).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = sandpit_ops::down::down(context, args.biome.as_deref(), |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    if json {
        let mut value = match &outcome.stopped {
            Some(status) => {
                serde_json::to_value(sandpit_server::wire::status::BiomeDetail::new(status, None))?
            }
            None => serde_json::json!({
                "biome": outcome.biome.as_str(),
                "env": outcome.env.as_str(),
                "state": "stopped",
                "components": [],
            }),
        };
        value["deployment"] = outcome.deployment.into();
        output::print_json(&value)?;
    } else {
        println!(
            "biome `{}` is down (deployment #{})",
            outcome.biome, outcome.deployment
        );
    }
    Ok(ExitCode::SUCCESS)
}
