//! `sandpit restart [BIOME] [COMPONENT] [--json]`

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// The component to restart (a job runs again). Default: every service, stopped dependants
    /// first and started in dependency order; jobs are not run again.
    #[arg(value_parser = crate::arguments::name)]
    component: Option<String>,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let status = sandpit_ops::restart::restart(
        context,
        args.biome.as_deref(),
        args.component.as_deref(),
        |component, message| {
            if !json {
                output::print_event(component, message);
            }
        },
    )
    .await?;
    let detail = sandpit_server::wire::status::BiomeDetail::new(&status, None);
    if json {
        output::print_json(&detail)?;
    } else {
        output::print_biome(&detail);
    }
    Ok(ExitCode::SUCCESS)
}
