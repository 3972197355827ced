//! Reaching the supervisor daemon, starting it in the background when none runs for this
//! `$SANDPIT_HOME` (or the last one died and left its socket behind).

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sandpit_domain::Name;
use sandpit_runtime::protocol::{BiomeStatus, Request};
use sandpit_runtime::{Client, ClientError, DaemonPaths};

use crate::Context;

/// How long a freshly started daemon may take to open its socket (it reconciles first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon of this `$SANDPIT_HOME`, started first if none answers: for verbs that change
/// what runs.
pub async fn started(context: &Context) -> anyhow::Result<Client> {
    connect_or_start(context).await
}

/// The daemon if one already runs; `None` otherwise. Reads use this: starting a daemon would
/// bring stopped biomes back as a side effect of looking at them.
pub async fn if_running(context: &Context) -> Option<Client> {
    Client::connect(&DaemonPaths::for_home(&context.home).socket)
        .await
        .ok()
}

/// The running daemon, or [`DaemonNotRunning`] for a read that cannot answer without one.
pub async fn running(context: &Context) -> anyhow::Result<Client> {
    if_running(context).await.ok_or_else(|| {
        DaemonNotRunning {
            home: context.home.display().to_string(),
        }
        .into()
    })
}

/// Every biome of `project` the daemon runs; `None` when no daemon runs (never starts one).
pub async fn list_if_running(
    context: &Context,
    project: &Name,
) -> anyhow::Result<Option<Vec<BiomeStatus>>> {
    match if_running(context).await {
        Some(client) => Ok(Some(answer(client.list(Some(project.clone())).await)?)),
        None => Ok(None),
    }
}

/// [`list_if_running`] without the biomes' components (what `ls` shows).
pub async fn list_brief_if_running(
    context: &Context,
    project: &Name,
) -> anyhow::Result<Option<Vec<BiomeStatus>>> {
    match if_running(context).await {
        Some(client) => Ok(Some(answer(
            client.list_brief(Some(project.clone())).await,
        )?)),
        None => Ok(None),
    }
}

/// One biome's status; `None` when no daemon runs or it does not know the biome.
pub async fn status_if_running(
    context: &Context,
    project: &Name,
    biome: &Name,
) -> Option<BiomeStatus> {
    if_running(context)
        .await?
        .status(project.clone(), biome.clone())
        .await
        .ok()
}

/// What the running daemon says of itself; `None` when none runs (never starts one).
pub async fn ping_if_running(
    context: &Context,
) -> anyhow::Result<Option<sandpit_runtime::client::Pong>> {
    match if_running(context).await {
        Some(client) => Ok(Some(answer(client.ping().await)?)),
        None => Ok(None),
    }
}

/// A daemon's answer as the error a user reads.
pub fn answer<T>(result: Result<T, ClientError>) -> anyhow::Result<T> {
    result.map_err(into_user_error)
}

/// What a read command says when no daemon runs: it never starts one (starting it would bring
/// biomes back to life as a side effect of looking at them).
#[derive(Debug, thiserror::Error)]
#[error(
    "the sandpit daemon is not running (for SANDPIT_HOME {home}), so nothing runs now\nhint: `sandpit daemon start` starts it and brings back what ran before it stopped"
)]
pub struct DaemonNotRunning {
    pub home: String,
}

/// Starts the daemon unless one runs; `true` when this call started it.
pub async fn start(context: &Context) -> anyhow::Result<bool> {
    let paths = DaemonPaths::for_home(&context.home);
    // A daemon that was just killed may still accept a connection before it goes: only one that
    // answers counts as running.
    if let Ok(client) = Client::connect(&paths.socket).await {
        if client.ping().await.is_ok() {
            return Ok(false);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while another_daemon_holds_the_lock(&paths) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    connect_or_start(context).await?;
    Ok(true)
}

/// The daemon's failure as the error a user reads, keeping its type (its kind, for
/// `error::kind_of`).
pub fn into_user_error(error: ClientError) -> anyhow::Error {
    anyhow::Error::new(error)
}

/// Connects to the daemon, starting it when no daemon answers.
pub async fn connect_or_start(context: &Context) -> anyhow::Result<Client> {
    let paths = DaemonPaths::for_home(&context.home);
    if let Ok(client) = Client::connect(&paths.socket).await {
        return Ok(client);
    }
    fs::create_dir_all(&context.home)
        .with_context(|| format!("cannot create SANDPIT_HOME {}", context.home.display()))?;
    // 0600: a component that failed to recover is logged with the tail of its own log, which
    // may show a secret it was given.
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(sandpit_runtime::owner_only::FILE_MODE)
        .open(&paths.log_file)
        .with_context(|| format!("cannot open {}", paths.log_file.display()))?;
    sandpit_runtime::owner_only::repair(&paths.log_file, sandpit_runtime::owner_only::FILE_MODE)
        .with_context(|| format!("cannot make {} private", paths.log_file.display()))?;
    let log_size_before = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut daemon = Command::new(&context.executable)
        .arg("daemon")
        .env("SANDPIT_HOME", &context.home)
        // Its reaper records what it removes in the same store as whoever started it.
        .env("SANDPIT_STATE", state_variable(&context.state))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        // Its own process group: a Ctrl-C in this terminal must not reach the daemon.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the daemon {}", context.executable.display()))?;
    let started = Instant::now();
    loop {
        if let Ok(client) = Client::connect(&paths.socket).await {
            // Reap it later from nobody: it outlives us by design. Forget the handle.
            drop(daemon);
            return Ok(client);
        }
        if let Some(status) = daemon.try_wait()? {
            let log_text = fs::read_to_string(&paths.log_file).unwrap_or_default();
            let new_lines = log_text
                .get(log_size_before as usize..)
                .unwrap_or(&log_text);
            // Another CLI call may have started a daemon at the same moment (ours then lost the
            // race for the lock): wait for that one instead.
            if another_daemon_holds_the_lock(&paths) {
                return wait_for_socket(&paths, started).await;
            }
            if let Ok(client) = Client::connect(&paths.socket).await {
                return Ok(client);
            }
            bail!(
                "the sandpit daemon exited during start ({status}):\n{}\n(full log: {})",
                new_lines.trim(),
                paths.log_file.display()
            );
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the sandpit daemon did not open {} within {}s; see {}",
                paths.socket.display(),
                START_TIMEOUT.as_secs(),
                paths.log_file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether some process holds the daemon lock of this `$SANDPIT_HOME` (a daemon starting up).
fn another_daemon_holds_the_lock(paths: &DaemonPaths) -> bool {
    let Ok(file) = OpenOptions::new().write(true).open(&paths.lock_file) else {
        return false;
    };
    matches!(
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

async fn wait_for_socket(paths: &DaemonPaths, started: Instant) -> anyhow::Result<Client> {
    loop {
        if let Ok(client) = Client::connect(&paths.socket).await {
            return Ok(client);
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the sandpit daemon did not open {} within {}s; see {}",
                paths.socket.display(),
                START_TIMEOUT.as_secs(),
                paths.log_file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks the daemon to stop every component and exit; waits until it has.
pub async fn stop(context: &Context) -> anyhow::Result<bool> {
    let paths = DaemonPaths::for_home(&context.home);
    let pid = fs::read_to_string(&paths.pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    let Ok(client) = Client::connect(&paths.socket).await else {
        return Ok(false);
    };
    match client.request(&Request::Shutdown, |_, _| {}).await {
        // A daemon that is shutting down may close the connection before its answer is out.
        Ok(_) | Err(ClientError::Disconnected(_)) => {}
        Err(ClientError::NotRunning(_)) => return Ok(false),
        Err(error) => return Err(into_user_error(error)),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // The socket disappears last, after every component is stopped.
    while paths.socket.exists() || pid.is_some_and(process_alive) {
        if Instant::now() > deadline {
            bail!(
                "the daemon did not stop within 60s; see {}",
                paths.log_file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(true)
}

fn process_alive(pid: i32) -> bool {
    sandpit_runtime::process::stat(pid as u32).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// `SANDPIT_STATE`'s value naming `location` (a SQLite path or the PostgreSQL URL).
fn state_variable(location: &sandpit_state::StateLocation) -> std::ffi::OsString {
    match location {
        sandpit_state::StateLocation::Sqlite(path) => path.clone().into_os_string(),
        sandpit_state::StateLocation::Postgres(url) => url.into(),
    }
}
