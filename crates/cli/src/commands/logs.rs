//! `sandpit logs BIOME COMPONENT [-f] [--tail N]`

use std::process::ExitCode;

use sandpit_ops::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (or environment, for its base) the component runs in.
    #[arg(value_parser = crate::arguments::biome)]
    biome: String,
    /// The service or job whose log to show.
    #[arg(value_parser = crate::arguments::name)]
    component: String,
    /// Keep printing what the component writes, until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// How many of the last lines to print first.
    #[arg(long, default_value_t = 100)]
    tail: usize,
}

pub async fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let path = sandpit_ops::logs::log_path(context, Some(&args.biome), &args.component).await?;
    let mut stdout = std::io::stdout().lock();
    sandpit_ops::logs::show(path, args.tail, args.follow, &mut stdout).await?;
    Ok(ExitCode::SUCCESS)
}
