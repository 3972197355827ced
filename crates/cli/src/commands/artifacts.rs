//! `sandpit artifacts [--env ENV] [--json]`: on this machine, or with a control plane, on the
//! server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::artifacts::ArtifactList;

use crate::output;
use crate::remote::{project_path, query_value, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List this environment's store instead of the build store.
    #[arg(long, value_name = "ENV", value_parser = crate::arguments::name)]
    env: Option<String>,
}

pub fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let artifacts = sandpit_ops::artifacts::artifacts(context, args.env.as_deref())?;
    print(&ArtifactList::from(&artifacts), json)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut path = format!("{}/artifacts", project_path(project));
    if let Some(env) = &args.env {
        path.push_str(&format!("?env={}", query_value(env)));
    }
    let list: ArtifactList = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&list, json)
}

fn print(list: &ArtifactList, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(list)?;
    } else if list.artifacts.is_empty() && list.unreadable_records.is_empty() {
        println!("no artifacts yet; `sandpit build` makes them");
    } else {
        output::print_artifacts(list);
    }
    Ok(ExitCode::SUCCESS)
}
