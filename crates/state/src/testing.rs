//! Fresh stores for the tests, on either backend: a SQLite file in a temporary directory, or a
//! new database on one real PostgreSQL server started (from the embedded cluster code of
//! `sandpit-database`) once per test binary and removed by a watchdog when the binary exits.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use sandpit_database::{EmbeddedCluster, PgBinaries};

use crate::StateStore;

/// Which database a test's store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The suite in `tests.rs` is compiled twice (see `lib.rs`); the copy's module path says
    /// which backend it runs against.
    pub(crate) fn of_module(path: &str) -> Backend {
        if path.ends_with("_on_postgres") || path.contains("_on_postgres::") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// What keeps a fresh store's database alive: its temporary directory (SQLite); nothing for
/// PostgreSQL, whose databases go with the shared server.
pub(crate) struct Guard {
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL URL, for tests that open the same database again.
    pub(crate) url: Option<String>,
}

/// A new, empty store on `backend`.
pub(crate) fn fresh(backend: Backend) -> (Guard, StateStore) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("home").join("state").join("state.db");
            let store = StateStore::open(&path).expect("open");
            (
                Guard {
                    _dir: Some(dir),
                    url: None,
                },
                store,
            )
        }
        Backend::Postgres => {
            let url = fresh_database();
            let store = StateStore::connect(&url).expect("connect");
            (
                Guard {
                    _dir: None,
                    url: Some(url),
                },
                store,
            )
        }
    }
}

/// The URL of a new, empty database on the shared server.
pub(crate) fn fresh_database() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let server = shared_server();
    let name = format!(
        "state_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = server.admin_url();
    let create = format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
    );
    block_on(async move {
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("the test server answers");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&create)
            .await
            .expect("create the test database");
        drop(client);
        let _ = connection.await;
    });
    sandpit_database::libpq_url(
        "127.0.0.1",
        server.port,
        &server.admin_user,
        &server.admin_password,
        &name,
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// The server every PostgreSQL test of this binary uses.
// The server and its watchdog outlive this process on purpose (see below): never waited for.
#[allow(clippy::zombie_processes)]
fn shared_server() -> &'static EmbeddedCluster {
    static SHARED: OnceLock<EmbeddedCluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Under /tmp and open to pass through: as root, the server runs as `postgres`.
        let dir = tempfile::Builder::new()
            .prefix("sandpit-state-test-")
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let binaries = PgBinaries::locate(None).expect("PostgreSQL server binaries are installed");
        let cluster = EmbeddedCluster::prepare(&dir.join("state"), &binaries).expect("initdb");
        let launch = cluster.launch();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cluster.log_file())
            .unwrap();
        let child = launch
            .foreground(&log)
            .unwrap()
            .spawn()
            .expect("postgres starts");
        // Statics are never dropped: once this test process has exited, the watchdog stops
        // the server and removes its directory. Never waited for: it outlives us on purpose.
        Command::new("/bin/sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
                 kill -INT \"$2\" 2>/dev/null; sleep 5; rm -rf \"$3\"",
                "watchdog",
                &std::process::id().to_string(),
                &child.id().to_string(),
                &dir.display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("watchdog starts");
        let ready = cluster.clone();
        if let Err(error) = block_on(async move { ready.wait_ready(Duration::from_secs(30)).await })
        {
            let log = std::fs::read_to_string(cluster.log_file()).unwrap_or_default();
            panic!("{error}\n--- postgres.log ---\n{log}");
        }
        cluster
    })
}
