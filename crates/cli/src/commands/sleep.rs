//! `sandpit sleep [BIOME] [--json]` and `sandpit wake [BIOME] [--json]`: what the daemon does by
//! itself after `[biomes] idle_timeout` and on a request through the gateway, by hand.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::RestartResult;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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

/// `sleep` (`to_sleep`) or `wake` on a control plane's machine.
pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    to_sleep: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let biome = crate::checkout::biome_or_branch(args.biome, directory)?;
    let verb = if to_sleep { "sleep" } else { "wake" };
    let path = format!(
        "{}/biomes/{}/{verb}",
        project_path(project),
        path_segment(&biome)
    );
    let mut answer: RestartResult = remote.change(Method::POST, &path, None::<&()>).await?;
    output::print_events(&answer.events);
    answer.events.clear();
    print_result(&answer, json)
}

fn print(status: &sandpit_runtime::protocol::BiomeStatus, json: bool) -> anyhow::Result<ExitCode> {
    print_result(
        &RestartResult {
            biome: output::BiomeJson::new(status, None),
            events: Vec::new(),
        },
        json,
    )
}

fn print_result(outcome: &RestartResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(outcome)?;
    } else {
        output::print_biome(&outcome.biome);
    }
    Ok(ExitCode::SUCCESS)
}
