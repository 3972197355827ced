//! `sandpit sleep [BIOME] [--json]` and `sandpit wake [BIOME] [--json]`: what the daemon does by
//! itself after `[biomes] idle_timeout` and on a request through the gateway, by hand.

use std::process::ExitCode;

use sandpit_ops::Context;
use sandpit_server::wire::changes::RestartResult;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
}

pub async fn sleep(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::sleep::sleep(context, args.biome.as_deref(), |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    print(&status, json)
}

pub async fn wake(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::sleep::wake(context, args.biome.as_deref(), |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    print(&status, json)
}

fn print(status: &sandpit_runtime::protocol::BiomeStatus, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = RestartResult {
        biome: output::BiomeJson::new(status, None),
        events: Vec::new(),
    };
    if json {
        output::print_json(&outcome)?;
    } else {
        output::print_biome(&outcome.biome);
    }
    Ok(ExitCode::SUCCESS)
}
