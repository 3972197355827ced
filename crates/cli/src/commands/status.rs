//! `sandpit status [BIOME] [--show-secrets] [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// Include secrets (the database URL with its password) in the output.
    #[arg(long)]
    show_secrets: bool,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::status::status(context, args.biome.as_deref()).await?;
    // Read from the owner-only file the daemon reads it from; the daemon never holds it.
    let database_url = match &status.database {
        Some(info) if args.show_secrets => {
            Some(sandpit_ops::database::read_url(&status.biome, info)?)
        }
        _ => None,
    };
    let models = sandpit_ops::status::models(context, &status)?;
    let document = output::BiomeJson::new(&status, database_url).with_models(&models);
    if json {
        output::print_json(&document)?;
    } else {
        output::print_biome(&document);
    }
    Ok(ExitCode::SUCCESS)
}
