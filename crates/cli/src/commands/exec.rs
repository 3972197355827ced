//! `sandpit exec [BIOME] [--component C] -- CMD ARGS…`: local only (with a control plane
//! configured it needs `--local`).

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

/// The refusal of `exec` with a control plane configured: the command runs here, in the
/// user's checkout, with a biome's secrets, so it needs the biome on this machine.
pub fn local_only() -> anyhow::Error {
    sandpit_ops::error::failure(
        sandpit_ops::error::ErrorKind::InvalidInput,
        "`sandpit exec` runs a command on this machine with a biome's environment (its secrets included), so it works only with biomes of this machine, never through a control plane\nhint: pass --local to run it against this machine's biome",
    )
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
