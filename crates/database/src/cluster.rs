//! The embedded PostgreSQL instance: initialised once under sandpit's state directory, run by the
//! supervisor from the [`LaunchCommand`] described here.
//!
//! Layout of `state_dir`:
//!
//! ```text
//! prepare.lock     0600: held (`flock`) by whoever is preparing the cluster, so it is created once
//! admin-password   0600, owned by the user running sandpit (the superuser's password)
//! port             the loopback port chosen on first use, kept for the cluster's life
//! postgres.log     0600, the server's output (opened by the supervisor that runs it)
//! data/            PostgreSQL's data directory, owned by the server user
//! postgres.log     where the supervisor writes the server's output ([`EmbeddedCluster::log_file`])
//! ```
//!
//! The server listens on TCP only (`127.0.0.1`, no Unix socket): sandpit and the biomes connect
//! over TCP anyway, and a socket path is limited to 107 bytes, which a deep `$SANDPIT_HOME` or a
//! long project name exceeds (the server then refuses to start).
//!
//! PostgreSQL refuses to run as root, so when sandpit is root the server (and `initdb`) run as
//! the unprivileged `postgres` system user; that is the one case in which `state_dir` is made
//! traversable (0711) by others.

use std::fs::{self, File, TryLockError};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::admin::Admin;
use crate::binaries::PgBinaries;
use crate::error::DatabaseError;
use crate::secret::{RedactedUrl, Secret};
use crate::timeouts::Timeouts;

/// The superuser `initdb` creates; sandpit administers the instance as this role.
pub const ADMIN_USER: &str = "sandpit_admin";

/// The only settings changed from PostgreSQL's defaults (durability settings are left alone).
const MAX_CONNECTIONS: u32 = 200;

/// Lines of `initdb` output kept in an [`DatabaseError::InitFailed`].
const LOG_TAIL_LINES: usize = 20;

/// How long [`EmbeddedCluster::prepare`] waits for another sandpit preparing the same cluster:
/// `initdb` takes a few seconds, a slow disk some more.
pub const PREPARE_WAIT: Duration = Duration::from_secs(120);

/// Pauses between attempts at the creation lock, doubling up to the last.
const LOCK_POLL: [Duration; 2] = [Duration::from_millis(5), Duration::from_millis(100)];

/// The unprivileged user the server runs as when sandpit runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

/// The superuser's password, in the state directory (0600).
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// The most the state directory allows: the server user passes through, nobody lists it.
pub const STATE_DIR_MAX_MODE: u32 = 0o711;

/// An initialised (not necessarily running) PostgreSQL cluster owned by sandpit.
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: Secret,
    /// `Some` when sandpit is root and the server runs as another user.
    pub run_as: Option<RunAs>,
    /// Something the user should be told once, e.g. that PostgreSQL runs as `postgres`.
    pub notice: Option<String>,
    /// Whether this call ran `initdb` (of many concurrent callers, exactly one does).
    pub created: bool,
    pub binaries: PgBinaries,
}

/// How to start the server. The caller spawns it with exactly this environment (clear the rest),
/// as `uid`/`gid` when given, in `working_dir`, and supervises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub working_dir: PathBuf,
}

impl LaunchCommand {
    /// The command that runs it in the foreground with exactly its environment, in its own
    /// process group, writing to `log`: for a caller that runs the server itself instead of
    /// handing it to the daemon (tests, benchmarks). Nothing is started here.
    pub fn foreground(&self, log: &fs::File) -> std::io::Result<std::process::Command> {
        use std::os::unix::process::CommandExt as _;
        let mut command = std::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .current_dir(&self.working_dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .process_group(0);
        if let Some(uid) = self.uid {
            command.uid(uid);
        }
        if let Some(gid) = self.gid {
            command.gid(gid);
        }
        Ok(command)
    }
}

impl EmbeddedCluster {
    /// Makes `state_dir` hold an initialised cluster, reusing whatever a previous call made.
    /// Blocking: `initdb` takes a second or two the first time (use `spawn_blocking` from async).
    ///
    /// Concurrent callers (threads or processes) agree: the first takes an exclusive `flock` on
    /// `prepare.lock` and creates what is missing, the others wait for it (at most
    /// [`PREPARE_WAIT`]) and then find it made. Debris of an interrupted attempt (a half-written
    /// `data.initdb`, a leftover password file) is removed first.
    pub fn prepare(
        state_dir: &Path,
        binaries: &PgBinaries,
    ) -> Result<EmbeddedCluster, DatabaseError> {
        EmbeddedCluster::prepare_within(state_dir, binaries, PREPARE_WAIT)
    }

    /// [`EmbeddedCluster::prepare`], waiting at most `wait` for another caller to finish
    /// ([`DatabaseError::InitBusy`] after that).
    pub fn prepare_within(
        state_dir: &Path,
        binaries: &PgBinaries,
        wait: Duration,
    ) -> Result<EmbeddedCluster, DatabaseError> {
        let run_as = unprivileged_user()?;
        // Only the server user needs to pass through; nobody else may list or read. Created
        // with its mode, and set again for a directory an older version left open.
        let mode = if run_as.is_some() {
            STATE_DIR_MAX_MODE
        } else {
            0o700
        };
        create_dir_with_mode(state_dir, mode).map_err(|error| {
            DatabaseError::io("create the database state directory", state_dir, error)
        })?;
        // Everything below reads and then writes shared files; two callers interleaving would
        // run two initdbs in one directory, or initialise with a password the other overwrote.
        let _lock = lock_exclusively(state_dir, wait)?;
        set_mode(state_dir, mode)?;

        let admin_password = read_or_create_password(&state_dir.join(ADMIN_PASSWORD_FILE))?;
        let port = read_or_choose_port(&state_dir.join("port"))?;

        // Older versions kept the Unix socket here; an empty one is no longer needed.
        let _ = fs::remove_dir(state_dir.join("socket"));

        let data_dir = state_dir.join("data");
        let created = !data_dir.join("PG_VERSION").is_file();
        if created {
            initialise(
                state_dir,
                &data_dir,
                binaries,
                run_as.as_ref(),
                &admin_password,
            )?;
        }

        let notice = run_as.as_ref().map(|user| {
            format!(
                "running PostgreSQL as the `{}` system user because sandpit runs as root",
                user.name
            )
        });
        Ok(EmbeddedCluster {
            state_dir: state_dir.to_owned(),
            data_dir,
            port,
            admin_user: ADMIN_USER.to_owned(),
            admin_password,
            run_as,
            notice,
            created,
            binaries: binaries.clone(),
        })
    }

    /// `postgres -D <data> -p <port> -c listen_addresses=127.0.0.1 -c unix_socket_directories= …`:
    /// TCP on loopback only, no Unix socket (see the module documentation).
    pub fn launch(&self) -> LaunchCommand {
        let args = [
            "-D".to_owned(),
            self.data_dir.display().to_string(),
            "-p".to_owned(),
            self.port.to_string(),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
            "-c".to_owned(),
            "unix_socket_directories=".to_owned(),
            "-c".to_owned(),
            format!("max_connections={MAX_CONNECTIONS}"),
        ];
        LaunchCommand {
            program: self.binaries.postgres.clone(),
            args: args.into(),
            env: vec![("LC_ALL".to_owned(), "C".to_owned())],
            uid: self.run_as.as_ref().map(|user| user.uid),
            gid: self.run_as.as_ref().map(|user| user.gid),
            working_dir: self.state_dir.clone(),
        }
    }

    /// `postgres://sandpit_admin:<password>@127.0.0.1:<port>/postgres`. Contains the password:
    /// log [`EmbeddedCluster::admin_url_redacted`] instead.
    pub fn admin_url(&self) -> String {
        crate::admin::libpq_url(
            "127.0.0.1",
            self.port,
            &self.admin_user,
            &self.admin_password,
            "postgres",
        )
    }

    /// The admin URL with the password shown as `***`.
    pub fn admin_url_redacted(&self) -> String {
        RedactedUrl(&self.admin_url()).to_string()
    }

    /// Where the server's output belongs: the supervisor writes it here, and errors about a
    /// server that does not answer point to it.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("postgres.log")
    }

    /// Connects as the administrator with `timeouts`; errors name [`EmbeddedCluster::log_file`].
    pub async fn admin(&self, timeouts: Timeouts) -> Result<Admin, DatabaseError> {
        Admin::connect_with(&self.admin_url(), timeouts, Some(&self.log_file())).await
    }

    /// Polls real connections until the server accepts one and answers a query, for at most
    /// `timeout` in all (an attempt a wedged server never answers is cut off at the deadline):
    /// [`DatabaseError::Timeout`] when the last attempt got no answer,
    /// [`DatabaseError::Unreachable`] when the server kept refusing.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), DatabaseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_refusal = None;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(match last_refusal {
                    Some(message) => DatabaseError::Unreachable {
                        url: self.admin_url_redacted(),
                        message: format!("not ready after {timeout:?}: {message}"),
                    },
                    None => self.not_ready(timeout),
                });
            }
            let attempt = Timeouts {
                connect: remaining,
                statement: remaining,
                ..Timeouts::default()
            };
            let refused = match self.admin(attempt).await {
                Ok(admin) => match admin.ping().await {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            last_refusal = Some(match refused {
                DatabaseError::Timeout { .. } => return Err(self.not_ready(timeout)),
                DatabaseError::Unreachable { message, .. } => message,
                other => other.to_string(),
            });
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
        }
    }

    fn not_ready(&self, timeout: Duration) -> DatabaseError {
        DatabaseError::Timeout {
            what: "waiting for the embedded instance to accept connections".to_owned(),
            after: timeout,
            url_redacted: self.admin_url_redacted(),
            server_log: Some(self.log_file()),
        }
    }
}

/// Takes the exclusive `flock` on `<state_dir>/prepare.lock`, waiting at most `wait` for whoever
/// holds it. The lock goes with the returned file, and with the process if it dies.
fn lock_exclusively(state_dir: &Path, wait: Duration) -> Result<File, DatabaseError> {
    let path = state_dir.join("prepare.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| DatabaseError::io("open", &path, error))?;
    let deadline = Instant::now() + wait;
    let mut pause = LOCK_POLL[0];
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) => return Err(DatabaseError::io("lock", &path, error)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(DatabaseError::InitBusy {
                state_dir: state_dir.to_owned(),
                lock_file: path,
                after: wait,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LOCK_POLL[1]);
    }
}

/// `None` when sandpit is not root; the `postgres` user when it is.
fn unprivileged_user() -> Result<Option<RunAs>, DatabaseError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) if !user.uid.is_root() => Ok(Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
        })),
        _ => Err(DatabaseError::NoUnprivilegedUser),
    }
}

/// Runs `initdb` into a temporary sibling of `data_dir` and renames it into place, so a crash
/// half-way leaves no half-made data directory.
fn initialise(
    state_dir: &Path,
    data_dir: &Path,
    binaries: &PgBinaries,
    run_as: Option<&RunAs>,
    admin_password: &Secret,
) -> Result<(), DatabaseError> {
    if data_dir.exists() {
        let empty = fs::read_dir(data_dir)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(DatabaseError::ForeignDataDirectory {
                path: data_dir.to_owned(),
            });
        }
        fs::remove_dir(data_dir).map_err(|error| {
            DatabaseError::io("remove the empty data directory", data_dir, error)
        })?;
    }
    let building = state_dir.join("data.initdb");
    if building.exists() {
        fs::remove_dir_all(&building).map_err(|error| {
            DatabaseError::io(
                "remove the leftover of an interrupted initdb",
                &building,
                error,
            )
        })?;
    }
    create_server_dir(&building, run_as)?;

    // initdb reads the superuser's password from a file, which the server user must be able to
    // read; it is removed as soon as initdb is done.
    let password_file = state_dir.join("initdb-password");
    write_private_file(&password_file, admin_password.expose().as_bytes())?;
    if let Some(user) = run_as {
        chown(&password_file, user)?;
    }

    let mut command = Command::new(&binaries.initdb);
    command
        .arg("-D")
        .arg(&building)
        .arg("-U")
        .arg(ADMIN_USER)
        .arg(format!("--pwfile={}", password_file.display()))
        .args([
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
        ])
        .env_clear()
        .env("LC_ALL", "C")
        .current_dir(state_dir);
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    let output = command.output();
    let _ = fs::remove_file(&password_file);
    let output = output.map_err(|error| DatabaseError::InitFailed {
        data_dir: data_dir.to_owned(),
        log_tail: format!("could not run `{}`: {error}", binaries.initdb.display()),
    })?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&building);
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        return Err(DatabaseError::InitFailed {
            data_dir: data_dir.to_owned(),
            log_tail: format!("{tail}\n({})", output.status),
        });
    }
    fs::rename(&building, data_dir).map_err(|error| {
        DatabaseError::io("move the initialised cluster into place", data_dir, error)
    })
}

/// A 0700 directory owned by the server user.
fn create_server_dir(path: &Path, run_as: Option<&RunAs>) -> Result<(), DatabaseError> {
    create_dir_with_mode(path, 0o700).map_err(|error| DatabaseError::io("create", path, error))?;
    set_mode(path, 0o700)?;
    if let Some(user) = run_as {
        chown(path, user)?;
    }
    Ok(())
}

/// Creates `path` with `mode` from the start (its missing parents with the default mode: they
/// hold nothing secret, and the server user may have to pass through them).
fn create_dir_with_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(mode).create(path) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DatabaseError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|error| DatabaseError::io("set permissions on", path, error))
}

fn chown(path: &Path, user: &RunAs) -> Result<(), DatabaseError> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .map_err(|error| DatabaseError::io("change the owner of", path, error.into()))
}

/// The administrator's URL of a cluster already initialised in `state_dir` (its password and
/// port files written), read without creating, locking or changing anything — for reads that
/// must never prepare an instance; `None` when there is none (yet).
pub fn existing_admin_url(state_dir: &Path) -> Option<String> {
    if !state_dir.join("data").join("PG_VERSION").is_file() {
        return None;
    }
    let password = fs::read_to_string(state_dir.join(ADMIN_PASSWORD_FILE)).ok()?;
    let port: u16 = fs::read_to_string(state_dir.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let password = password.trim();
    (!password.is_empty()).then(|| {
        crate::admin::libpq_url(
            "127.0.0.1",
            port,
            ADMIN_USER,
            &Secret::new(password),
            "postgres",
        )
    })
}

fn read_or_create_password(path: &Path) -> Result<Secret, DatabaseError> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            // An older version may have left it readable by others.
            set_mode(path, 0o600)?;
            return Ok(Secret::new(text.trim()));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(DatabaseError::io("read", path, error)),
    }
    let password = Secret::generate().map_err(|error| {
        DatabaseError::io("read random bytes from", Path::new("/dev/urandom"), error)
    })?;
    write_atomically(path, password.expose().as_bytes())?;
    Ok(password)
}

fn read_or_choose_port(path: &Path) -> Result<u16, DatabaseError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            if let Ok(port) = text.trim().parse::<u16>() {
                return Ok(port);
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(DatabaseError::io("read", path, error)),
    }
    // Outside the ephemeral range, so no outgoing connection takes it before PostgreSQL binds it.
    let port = sandpit_runtime::port_offer::offer()
        .map_err(|error| DatabaseError::io("find a free loopback port for", path, error))?;
    write_atomically(path, format!("{port}\n").as_bytes())?;
    Ok(port)
}

/// Writes a 0600 file next to `path` and renames it over `path`.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), DatabaseError> {
    let temporary = path.with_extension("tmp");
    let _ = fs::remove_file(&temporary);
    write_private_file(&temporary, contents)?;
    fs::rename(&temporary, path).map_err(|error| DatabaseError::io("write", path, error))
}

fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), DatabaseError> {
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
        .map_err(|error| DatabaseError::io("write", path, error))
}
