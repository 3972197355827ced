//! `sandpit exec [BIOME] [--component C] -- CMD ARGS…`

use std::process::ExitCode;

use sandpit_ops::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// The component whose environment the command gets (default: the biome's first service in
    /// start order, else its first job).
    #[arg(long, short, value_name = "COMPONENT", value_parser = crate::arguments::name)]
    component: Option<String>,
    /// The command and its arguments, after `--`. It runs in the current directory (your
    /// checkout, not the component's extracted artifact) with exactly the component's
    /// environment (its variables, secrets such as DATABASE_URL, PORT, SANDPIT_URL_<SERVICE>,
    /// SANDPIT_MODELS_URL) plus your TERM; its exit code is sandpit's.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let code = sandpit_ops::exec::exec(
        context,
        args.biome.as_deref(),
        args.component.as_deref(),
        &args.command,
    )
    .await?;
    Ok(ExitCode::from(code))
}
