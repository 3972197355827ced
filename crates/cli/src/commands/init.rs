//! `sandpit init [--name NAME]`

use std::process::ExitCode;

use sandpit_ops::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Project name (a DNS label); defaults to the directory's name.
    #[arg(long, value_parser = crate::arguments::name)]
    name: Option<String>,
}

pub fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let path = sandpit_ops::init::init(context.source.checkout_dir("init")?, args.name.as_deref())?;
    println!("wrote {}", path.display());
    println!("next: edit it, commit it, then run `sandpit up`");
    Ok(ExitCode::SUCCESS)
}
