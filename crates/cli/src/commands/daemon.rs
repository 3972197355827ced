//! `sandpit daemon [start|stop|status]`: the supervisor in the foreground, or control of the background one.

use std::process::ExitCode;

use sandpit_ops::Context;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Start the background daemon (if none runs); it brings back what ran before it stopped.
    Start,
    /// Stop every component gracefully and stop the daemon (biomes come back at its next start).
    Stop,
    /// Whether a daemon runs for this SANDPIT_HOME.
    Status,
}

/// The reaper of the whole home, in the daemon's process: every `interval`, one pass over every
/// project with biomes (`sandpit_ops::reap::run_home`), its outcome in the daemon's log.
async fn reap_every(
    interval: std::time::Duration,
    context: Context,
    options: sandpit_ops::reap::ReapOptions,
) {
    tracing::info!("reaper: every {}", humantime::format_duration(interval));
    loop {
        tokio::time::sleep(interval).await;
        for (project, outcome) in sandpit_ops::reap::run_home(&context, &options).await {
            match outcome {
                Ok(outcome) if outcome.plan.stop.is_some() || !outcome.failed.is_empty() => {
                    tracing::warn!("{}", outcome.summary())
                }
                Ok(outcome) => tracing::info!("{}", outcome.summary()),
                Err(error) => tracing::warn!("reaper, project {project}: {error:#}"),
            }
        }
    }
}

/// The home's Terraform state backend, in the daemon's process. A daemon without it still
/// supervises (what runs matters more than where Terraform keeps its state); the log says why.
async fn host_terraform_state(home: std::path::PathBuf) {
    match sandpit_tfstate::host(&home).await {
        // A move was logged by `host` already.
        Ok(hosted) => tracing::info!("terraform state backend on http://{}", hosted.addr),
        Err(error) => tracing::error!("the terraform state backend did not start: {error}"),
    }
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    match args.action {
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .init();
            let interval = crate::settings::reap_interval()?;
            let options = sandpit_ops::reap::ReapOptions {
                git_host_timeout: crate::settings::git_host_timeout(),
                ..Default::default()
            };
            let reaper_context = context.clone();
            // Its own thread and runtime: the use cases' futures are not `Send` (as for the
            // server's pipeline queue), and a removal never holds up the supervisor. It ends
            // with the process; a removal cut short is a failed `down` the next run finishes.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name("reaper".to_owned())
                .spawn(move || runtime.block_on(reap_every(interval, reaper_context, options)))?;
            let home = context.home.clone();
            let served = sandpit_runtime::daemon::serve(
                context.supervisor.clone(),
                context.version.clone(),
                || host_terraform_state(home),
            )
            .await;
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Action::Start) => {
            let started = sandpit_ops::daemon_connection::start(context).await?;
            let pid = sandpit_ops::daemon_connection::ping_if_running(context)
                .await?
                .map(|pong| pong.pid);
            if json {
                output::print_json(&serde_json::json!({ "started": started, "pid": pid }))?;
            } else {
                let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                if started {
                    println!("daemon started{pid}");
                } else {
                    println!("daemon already running{pid}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Action::Stop) => {
            let stopped = sandpit_ops::daemon_connection::stop(context).await?;
            if json {
                output::print_json(&serde_json::json!({ "stopped": stopped }))?;
            } else if stopped {
                println!("daemon stopped");
            } else {
                println!("no daemon was running");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Action::Status) => {
            let answer = sandpit_ops::daemon_connection::ping_if_running(context).await?;
            let (pid, version, instances, notices) = match answer {
                Some(pong) => (
                    Some(pong.pid),
                    Some(pong.version),
                    pong.instances,
                    pong.notices,
                ),
                None => (None, None, Vec::new(), Vec::new()),
            };
            let instances_json: Vec<serde_json::Value> = instances
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "project": i.key.project, "env": i.key.env, "name": i.key.name,
                        "state": i.state, "pid": i.pid, "port": i.port, "restarts": i.restarts,
                        "log": i.log,
                    })
                })
                .collect();
            if json {
                output::print_json(&serde_json::json!({
                    "running": pid.is_some(), "pid": pid, "version": version, "instances": instances_json,
                    "notices": notices,
                }))?;
            } else if let Some(pid) = pid {
                println!("daemon running (pid {pid})");
                for i in &instances {
                    println!(
                        "  {} of {}/{}: {} on port {} (pid {})",
                        i.key.name,
                        i.key.project,
                        i.key.env,
                        i.state,
                        i.port,
                        i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
                    );
                }
                for notice in &notices {
                    println!("note: {notice}");
                }
            } else {
                println!("no daemon running");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
