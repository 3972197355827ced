//! `sandpit extend BIOME SPAN`: the biome lives SPAN longer; on this machine, or with a control
//! plane, on the server's.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::changes::{ExtendRequest, ExtendResult};

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (`BIOME`, `ENV/BIOME`, or a branch name, as `status` takes it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: String,
    /// How much longer it lives, e.g. `3d`, `12h`, `1h30m` (units w, d, h, m, s): counted from
    /// its expiry, or from now when that has passed.
    #[arg(value_parser = crate::arguments::span)]
    span: sandpit_domain::Span,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = sandpit_ops::expiry::extend(context, &args.biome, args.span).await?;
    print(&ExtendResult::from(&outcome), json)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/biomes/{}/extend",
        project_path(project),
        path_segment(&args.biome)
    );
    let request = ExtendRequest {
        span: args.span.to_string(),
    };
    let answer: ExtendResult = remote.change(Method::POST, &path, Some(&request)).await?;
    print(&answer, json)
}

fn print(outcome: &ExtendResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(outcome)?;
    } else {
        println!(
            "biome `{}` {}",
            outcome.biome,
            output::expires_line(&outcome.expires_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}
