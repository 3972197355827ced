//! The supervisor daemon: one per `$SANDPIT_HOME`, serving the protocol on a Unix socket that only
//! its user can reach (a 0700 directory holding a 0600 socket).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::protocol::{Reply, ReplyBody, Request};
use crate::supervisor::{BiomeKey, Supervisor, SupervisorConfig};

/// The longest request line accepted; a biome spec is a few kilobytes.
const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

/// How often the daemon looks for biomes idle past their `idle_timeout`.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Where the daemon of a `$SANDPIT_HOME` keeps its socket, pid and lock.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub lock_file: PathBuf,
    pub log_file: PathBuf,
}

impl DaemonPaths {
    pub fn for_home(home: &Path) -> DaemonPaths {
        let run_dir = home.join("run");
        DaemonPaths {
            socket: run_dir.join("daemon.sock"),
            pid_file: run_dir.join("daemon.pid"),
            lock_file: run_dir.join("daemon.lock"),
            log_file: home.join("daemon.log"),
            run_dir,
        }
    }
}

/// Runs the daemon until SIGTERM, SIGINT or a `shutdown` request.
///
/// `host_beside` starts what the daemon hosts besides the supervisor (the Terraform state
/// backend, which lives in a crate above this one): it runs once this daemon holds the home's
/// lock, so a second daemon that is about to be refused never takes those ports, and before the
/// daemon answers its first request, so whoever reaches the daemon finds them serving.
pub async fn serve<Host, Hosting>(
    config: SupervisorConfig,
    version: String,
    host_beside: Host,
) -> anyhow::Result<()>
where
    Host: FnOnce() -> Hosting,
    Hosting: std::future::Future<Output = ()>,
{
    let paths = DaemonPaths::for_home(&config.home);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&paths.run_dir)
        .with_context(|| format!("cannot create {}", paths.run_dir.display()))?;
    fs::set_permissions(&paths.run_dir, fs::Permissions::from_mode(0o700))?;
    // The supervisor's `runtime/`: component logs, working and data directories. A component may
    // print the secrets it is given, so nobody else may look (an older version made it 0755).
    let runtime_dir = config.home.join("runtime");
    crate::owner_only::create_dir(&runtime_dir)
        .with_context(|| format!("cannot make {} private", runtime_dir.display()))?;
    let _lock = take_lock(&paths)?;
    host_beside().await;
    if paths.socket.as_os_str().len() > 100 {
        bail!(
            "the socket path {} is too long for a Unix socket (limit ~100 bytes); use a shorter SANDPIT_HOME",
            paths.socket.display()
        );
    }
    let _ = fs::remove_file(&paths.socket);
    let listener = UnixListener::bind(&paths.socket)
        .with_context(|| format!("cannot listen on {}", paths.socket.display()))?;
    fs::set_permissions(&paths.socket, fs::Permissions::from_mode(0o600))?;
    fs::write(&paths.pid_file, format!("{}\n", std::process::id()))?;

    let supervisor = Supervisor::new(config);
    // Biomes are reached by name through the gateway; it starts first so that the biomes
    // recovery brings back get their public URLs. A daemon without one still supervises (what
    // runs matters more than how it is reached), and `doctor` says what is wrong.
    match supervisor.start_gateway().await {
        Ok(port) => tracing::info!(
            "gateway on http://127.0.0.1:{port} (hosts <service>.<biome>.<project>.localhost)"
        ),
        Err(error) => tracing::error!("the gateway did not start: {error}"),
    }
    if let Err(error) = supervisor.recover().await {
        bail!("{error}");
    }

    tracing::info!(
        "sandpit daemon {version} listening on {}",
        paths.socket.display()
    );

    let log_caps = {
        let supervisor = Arc::clone(&supervisor);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                supervisor.enforce_log_caps();
            }
        })
    };
    // Idle biomes go to sleep; the check is cheap (a look at each biome's last request), and
    // half a second keeps a 1 s `idle_timeout` honest.
    let idle_check = {
        let supervisor = Arc::clone(&supervisor);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_CHECK_INTERVAL).await;
                supervisor.sleep_idle_biomes().await;
            }
        })
    };
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // Closing the terminal that started the daemon must not stop the biomes.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => { tracing::warn!("accept failed: {error}"); continue; }
                };
                let supervisor = Arc::clone(&supervisor);
                let shutdown_tx = shutdown_tx.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(stream, supervisor, shutdown_tx, version).await {
                        tracing::debug!("connection ended: {error}");
                    }
                });
            }
            _ = shutdown_rx.changed() => break,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => continue,
        }
    }
    tracing::info!("shutting down: stopping every component");
    log_caps.abort();
    idle_check.abort();
    supervisor.shutdown().await;
    let _ = fs::remove_file(&paths.socket);
    let _ = fs::remove_file(&paths.pid_file);
    Ok(())
}

fn take_lock(paths: &DaemonPaths) -> anyhow::Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock_file)
        .with_context(|| format!("cannot open {}", paths.lock_file.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, _)) => {
            let pid = fs::read_to_string(&paths.pid_file).unwrap_or_default();
            bail!(
                "another sandpit daemon (pid {}) already runs for this SANDPIT_HOME; stop it with `sandpit daemon stop`",
                pid.trim()
            )
        }
    }
}

async fn handle(
    stream: UnixStream,
    supervisor: Arc<Supervisor>,
    shutdown: watch::Sender<bool>,
    version: String,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await?;
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(error) => {
            let reply = Reply::Error {
                message: format!("malformed request: {error}"),
            };
            return send(&mut write, &reply).await;
        }
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Reply>();
    // The work runs in its own task: a client that goes away half-way does not cut an `up` short.
    let work = tokio::spawn(async move {
        let events = Some(events_tx);
        match request {
            Request::Ping => Ok(ReplyBody::Pong {
                pid: std::process::id(),
                version,
                instances: supervisor.instances(),
                notices: supervisor.notices(),
                gateway_ports: supervisor.gateway_ports(),
            }),
            Request::Up { biome } => supervisor.up(biome, &events).await.map(ReplyBody::Biome),
            Request::Down { project, biome } => {
                supervisor.down(&BiomeKey { project, biome }, &events).await.map(ReplyBody::Biome)
            }
            Request::Status { project, biome } => {
                supervisor.status(&BiomeKey { project: project.clone(), biome: biome.clone() })
                    .map(ReplyBody::Biome)
                    .ok_or_else(|| {
                        format!("there is no biome `{biome}` in project `{project}`; `sandpit ls` lists them")
                    })
            }
            Request::List { project, brief } => {
                let mut biomes = supervisor.list(project.as_ref());
                if brief {
                    // After the usage, which is counted from the components' processes.
                    for biome in &mut biomes {
                        biome.components = Vec::new();
                    }
                }
                Ok(ReplyBody::Biomes { biomes })
            }
            Request::EnsureInstance { instance } => supervisor
                .ensure_instance(instance, &events)
                .await
                .map(ReplyBody::Instance),
            Request::StopInstance { key } => {
                supervisor.stop_instance(&key).await.map(|()| ReplyBody::Done)
            }
            Request::Shutdown => {
                let _ = shutdown.send(true);
                Ok(ReplyBody::Done)
            }
            Request::Env { project, biome, component } => supervisor
                .environment(&BiomeKey { project, biome }, component.as_ref())
                .map(ReplyBody::Env),
            Request::Restart { project, biome, component } => supervisor
                .restart(&BiomeKey { project, biome }, component.as_ref(), &events)
                .await
                .map(ReplyBody::Biome),
            Request::Sleep { project, biome, reason } => supervisor
                .sleep(&BiomeKey { project, biome }, &reason, &events)
                .await
                .map(ReplyBody::Biome),
            Request::Wake { project, biome } => supervisor
                .wake(&BiomeKey { project, biome }, &events)
                .await
                .map(ReplyBody::Biome),
        }
    });
    while let Some(event) = events_rx.recv().await {
        // Keep draining even if the client left, so the work is never blocked by it.
        let _ = send(&mut write, &event).await;
    }
    let reply = match work.await {
        Ok(Ok(body)) => Reply::Ok { body },
        Ok(Err(message)) => Reply::Error { message },
        Err(error) => Reply::Error {
            message: format!("internal error in the daemon: {error}"),
        },
    };
    send(&mut write, &reply).await
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec(reply)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await?;
    Ok(())
}

/// Appends a line to the daemon's own log before tracing is set up (e.g. a failed start).
pub fn append_to_log(paths: &DaemonPaths, message: &str) {
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::owner_only::FILE_MODE)
        .open(&paths.log_file)
    {
        let _ = writeln!(file, "{message}");
    }
}
