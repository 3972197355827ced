//! `sandpit psql [BIOME] [-- ARGS…]`

use std::process::ExitCode;

use sandpit_ops::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// Arguments for psql, after `--` (e.g. `-- -c 'select 1'`). The connection (the biome's
    /// DATABASE_URL, password included) is given to psql in PGHOST, PGPORT, PGUSER, PGPASSWORD
    /// and PGDATABASE, never on its command line.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub async fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let code = sandpit_ops::psql::psql(context, args.biome.as_deref(), &args.args).await?;
    Ok(ExitCode::from(code))
}
