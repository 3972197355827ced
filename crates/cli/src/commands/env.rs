//! `sandpit env [BIOME] [--component C] [--show-secrets] [--json]`: what a component of a biome
//! gets as its environment; and `sandpit env destroy ENV --confirm ENV`: operations on an
//! environment as a whole.

use std::collections::BTreeMap;
use std::process::ExitCode;

use sandpit_ops::Context;
use serde::Serialize;

use crate::output;

/// A biome named like a subcommand (`destroy`) is written `ENV/destroy` here.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The biome whose environment to show (default: the current branch's, named as `up` names
    /// it). A biome named `destroy` is written `ENV/destroy`.
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// The component (default: the biome's first service in start order, else its first job).
    #[arg(long, short, value_name = "COMPONENT", value_parser = crate::arguments::name)]
    component: Option<String>,
    /// Show the values of secrets (DATABASE_URL, with its password) instead of `********`.
    #[arg(long)]
    show_secrets: bool,
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

/// `env --json`: every variable, sorted, a secret's value `null` unless `--show-secrets`, and
/// the names of the secrets.
#[derive(Debug, Serialize)]
struct EnvJson<'a> {
    biome: &'a str,
    component: &'a str,
    vars: BTreeMap<&'a str, Option<&'a str>>,
    secret: Vec<&'a str>,
}

/// What stands for a secret's value in the text output.
const MASK: &str = "********";

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    match args.action {
        None => show(context, args.show, json).await,
        Some(Action::Destroy { env, confirm }) => {
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
            output::print_deploy_outcome(&(&outcome).into(), json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn show(context: &Context, args: ShowArgs, json: bool) -> anyhow::Result<ExitCode> {
    let env =
        sandpit_ops::env::environment(context, args.biome.as_deref(), args.component.as_deref())
            .await?;
    let shown = env.shown(args.show_secrets);
    if json {
        output::print_json(&EnvJson {
            biome: env.status.biome.as_str(),
            component: env.component.as_str(),
            vars: shown,
            secret: env.secret_names.iter().map(String::as_str).collect(),
        })?;
    } else {
        // On stderr, so stdout is only the variables.
        eprintln!(
            "environment of `{}` in biome `{}`{}",
            env.component,
            env.status.biome,
            if args.show_secrets || env.secret_names.is_empty() {
                ""
            } else {
                " (secrets masked; --show-secrets shows them)"
            }
        );
        for (name, value) in shown {
            println!("{name}={}", value.unwrap_or(MASK));
        }
    }
    Ok(ExitCode::SUCCESS)
}
