//! `sandpit status BIOME [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome's name.
    #[arg(value_parser = crate::arguments::target)]
    biome: String,
    /// Include secrets (the database URL with its password) in the output.
    #[arg(long)]
    show_secrets: bool,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::status::status(context, &args.biome).await?;
    if json {
        output::print_json(&output::BiomeJson::new(&status, args.show_secrets))?;
    } else {
        output::print_biome(&status, args.show_secrets);
    }
    Ok(ExitCode::SUCCESS)
}
