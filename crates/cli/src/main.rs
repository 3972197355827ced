//! The `sandpit` command line: parses arguments, gathers settings, runs one command, and maps the
//! outcome to an exit code (0 success, 1 failure, 2 usage error).

mod arguments;
mod checkout;
mod commands;
mod output;
mod progress;
mod remote;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// Production-like environments on demand, every byte traceable to a commit
///
/// sandpit runs a project (a git repository with a sandpit.toml) in long-lived shared
/// environments (dev, test, prod) and in cheap personal or per-branch sub-environments called
/// biomes. It builds each component from a commit (never from the working tree, unless
/// --allow-dirty says so) into <component>-<sha>.zip with a sha256 digest and a provenance
/// record; brings a biome up with its own database on the environment's PostgreSQL instance and
/// its own model versions on the environment's model endpoint; deploys to an environment,
/// promotes the same bytes to the next, rolls back, and traces where a commit runs.
///
/// Start with `sandpit init`, commit, then `sandpit up`. Every read command takes --json.
/// Exit codes: 0 success, 1 failure, 2 usage error.
#[derive(Debug, Parser)]
#[command(
    name = "sandpit",
    version,
    propagate_version = true,
    verbatim_doc_comment
)]
struct Cli {
    /// Run as if sandpit was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Print machine-readable JSON instead of text (read commands).
    #[arg(long, global = true)]
    json: bool,
    /// The control plane to talk to (`login`, `tokens`, `projects`, `pipeline`; `approve` and
    /// `reject` go through it when one is set), e.g. http://127.0.0.1:7780.
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// The API token to send it (prefer `sandpit login` or SANDPIT_TOKEN: a command line is
    /// visible to other users).
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// With a control plane: the project to act on (default: the `[project] name` of the
    /// sandpit.toml here).
    #[arg(long, global = true, value_name = "NAME")]
    project: Option<String>,
    /// Act on this machine even when a control plane is configured (`sandpit login`,
    /// SANDPIT_SERVER): unpushed work, this machine's own biomes.
    #[arg(long, global = true)]
    local: bool,
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
    /// Show one biome's components, their state, and the models it is answered with.
    Status(commands::status::Args),
    /// Show a biome's logs, every component interleaved in time, or one component's.
    Logs(commands::logs::Args),
    /// Stop a biome and remove it.
    Down(commands::down::Args),
    /// Let a biome live longer before the reaper removes it (`extend BIOME 3d`).
    Extend(commands::extend::Args),
    /// Remove expired biomes, and merge requests' biomes GitLab confirms closed: one pass, each
    /// biome's verdict and why (`--dry-run` lists only).
    Reap(commands::reap::Args),
    /// Run a command with the environment a component of a biome gets (secrets included).
    Exec(commands::exec::Args),
    /// Run psql connected to a biome's database.
    Psql(commands::psql::Args),
    /// Restart a component of a biome, or all its services, and wait until healthy.
    Restart(commands::restart::Args),
    /// Put a biome to sleep: its processes stop and its models unload, its data and database
    /// stay; the next request through the gateway wakes it.
    Sleep(commands::sleep::Args),
    /// Wake a sleeping biome and wait until its services are healthy.
    Wake(commands::sleep::Args),
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
    /// Show what a component of a biome gets as its environment (`env [BIOME]`); operations on
    /// a whole environment (`env destroy ENV --confirm ENV`).
    Env(commands::env::Args),
    /// List a target's configuration variables and secrets, or `set`/`unset` them.
    Config(commands::config::Args),
    /// List the deployments into a target (ENV, ENV/BIOME or BIOME).
    History(commands::history::Args),
    /// Where a commit, digest or artifact runs, every deployment of it, and its provenance.
    Trace(commands::trace::Args),
    /// Re-hash every stored and running artifact; exit 1 if any does not match its digest.
    Verify(commands::verify::Args),
    /// Remove from the stores what no deployment, biome or newest build needs.
    Gc(commands::gc::Args),
    /// A Terraform component's state on this machine: its versions and lock (`tf state`), or
    /// clearing a lock a killed run left (`tf unlock`).
    Tf(commands::tf::Args),
    /// Run the supervisor in the foreground, or manage the background one.
    Daemon(commands::daemon::Args),
    /// Check every prerequisite; say what is missing and the command that fixes it.
    Doctor(commands::doctor::Args),
    /// Run the team control plane's HTTP API in the foreground (tokens, roles, the use cases).
    Server(commands::server::Args),
    /// Check a token with a control plane and store it for `--server URL`.
    Login(commands::login::Args),
    /// Create, list and revoke the control plane's API tokens (admin).
    Tokens(commands::tokens::Args),
    /// Register, list, show and remove the projects a control plane builds (through the server).
    Projects(commands::projects::Args),
    /// Run a pipeline for a pushed commit, show one (`pipeline ID [--logs] [-f]`), or retry one.
    Pipeline(commands::pipeline::Args),
    /// List a control plane's pipelines, newest first: every project's, or `--project`'s.
    Pipelines(commands::pipeline::ListArgs),
    /// Inside a GitLab CI job: do what the matching webhook would (docs/gitlab-ci.yml), follow
    /// the pipeline's log and exit with its result.
    Ci(commands::ci::Args),
    /// List a control plane's webhook deliveries, newest first: what each started, or why not.
    Hooks(commands::hooks::Args),
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

/// The command line, with the environment variables sandpit reads listed under `--help`.
fn command() -> clap::Command {
    Cli::command().after_help(settings::variables_help())
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|error| error.exit());
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
    // The daemon and the model endpoint log to their own files, with their own filters.
    if !matches!(command, Command::Daemon(_) | Command::ModelServer(_)) {
        // The server logs its faults (under request ids) even when nothing else is asked for.
        let filter = settings::diagnostics_filter().or_else(|| {
            matches!(command, Command::Server(_)).then(|| "warn,sandpit_server=info".to_owned())
        });
        if let Some(filter) = filter {
            let filter = tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| {
                anyhow::anyhow!("SANDPIT_LOG `{filter}` is not a filter: {e}\nhint: e.g. SANDPIT_LOG=debug or SANDPIT_LOG=sandpit_database::steps=debug")
            })?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
        }
    }
    let json = cli.json;
    // Clients of a control plane need no SANDPIT_HOME of their own.
    match command {
        Command::Login(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            return commands::login::exec(&remote, args, json).await;
        }
        Command::Tokens(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            return commands::tokens::exec(&remote, args, json).await;
        }
        Command::Projects(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            return commands::projects::exec(&remote, args, json).await;
        }
        Command::Pipeline(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            let project = cli.project.as_deref();
            let directory = cli.directory.as_deref();
            return commands::pipeline::exec(&remote, project, directory, args, json).await;
        }
        Command::Pipelines(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            return commands::pipeline::list(&remote, cli.project.as_deref(), args, json).await;
        }
        Command::Hooks(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            return commands::hooks::exec(&remote, cli.project.as_deref(), args, json).await;
        }
        Command::Ci(args) => {
            let remote = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            let variables = settings::gitlab_ci_variables();
            let (project, directory) = (cli.project.as_deref(), cli.directory.as_deref());
            return commands::ci::exec(&remote, project, directory, &variables, args, json).await;
        }
        command => {
            if cli.local {
                return run_local(cli.directory.as_deref(), command, json).await;
            }
            let settings = settings::remote(cli.server.as_deref(), cli.token.as_deref())?;
            if !settings.configured() {
                return run_local(cli.directory.as_deref(), command, json).await;
            }
            // A decision through the server is the token's user's; it needs no project.
            let command = match command {
                Command::Approve(args) => {
                    let remote = remote::Remote::from_settings(&settings)?;
                    return commands::approve::approve_remote(&remote, args, json).await;
                }
                Command::Reject(args) => {
                    let remote = remote::Remote::from_settings(&settings)?;
                    return commands::approve::reject_remote(&remote, args, json).await;
                }
                Command::Exec(_) => return Err(commands::exec::local_only()),
                Command::Tf(_) => return Err(commands::tf::local_only()),
                command => command,
            };
            match RemoteCommand::of(command) {
                Ok(remote_command) => {
                    let remote = remote::Remote::from_settings(&settings)?;
                    let project =
                        remote::project_name(cli.project.as_deref(), cli.directory.as_deref())?;
                    run_remote(
                        &remote,
                        &project,
                        cli.directory.as_deref(),
                        remote_command,
                        json,
                    )
                    .await
                }
                Err(command) => run_local(cli.directory.as_deref(), *command, json).await,
            }
        }
    }
}

/// The commands that act on a control plane's project when one is configured.
enum RemoteCommand {
    Ls,
    Up(commands::up::Args),
    Down(commands::down::Args),
    Extend(commands::extend::Args),
    Restart(commands::restart::Args),
    Sleep(commands::sleep::Args),
    Wake(commands::sleep::Args),
    Deploy(commands::deploy::Args),
    Promote(commands::promote::Args),
    Rollback(commands::rollback::Args),
    Status(commands::status::Args),
    History(commands::history::Args),
    Trace(commands::trace::Args),
    Artifacts(commands::artifacts::Args),
    Logs(commands::logs::Args),
    Config(commands::config::Args),
}

impl RemoteCommand {
    /// `command` as a remote one, or back when it runs on this machine anyway.
    fn of(command: Command) -> Result<RemoteCommand, Box<Command>> {
        match command {
            Command::Ls => Ok(RemoteCommand::Ls),
            Command::Up(args) => Ok(RemoteCommand::Up(args)),
            Command::Down(args) => Ok(RemoteCommand::Down(args)),
            Command::Extend(args) => Ok(RemoteCommand::Extend(args)),
            Command::Restart(args) => Ok(RemoteCommand::Restart(args)),
            Command::Sleep(args) => Ok(RemoteCommand::Sleep(args)),
            Command::Wake(args) => Ok(RemoteCommand::Wake(args)),
            Command::Deploy(args) => Ok(RemoteCommand::Deploy(args)),
            Command::Promote(args) => Ok(RemoteCommand::Promote(args)),
            Command::Rollback(args) => Ok(RemoteCommand::Rollback(args)),
            Command::Status(args) => Ok(RemoteCommand::Status(args)),
            Command::History(args) => Ok(RemoteCommand::History(args)),
            Command::Trace(args) => Ok(RemoteCommand::Trace(args)),
            Command::Artifacts(args) => Ok(RemoteCommand::Artifacts(args)),
            Command::Logs(args) => Ok(RemoteCommand::Logs(args)),
            // Listing and changing alike.
            Command::Config(args) => Ok(RemoteCommand::Config(args)),
            other => Err(Box::new(other)),
        }
    }
}

async fn run_remote(
    remote: &remote::Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    command: RemoteCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use commands::*;
    match command {
        RemoteCommand::Ls => ls::exec_remote(remote, project, json).await,
        RemoteCommand::Up(args) => up::exec_remote(remote, project, directory, args, json).await,
        RemoteCommand::Down(args) => {
            down::exec_remote(remote, project, directory, args, json).await
        }
        RemoteCommand::Extend(args) => extend::exec_remote(remote, project, args, json).await,
        RemoteCommand::Restart(args) => {
            restart::exec_remote(remote, project, directory, args, json).await
        }
        RemoteCommand::Sleep(args) => {
            sleep::exec_remote(remote, project, directory, args, true, json).await
        }
        RemoteCommand::Wake(args) => {
            sleep::exec_remote(remote, project, directory, args, false, json).await
        }
        RemoteCommand::Deploy(args) => {
            deploy::exec_remote(remote, project, directory, args, json).await
        }
        RemoteCommand::Promote(args) => promote::exec_remote(remote, project, args, json).await,
        RemoteCommand::Rollback(args) => rollback::exec_remote(remote, project, args, json).await,
        RemoteCommand::Status(args) => {
            commands::status::exec_remote(remote, project, directory, args, json).await
        }
        RemoteCommand::History(args) => {
            commands::history::exec_remote(remote, project, args, json).await
        }
        RemoteCommand::Trace(args) => {
            commands::trace::exec_remote(remote, project, args, json).await
        }
        RemoteCommand::Artifacts(args) => {
            commands::artifacts::exec_remote(remote, project, args, json).await
        }
        RemoteCommand::Logs(args) => {
            commands::logs::exec_remote(remote, project, directory, args, json).await
        }
        RemoteCommand::Config(args) => {
            config::exec_remote(remote, project, directory, args, json).await
        }
    }
}

async fn run_local(
    directory: Option<&std::path::Path>,
    command: Command,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let context = settings::context(directory)?;
    match command {
        Command::Init(args) => commands::init::exec(&context, args),
        Command::Build(args) => commands::build::exec(&context, args, json),
        Command::Up(args) => commands::up::exec(&context, args, json).await,
        Command::Ls => commands::ls::exec(&context, json).await,
        Command::Status(args) => commands::status::exec(&context, args, json).await,
        Command::Logs(args) => commands::logs::exec(&context, args, json).await,
        Command::Down(args) => commands::down::exec(&context, args, json).await,
        Command::Extend(args) => commands::extend::exec(&context, args, json).await,
        Command::Reap(args) => {
            let timeout = settings::git_host_timeout();
            commands::reap::exec(&context, args, timeout, json).await
        }
        Command::Exec(args) => commands::exec::exec(&context, args).await,
        Command::Psql(args) => commands::psql::exec(&context, args).await,
        Command::Restart(args) => commands::restart::exec(&context, args, json).await,
        Command::Sleep(args) => commands::sleep::sleep(&context, args, json).await,
        Command::Wake(args) => commands::sleep::wake(&context, args, json).await,
        Command::Artifacts(args) => commands::artifacts::exec(&context, args, json),
        Command::Deploy(args) => commands::deploy::exec(&context, args, json).await,
        Command::Promote(args) => commands::promote::exec(&context, args, json).await,
        Command::Approve(args) => commands::approve::approve(&context, args, json).await,
        Command::Reject(args) => commands::approve::reject(&context, args, json),
        Command::Rollback(args) => commands::rollback::exec(&context, args, json).await,
        Command::Env(args) => commands::env::exec(&context, args, json).await,
        Command::Config(args) => commands::config::exec(&context, args, json).await,
        Command::History(args) => commands::history::exec(&context, args, json),
        Command::Trace(args) => commands::trace::exec(&context, args, json).await,
        Command::Verify(args) => commands::verify::exec(&context, args, json).await,
        Command::Gc(args) => commands::gc::exec(&context, args, json).await,
        Command::Tf(args) => commands::tf::exec(&context, args, json),
        Command::Daemon(args) => commands::daemon::exec(&context, args, json).await,
        Command::Doctor(args) => commands::doctor::exec(&context, args, json).await,
        Command::ModelServer(args) => commands::model_server::exec(&context, args).await,
        Command::Server(args) => commands::server::exec(&context, args).await,
        Command::Login(_)
        | Command::Tokens(_)
        | Command::Projects(_)
        | Command::Pipeline(_)
        | Command::Pipelines(_)
        | Command::Ci(_)
        | Command::Hooks(_) => {
            unreachable!("clients of a control plane are run before the settings are read")
        }
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
    /// Every command and argument the user can reach, as `path: what is missing`.
    fn undocumented(command: &clap::Command, path: &str) -> Vec<String> {
        let mut missing = Vec::new();
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if ["help", "version"].contains(&id) || argument.is_hide_set() {
                continue;
            }
            if argument.get_help().is_none() && argument.get_long_help().is_none() {
                missing.push(format!("{path}: argument `{id}` has no help"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" || sub.is_hide_set() {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(format!("{sub_path}: command has no description"));
            }
            missing.extend(undocumented(sub, &sub_path));
        }
        missing
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_has_a_description() {
        let mut command = super::command();
        command.build();
        assert!(command.get_about().is_some());
        let missing = undocumented(&command, "sandpit");
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        // The walk sees what it must: subcommands of subcommands, positionals and flags.
        let daemon = command.find_subcommand("daemon").unwrap();
        assert!(daemon.get_subcommands().count() > 0);
        let status = command.find_subcommand("status").unwrap();
        assert!(status.get_arguments().any(|a| a.get_id() == "biome"));
        assert!(status.get_arguments().any(|a| a.get_id() == "show_secrets"));
    }

    #[test]
    fn help_describes_sandpit_and_lists_the_variables_it_reads() {
        let help = super::command().render_long_help().to_string();
        assert!(!help.contains("sandpit-ops"), "{help}");
        assert!(
            help.contains("biomes") && help.contains("environments"),
            "{help}"
        );
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (names, meaning) in crate::settings::VARIABLES {
            assert!(
                flat.contains(names) && flat.contains(meaning),
                "{names}: {help}"
            );
        }
        let variables = crate::settings::variables_help();
        assert!(
            variables.lines().all(|line| line.len() <= 100),
            "{variables}"
        );
    }
}
