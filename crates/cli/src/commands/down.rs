//! `sandpit down BIOME`: on this machine, or with a control plane, on the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::DownResult;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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
    print(&DownResult::from(&outcome), json)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let biome = crate::checkout::biome_or_branch(args.biome, directory)?;
    let path = format!("{}/biomes/{}", project_path(project), path_segment(&biome));
    let mut answer: DownResult = remote.change(Method::DELETE, &path, None::<&()>).await?;
    output::print_events(&answer.events);
    answer.events.clear();
    print(&answer, json)
}

fn print(outcome: &DownResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(outcome)?;
    } else {
        println!(
            "biome `{}` is down (deployment #{})",
            outcome.biome, outcome.deployment
        );
    }
    Ok(ExitCode::SUCCESS)
}
