//! The `sandpit` command line: parses arguments, gathers settings, runs one command, and maps the
//! outcome to an exit code (0 success, 1 failure, 2 usage error).

mod arguments;
mod commands;
mod output;
mod progress;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Production-like environments on demand: biomes built from one commit, every byte traceable.
#[derive(Debug, Parser)]
#[command(name = "sandpit", version, about, propagate_version = true)]
struct Cli {
    /// Run as if sandpit was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Print machine-readable JSON instead of text (read commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented starter sandpit.toml.
    Init(commands::init::Args),
    /// Build every component at a commit into the artifact store.
    Build(commands::build::BuildArgs),
    /// Build, then bring a biome up (or update it) at a commit.
    Up(commands::up::Args),
    /// List the project's biomes.
    Ls,
    /// Show one biome's components and their state.
    Status(commands::status::Args),
    /// Show a biome's logs, every component interleaved in time, or one component's.
    Logs(commands::logs::Args),
    /// Stop a biome and remove it.
    Down(commands::down::Args),
    /// List the project's artifacts (the build store, or an environment's store).
    Artifacts(commands::artifacts::Args),
    /// Build (or reuse) a commit and deploy it to an environment's base.
    Deploy(commands::deploy::Args),
    /// Deploy exactly what runs in one environment into the next, without rebuilding.
    Promote(commands::promote::Args),
    /// Approve a pending deployment into a protected environment.
    Approve(commands::approve::ApproveArgs),
    /// Reject a pending deployment.
    Reject(commands::approve::RejectArgs),
    /// Redeploy the previous (or a named) successful deployment, without rebuilding.
    Rollback(commands::rollback::Args),
    /// Operations on a whole environment: `env destroy ENV --confirm ENV`.
    Env(commands::env::Args),
    /// List the deployments into a target (ENV, ENV/BIOME or BIOME).
    History(commands::history::Args),
    /// Where a commit, digest or artifact runs, every deployment of it, and its provenance.
    Trace(commands::trace::Args),
    /// Re-hash every stored and running artifact; exit 1 if any does not match its digest.
    Verify(commands::verify::Args),
    /// Remove artifacts no retained deployment refers to from environment stores.
    Gc(commands::gc::Args),
    /// Run the supervisor in the foreground, or manage the background one.
    Daemon(commands::daemon::Args),
    /// Run an environment's model endpoint (started by the daemon).
    #[command(hide = true)]
    ModelServer(commands::model_server::Args),
    /// Copy a component's output into its log as timestamped records (started by the daemon).
    #[command(hide = true)]
    LogWriter(commands::log_writer::Args),
    /// Print a JSON Schema of sandpit.toml, for editor completion
    ///
    /// `sandpit schema > sandpit.schema.json` writes it next to sandpit.toml; point the editor at
    /// it (with Taplo or "Even Better TOML": `#:schema ./sandpit.schema.json` as the first line).
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(code) => code,
        Err(error) => {
            output::print_error(&error);
            if json {
                // Scripts reading `--json` always get JSON, failures included.
                output::print_json_error(&error);
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        // Started by the daemon with an empty environment: it needs no settings, only its pipes.
        Command::LogWriter(args) => return commands::log_writer::exec(args).await,
        command => command,
    };
    let context = settings::context(cli.directory.as_deref())?;
    let json = cli.json;
    match command {
        Command::Init(args) => commands::init::exec(&context, args),
        Command::Build(args) => commands::build::exec(&context, args, json),
        Command::Up(args) => commands::up::exec(&context, args, json).await,
        Command::Ls => commands::ls::exec(&context, json).await,
        Command::Status(args) => commands::status::exec(&context, args, json).await,
        Command::Logs(args) => commands::logs::exec(&context, args, json).await,
        Command::Down(args) => commands::down::exec(&context, args, json).await,
        Command::Artifacts(args) => commands::artifacts::exec(&context, args, json),
        Command::Deploy(args) => commands::deploy::exec(&context, args, json).await,
        Command::Promote(args) => commands::promote::exec(&context, args, json).await,
        Command::Approve(args) => commands::approve::approve(&context, args, json).await,
        Command::Reject(args) => commands::approve::reject(&context, args, json),
        Command::Rollback(args) => commands::rollback::exec(&context, args, json).await,
        Command::Env(args) => commands::env::exec(&context, args, json).await,
        Command::History(args) => commands::history::exec(&context, args, json),
        Command::Trace(args) => commands::trace::exec(&context, args, json).await,
        Command::Verify(args) => commands::verify::exec(&context, args, json).await,
        Command::Gc(args) => commands::gc::exec(&context, args, json).await,
        Command::Daemon(args) => commands::daemon::exec(&context, args, json).await,
        Command::ModelServer(args) => commands::model_server::exec(&context, args).await,
        Command::LogWriter(_) => {
            unreachable!("the log writer is started before the settings are read")
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sandpit_spec::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
