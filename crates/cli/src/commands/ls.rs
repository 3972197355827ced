//! `sandpit ls [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

pub async fn exec(context: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let biomes = sandpit_ops::ls::ls(context).await?;
    if json {
        output::print_json(&output::BiomeListJson::from(biomes.as_slice()))?;
    } else if biomes.is_empty() {
        println!("no biomes; `sandpit up` creates one for the current branch");
    } else {
        output::print_biome_list(&biomes);
    }
    Ok(ExitCode::SUCCESS)
}
