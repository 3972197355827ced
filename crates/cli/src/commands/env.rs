//! `sandpit env destroy ENV --confirm ENV`: operations on an environment as a whole.

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Stop an environment's base deployment and drop its database (recorded in history; a
    /// protected environment needs approvals first). Its biomes are left alone.
    Destroy {
        /// The environment.
        #[arg(value_parser = crate::arguments::name)]
        env: String,
        /// The environment's name again, to confirm.
        #[arg(long, value_name = "ENV", required = true)]
        confirm: String,
    },
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Destroy { env, confirm } => {
            let outcome = sandpit_ops::destroy::destroy(
                context,
                &env,
                &confirm,
                &mut |component, message| {
                    if !json {
                        output::print_event(component, message);
                    }
                },
            )
            .await?;
            output::print_deploy_outcome(&outcome, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
