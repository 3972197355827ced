//! Preparing the embedded cluster: idempotent, private, clean when initdb fails, created once
//! however many ask at once, and started whatever the length of its path.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sandpit_database::{DatabaseError, EmbeddedCluster, MigrationSet, PgBinaries, Secret};

use crate::fixture::{binaries, connect, name, reachable_tempdir, shared, Server};

#[test]
fn prepare_again_reuses_the_cluster_and_keeps_secrets_private() {
    let server = shared();
    let first = &server.cluster;
    let again = EmbeddedCluster::prepare(&first.state_dir, &first.binaries).unwrap();
    assert_eq!(again.port, first.port);
    assert_eq!(again.admin_password, first.admin_password);
    assert_eq!(again.data_dir, first.data_dir);

    let password_file = std::fs::metadata(first.state_dir.join("admin-password")).unwrap();
    assert_eq!(password_file.permissions().mode() & 0o777, 0o600);
    assert_eq!(password_file.uid(), nix::unistd::geteuid().as_raw());
    let data_dir = std::fs::metadata(&first.data_dir).unwrap();
    assert_eq!(data_dir.permissions().mode() & 0o777, 0o700);
    assert!(!first.state_dir.join("initdb-password").exists());
    assert!(!again.created, "the second prepare found the cluster made");

    match &first.run_as {
        Some(user) => {
            assert_eq!(data_dir.uid(), user.uid);
            let notice = first.notice.as_deref().unwrap();
            assert!(notice.contains("`postgres` system user"), "{notice}");
            assert_eq!(first.launch().uid, Some(user.uid));
        }
        None => assert!(first.notice.is_none()),
    }

    let password = first.admin_password.expose();
    let debug = format!("{first:?}");
    assert!(!debug.contains(password), "{debug}");
    assert!(!first.admin_url_redacted().contains(password));
    assert!(first.admin_url().contains(password));

    let launch = first.launch();
    assert_eq!(launch.program, first.binaries.postgres);
    for expected in [
        "-D",
        "-p",
        "listen_addresses=127.0.0.1",
        "unix_socket_directories=",
        "max_connections=200",
    ] {
        assert!(launch.args.iter().any(|arg| arg == expected), "{launch:?}");
    }
    assert!(!launch.args.iter().any(|arg| arg == "-k"), "{launch:?}");
}

#[test]
fn failed_initdb_reports_its_output_and_leaves_no_data_directory() {
    let dir = tempfile::Builder::new()
        .prefix("sandpit-db-initdb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for (program, script) in [
        (
            "initdb",
            "#!/bin/sh\necho 'initdb: error: disk on fire' >&2\nexit 1\n",
        ),
        ("postgres", "#!/bin/sh\nexit 0\n"),
    ] {
        let path = bin.join(program);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let binaries = PgBinaries::locate_in(bin.to_str(), &[]).unwrap();
    let state = dir.path().join("state");
    let error = EmbeddedCluster::prepare(&state, &binaries).unwrap_err();
    match &error {
        DatabaseError::InitFailed { log_tail, .. } => {
            assert!(log_tail.contains("disk on fire"), "{log_tail}")
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
    assert!(!state.join("data").exists());
    assert!(!state.join("data.initdb").exists());
    assert!(!state.join("initdb-password").exists());
}

#[tokio::test]
async fn concurrent_prepares_on_a_fresh_directory_run_one_initdb_and_agree() {
    let dir = reachable_tempdir("sandpit-db-race-");
    let real = binaries();
    // initdb runs as the server user when the tests are root: it must be able to write here.
    let calls = dir.path().join("calls");
    std::fs::create_dir(&calls).unwrap();
    std::fs::set_permissions(&calls, std::fs::Permissions::from_mode(0o777)).unwrap();
    let counting_initdb = dir.path().join("counting-initdb");
    std::fs::write(
        &counting_initdb,
        format!(
            "#!/bin/sh\necho \"$$\" >> '{}/initdb'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.initdb.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&counting_initdb, std::fs::Permissions::from_mode(0o755)).unwrap();
    let counting = PgBinaries {
        initdb: counting_initdb,
        postgres: real.postgres.clone(),
    };

    const CALLERS: usize = 8;
    let state = dir.path().join("state");
    let start_together = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (state, counting, start_together) =
                (state.clone(), counting.clone(), start_together.clone());
            std::thread::spawn(move || {
                start_together.wait();
                EmbeddedCluster::prepare(&state, &counting)
            })
        })
        .collect();
    let clusters: Vec<EmbeddedCluster> = callers
        .into_iter()
        .map(|caller| caller.join().unwrap().expect("every caller succeeds"))
        .collect();

    let runs = std::fs::read_to_string(calls.join("initdb")).unwrap();
    assert_eq!(runs.lines().count(), 1, "initdb ran more than once: {runs}");
    assert_eq!(clusters.iter().filter(|cluster| cluster.created).count(), 1);
    let first = &clusters[0];
    for cluster in &clusters {
        assert_eq!(cluster.port, first.port);
        assert_eq!(cluster.admin_password, first.admin_password);
        assert_eq!(cluster.data_dir, first.data_dir);
    }
    // The password every caller was given is the one the cluster was initialised with.
    let server = Server::adopt(dir, clusters[CALLERS - 1].clone());
    let admin = server.admin().await;
    assert!(admin.database_exists("postgres").await.unwrap());
}

#[tokio::test]
async fn debris_of_an_interrupted_initdb_is_removed_by_the_next_prepare() {
    let dir = reachable_tempdir("sandpit-db-debris-");
    let state = dir.path().join("state");
    // What a sandpit killed during initdb leaves: the half-written cluster under its temporary
    // name, the password file handed to initdb, a half-written port file.
    std::fs::create_dir_all(state.join("data.initdb/base/1")).unwrap();
    std::fs::write(state.join("data.initdb/base/1/1259"), "half a catalog").unwrap();
    std::fs::write(state.join("initdb-password"), "from the last attempt").unwrap();
    std::fs::write(state.join("port.tmp"), "54").unwrap();

    let cluster = EmbeddedCluster::prepare(&state, &binaries()).unwrap();
    assert!(cluster.created);
    assert!(state.join("data/PG_VERSION").is_file());
    for debris in ["data.initdb", "initdb-password", "port.tmp"] {
        assert!(!state.join(debris).exists(), "{debris} is left");
    }
    let server = Server::adopt(dir, cluster);
    assert!(server
        .admin()
        .await
        .database_exists("postgres")
        .await
        .unwrap());
}

#[test]
fn prepare_gives_up_when_another_preparer_holds_the_lock_too_long() {
    let dir = reachable_tempdir("sandpit-db-busy-");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let holder = std::fs::File::create(state.join("prepare.lock")).unwrap();
    holder.lock().unwrap();

    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let error = EmbeddedCluster::prepare_within(&state, &binaries(), wait).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, DatabaseError::InitBusy { after, .. } if after == wait));
    assert!(
        took >= wait && took < wait + Duration::from_secs(3),
        "{took:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("another sandpit has been preparing the PostgreSQL cluster"),
        "{message}"
    );
    assert!(message.contains("prepare.lock"), "{message}");
    assert!(
        !state.join("admin-password").exists(),
        "nothing was changed"
    );
    assert!(!state.join("data").exists(), "nothing was changed");

    drop(holder);
    let cluster = EmbeddedCluster::prepare_within(&state, &binaries(), wait).unwrap();
    assert!(cluster.created);
}

#[tokio::test]
async fn cluster_under_a_deep_home_with_a_40_character_project_name_starts_and_answers() {
    let dir = reachable_tempdir("sandpit-db-deep-");
    let project = name(&format!("deep-{}", "x".repeat(35)));
    assert_eq!(project.as_str().len(), 40);
    let home = dir.path().join("a".repeat(40)).join("b".repeat(40));
    let state = home
        .join("projects")
        .join(project.as_str())
        .join("postgres")
        .join("staging");
    // Where a socket would go under the state directory: past the 107 bytes a Unix socket path
    // may have, which made PostgreSQL refuse to start.
    assert!(state.join("socket/.s.PGSQL.65535").as_os_str().len() > 107);

    let server = Server::start_in(dir, &state);
    let admin = server.admin().await;
    let set = MigrationSet::from_files([("001_t.sql", "CREATE TABLE t (id int);")], None);
    let template = admin.ensure_template(&project, &set).await.unwrap();
    let password = Secret::new("deep-password");
    let biome = admin
        .ensure_biome_database(&project, &name("main"), &template, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();
    client
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap();
}
