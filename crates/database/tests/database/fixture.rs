//! A real PostgreSQL cluster in a temporary directory, started from `EmbeddedCluster::launch`.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use sandpit_database::{Admin, EmbeddedCluster, PgBinaries, Timeouts};
use sandpit_domain::Name;
use tempfile::TempDir;

pub struct Server {
    pub cluster: EmbeddedCluster,
    child: Mutex<Option<Child>>,
    _temporary: Option<TempDir>,
    _watchdog: Option<Child>,
}

/// The server shared by every test in this binary. Statics are never dropped, so a watchdog
/// shell stops it and removes its directory once this test process has exited.
pub fn shared() -> &'static Server {
    static SHARED: OnceLock<Server> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut server = Server::start();
        let temporary = server
            ._temporary
            .take()
            .expect("fresh server owns its directory");
        let dir = temporary.keep();
        let pid = server.pid();
        // Never waited for: it outlives this process on purpose.
        let watchdog = Command::new("/bin/sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
                 kill -INT \"$2\" 2>/dev/null; sleep 5; rm -rf \"$3\"",
                "watchdog",
                &std::process::id().to_string(),
                &pid.to_string(),
                &dir.display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("watchdog starts");
        server._watchdog = Some(watchdog);
        let url = server.cluster.admin_url();
        block_on(async move {
            let admin = Admin::connect(&url).await.unwrap();
            admin.restrict_maintenance_databases().await.unwrap();
        });
        server
    })
}

/// A directory under /tmp that the `postgres` user can reach (the server runs as it when the
/// tests run as root).
pub fn reachable_tempdir(prefix: &str) -> TempDir {
    let temporary = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    temporary
}

pub fn binaries() -> PgBinaries {
    PgBinaries::locate(None).expect("PostgreSQL server binaries are installed")
}

/// Short limits, so a test of a hung server takes a second or two (a healthy server answers
/// the tests' catalog queries well within them, even on a busy machine).
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        statement: Duration::from_secs(1),
        migration: Duration::from_secs(2),
        advisory_lock: Duration::from_secs(1),
    }
}

/// While alive, the server's processes are stopped (SIGSTOP); dropping it (also when a test
/// panics) lets them run again, so the server can still be shut down.
pub struct Stopped {
    pids: Vec<Pid>,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = kill(*pid, Signal::SIGCONT);
        }
    }
}

/// The processes whose parent is `parent` (PostgreSQL's backends each have a session of their
/// own, so the postmaster's process group does not reach them).
fn children_of(parent: Pid) -> Vec<Pid> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
        let Some((_, after_comm)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = after_comm.split_whitespace().nth(1);
        if ppid == Some(&parent.as_raw().to_string()) {
            if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                children.push(Pid::from_raw(pid));
            }
        }
    }
    children
}

impl Server {
    /// Initialises a cluster in a fresh directory and starts it.
    pub fn start() -> Server {
        let temporary = reachable_tempdir("sandpit-db-test-");
        let state = temporary.path().join("state");
        Server::start_in(temporary, &state)
    }

    /// Initialises a cluster in `state` (somewhere inside `temporary`) and starts it.
    pub fn start_in(temporary: TempDir, state: &Path) -> Server {
        let cluster = EmbeddedCluster::prepare(state, &binaries()).unwrap();
        Server::adopt(temporary, cluster)
    }

    /// Starts a cluster prepared by the test; `temporary` is removed with the server.
    pub fn adopt(temporary: TempDir, cluster: EmbeddedCluster) -> Server {
        let server = Server {
            cluster,
            child: Mutex::new(None),
            _temporary: Some(temporary),
            _watchdog: None,
        };
        server.launch();
        server
    }

    /// Starts `postgres` as described by `launch()` and waits until it accepts connections.
    pub fn launch(&self) {
        let launch = self.cluster.launch();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cluster.log_file())
            .unwrap();
        let mut command = launch.foreground(&log).unwrap();
        let child = command.spawn().expect("postgres starts");
        *self.child.lock().unwrap() = Some(child);
        let cluster = self.cluster.clone();
        let ready = block_on(async move { cluster.wait_ready(Duration::from_secs(30)).await });
        if let Err(error) = ready {
            let log = std::fs::read_to_string(self.cluster.log_file()).unwrap_or_default();
            panic!("{error}\n--- postgres.log ---\n{log}");
        }
    }

    /// Stops the postmaster alone: connections already open keep working, new ones are
    /// accepted by the kernel and never answered — what a wedged server looks like.
    pub fn stop_postmaster(&self) -> Stopped {
        let pid = Pid::from_raw(self.pid());
        kill(pid, Signal::SIGSTOP).unwrap();
        Stopped { pids: vec![pid] }
    }

    /// Stops the postmaster and every process it started: nothing answers, not even open
    /// connections. The postmaster goes first, so it starts no process meanwhile.
    pub fn stop_everything(&self) -> Stopped {
        let mut stopped = self.stop_postmaster();
        for child in children_of(stopped.pids[0]) {
            if kill(child, Signal::SIGSTOP).is_ok() {
                stopped.pids.push(child);
            }
        }
        stopped
    }

    pub fn pid(&self) -> i32 {
        let child = self.child.lock().unwrap();
        i32::try_from(child.as_ref().expect("running").id()).unwrap()
    }

    /// Kills the server and all its backends at once, like a power cut.
    pub fn crash(&self) {
        let mut child = self.child.lock().unwrap().take().expect("running");
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap());
        killpg(group, Signal::SIGKILL).unwrap();
        child.wait().unwrap();
    }

    pub async fn admin(&self) -> Admin {
        Admin::connect(&self.cluster.admin_url()).await.unwrap()
    }

    /// An administrator with the [`short_timeouts`], whose timeouts name the server's log.
    pub async fn impatient_admin(&self) -> Result<Admin, sandpit_database::DatabaseError> {
        self.cluster.admin(short_timeouts()).await
    }

    /// A URL for `role` on `database` of this server.
    pub fn url(&self, role: &str, password: &sandpit_database::Secret, database: &str) -> String {
        sandpit_database::libpq_url("127.0.0.1", self.cluster.port, role, password, database)
    }

    /// A plain client as the administrator, for looking at the catalogs.
    pub async fn catalog(&self) -> tokio_postgres::Client {
        connect(&self.cluster.admin_url()).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = kill(pid, Signal::SIGINT);
            let _ = child.wait();
        }
    }
}

/// Connects with a URL, driving the connection on the current runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Names of databases matching a LIKE pattern.
pub async fn databases_like(client: &tokio_postgres::Client, pattern: &str) -> Vec<String> {
    client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&pattern],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

pub fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap()
}

/// Runs a future to completion on a private runtime in another thread, so it works from both
/// synchronous code and inside a test's runtime.
fn block_on<T: Send + 'static>(future: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    })
    .join()
    .unwrap()
}
