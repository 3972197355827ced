//! `sandpit artifacts [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

pub fn exec(context: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let artifacts = sandpit_ops::artifacts::artifacts(context)?;
    if json {
        output::print_json(&output::ArtifactListJson::from(artifacts.as_slice()))?;
    } else if artifacts.is_empty() {
        println!("no artifacts yet; `sandpit build` makes them");
    } else {
        output::print_artifacts(&artifacts);
    }
    Ok(ExitCode::SUCCESS)
}
