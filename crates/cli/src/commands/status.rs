//! `sandpit status [BIOME] [--show-secrets] [--json]`: on this machine, or with a control plane,
//! on the server's (never with secrets).

use std::path::Path;
use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::biome::BiomeDocument;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

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
    let cost = sandpit_ops::status::cost(context, &status).await?;
    let expiry =
        sandpit_ops::expiry::of_biome(context, &status.project, &status.env, &status.biome)?;
    let terraform =
        sandpit_ops::terraform::overview(context, &status.project, &status.env, &status.biome);
    let pending = sandpit_ops::status::pending(context, &status)?;
    print(
        &BiomeDocument::new(&status, database_url)
            .with_models(&models)
            .with_cost(&cost)
            .with_expiry(expiry.as_ref())
            .with_terraform(&terraform)
            .with_pending(&pending),
        json,
    )
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if args.show_secrets {
        sandpit_ops::fail!(
            InvalidInput,
            "a control plane never sends secrets, so `status --show-secrets` works only on the machine that runs the biome\nhint: there, run `sandpit status --show-secrets --local`"
        );
    }
    let biome = crate::checkout::biome_or_branch(args.biome, directory)?;
    let path = format!("{}/status/{}", project_path(project), path_segment(&biome));
    let detail: BiomeDocument = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&detail, json)
}

fn print(detail: &BiomeDocument, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(detail)?;
    } else {
        output::print_biome(detail);
    }
    Ok(ExitCode::SUCCESS)
}
