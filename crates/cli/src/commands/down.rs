//! `sandpit down BIOME`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome to stop and remove.
    biome: String,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::down::down(context, &args.biome, |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    if json {
        output::print_json(&output::BiomeJson::new(&status, false))?;
    } else {
        println!("biome `{}` is down", status.biome);
    }
    Ok(ExitCode::SUCCESS)
}
