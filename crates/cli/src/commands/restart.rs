//! `sandpit restart [BIOME] [COMPONENT] [--json]`: on this machine, or with a control plane, on
//! the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::{RestartRequest, RestartResult};

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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
    print(
        &RestartResult {
            biome: output::BiomeJson::new(&status, None),
            events: Vec::new(),
        },
        json,
    )
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let biome = crate::checkout::biome_or_branch(args.biome, directory)?;
    let path = format!(
        "{}/biomes/{}/restart",
        project_path(project),
        path_segment(&biome)
    );
    let request = RestartRequest {
        component: args.component,
    };
    let mut answer: RestartResult = remote.change(Method::POST, &path, Some(&request)).await?;
    output::print_events(&answer.events);
    answer.events.clear();
    print(&answer, json)
}

fn print(outcome: &RestartResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(outcome)?;
    } else {
        output::print_biome(&outcome.biome);
    }
    Ok(ExitCode::SUCCESS)
}
