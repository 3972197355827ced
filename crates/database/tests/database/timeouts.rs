//! A server that stops answering makes every operation fail with a timeout in bounded time,
//! never hang; a lock held by another operation is waited for a bounded time; a migration cut
//! off is never half-applied. Each test that stops a server starts a private one.

use std::future::Future;
use std::time::{Duration, Instant};

use sandpit_database::{names, DatabaseError, MigrationSet, Secret, Timeouts};

use crate::fixture::{connect, databases_like, name, shared, short_timeouts, Server};

async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let result = call.await;
    (result, started.elapsed())
}

/// `error` is a timeout while `doing`, after `limit`, naming the server and its log; and it came
/// after the limit, not much later.
fn assert_timeout(
    error: &DatabaseError,
    doing: &str,
    limit: Duration,
    took: Duration,
    server: &Server,
) {
    match error {
        DatabaseError::Timeout {
            what,
            after,
            url_redacted,
            server_log,
        } => {
            assert!(what.contains(doing), "`{what}` does not say {doing}");
            assert_eq!(*after, limit, "{error}");
            assert!(
                url_redacted.contains(&format!("@127.0.0.1:{}/", server.cluster.port)),
                "{url_redacted}"
            );
            assert_eq!(server_log.as_ref(), Some(&server.cluster.log_file()));
        }
        other => panic!("expected a timeout while {doing}, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("is it running?"), "{message}");
    assert!(
        !message.contains(server.cluster.admin_password.expose()),
        "{message}"
    );
    assert!(
        took >= limit,
        "gave up after {took:?}, before the {limit:?} limit"
    );
    assert!(
        took < limit + Duration::from_secs(3),
        "took {took:?} for a {limit:?} limit"
    );
}

fn one_table() -> MigrationSet {
    MigrationSet::from_files([("001_t.sql", "CREATE TABLE t (id int);")], None)
}

#[tokio::test]
async fn hung_postmaster_makes_connect_and_a_template_build_time_out_then_works_again() {
    let server = Server::start();
    let limits = short_timeouts();
    let project = name("hung");
    // Connected before the server hangs: its own backend keeps answering (advisory locks are
    // taken on it), but every operation that opens a connection meets the stopped postmaster.
    let admin = server.impatient_admin().await.unwrap();
    let stopped = server.stop_postmaster();

    let (connected, took) = timed(server.impatient_admin()).await;
    assert_timeout(
        &connected.unwrap_err(),
        "connecting",
        limits.connect,
        took,
        &server,
    );

    // Dropping a biome that has nothing needs no other connection.
    admin
        .drop_biome_database(&project, &name("alice"))
        .await
        .unwrap();

    // Building a template does: its migrations run in a session of their own.
    let (built, took) = timed(admin.ensure_template(&project, &one_table())).await;
    let error = built.unwrap_err();
    assert_timeout(
        &error,
        "connecting to `hung_tpl_",
        limits.connect,
        took,
        &server,
    );
    assert!(error.to_string().contains("_building`"), "{error}");

    let wait = Duration::from_millis(700);
    let (ready, took) = timed(server.cluster.wait_ready(wait)).await;
    assert_timeout(
        &ready.unwrap_err(),
        "accept connections",
        wait,
        took,
        &server,
    );

    drop(stopped);
    server
        .cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let impatient = server.impatient_admin().await.unwrap();
    assert!(impatient.database_exists("postgres").await.unwrap());
    let admin = server.admin().await;
    let template = admin.ensure_template(&project, &one_table()).await.unwrap();
    admin
        .ensure_biome_database(&project, &name("alice"), &template, &Secret::new("pw"))
        .await
        .unwrap();
    admin
        .drop_biome_database(&project, &name("alice"))
        .await
        .unwrap();
    assert!(!admin.database_exists("hung_alice").await.unwrap());
}

#[tokio::test]
async fn stopped_server_times_out_a_query_on_an_open_connection() {
    let server = Server::start();
    let limits = short_timeouts();
    let admin = server.impatient_admin().await.unwrap();
    let stopped = server.stop_everything();

    let (exists, took) = timed(admin.database_exists("postgres")).await;
    assert_timeout(
        &exists.unwrap_err(),
        "looking up database `postgres`",
        limits.statement,
        took,
        &server,
    );

    drop(stopped);
    // The connection that timed out was closed; a new one answers.
    assert!(admin.database_exists("postgres").await.is_err());
    let admin = server.impatient_admin().await.unwrap();
    assert!(admin.database_exists("postgres").await.unwrap());
}

#[tokio::test]
async fn migration_cut_off_by_a_hung_server_is_rolled_back_whole() {
    let server = Server::start();
    // The file's first statement and the bookkeeping get plenty; the file's statements 2 s.
    let limits = Timeouts {
        statement: Duration::from_secs(5),
        ..short_timeouts()
    };
    let (project, biome) = (name("cut"), name("b"));
    let mut set = one_table();
    let admin = server.admin().await;
    let template = admin.ensure_template(&project, &set).await.unwrap();
    admin
        .ensure_biome_database(&project, &biome, &template, &Secret::new("pw"))
        .await
        .unwrap();
    set.files.push(sandpit_database::MigrationFile::new(
        "002_half.sql",
        "CREATE TABLE half (id int);\nSELECT pg_sleep(60);\n",
    ));
    let plan = admin.plan_migrations("cut_b", &set).await.unwrap();
    assert_eq!(plan.pending.len(), 1);

    let impatient = server.cluster.admin(limits).await.unwrap();
    let watcher = server.catalog().await;
    let pending = plan.pending.clone();
    let (apply_project, apply_biome) = (project.clone(), biome.clone());
    let started = Instant::now();
    let apply = tokio::spawn(async move {
        impatient
            .apply_in_place(
                &apply_project,
                &apply_biome,
                &pending,
                Duration::from_secs(5),
            )
            .await
    });
    // Once the file's second statement runs (the first is done, uncommitted), stop everything.
    loop {
        let running = watcher
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE datname = 'cut_b' AND query LIKE '%pg_sleep(60)%'",
                &[],
            )
            .await
            .unwrap();
        if !running.is_empty() {
            break;
        }
        assert!(!apply.is_finished(), "{:?}", apply.await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = server.stop_everything();
    let applied = apply.await.unwrap();
    let took = started.elapsed();
    let error = applied.unwrap_err();
    assert_timeout(
        &error,
        "applying `002_half.sql` to `cut_b`",
        limits.migration,
        took,
        &server,
    );
    assert!(error.to_string().contains("line 2"), "{error}");
    drop(stopped);

    let biome_db = connect(&server.url(
        sandpit_database::ADMIN_USER,
        &server.cluster.admin_password,
        "cut_b",
    ))
    .await
    .unwrap();
    let half: Option<String> = biome_db
        .query_one("SELECT to_regclass('public.half')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        half, None,
        "the first statement of the cut-off file was kept"
    );
    let plan = admin.plan_migrations("cut_b", &set).await.unwrap();
    assert_eq!(plan.pending.len(), 1, "002_half.sql is still pending");
}

#[tokio::test]
async fn migrations_get_their_own_limit_and_one_past_it_leaves_no_template() {
    let server = shared();
    // A healthy (if busy) server: statements get 2 s, migration statements 4 s.
    let timeouts = Timeouts {
        statement: Duration::from_secs(2),
        migration: Duration::from_secs(4),
        ..short_timeouts()
    };
    let admin = server.cluster.admin(timeouts).await.unwrap();
    let project = name("patient");
    let slow = MigrationSet::from_files(
        [(
            "001_slow.sql",
            "SELECT pg_sleep(2.5);\nCREATE TABLE t (id int);",
        )],
        None,
    );
    admin.ensure_template(&project, &slow).await.unwrap();

    let too_slow = MigrationSet::from_files(
        [
            ("001_quick.sql", "CREATE TABLE t (id int);"),
            ("002_slower.sql", "SELECT pg_sleep(60);"),
        ],
        None,
    );
    let (built, took) = timed(admin.ensure_template(&project, &too_slow)).await;
    let error = built.unwrap_err();
    // The server cancels it itself (its statement_timeout), or sandpit gives up at the same time.
    match &error {
        DatabaseError::Timeout { what, after, .. } => {
            assert!(what.contains("002_slower.sql"), "{what}");
            assert_eq!(*after, timeouts.migration);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took >= timeouts.migration, "{took:?}");
    assert!(
        took < timeouts.migration * 2 + Duration::from_secs(3),
        "{took:?}"
    );
    let catalog = server.catalog().await;
    let slower = names::template_database(&project, &too_slow.content_hash());
    let left: Vec<String> = databases_like(&catalog, "patient%")
        .await
        .into_iter()
        .filter(|database| database.starts_with(slower.as_str()))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "nothing of the timed-out build is left"
    );
}

#[tokio::test]
async fn lock_held_by_another_operation_is_waited_for_at_most_the_advisory_lock_limit() {
    let server = shared();
    let limits = short_timeouts();
    let (project, biome) = (name("queued"), name("alice"));
    let other_operation = server.catalog().await;
    let key = names::advisory_lock_key("queued_alice");
    other_operation
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();

    let admin = server.impatient_admin().await.unwrap();
    let (dropped, took) = timed(admin.drop_biome_database(&project, &biome)).await;
    let error = dropped.unwrap_err();
    match &error {
        DatabaseError::LockBusy {
            purpose,
            name,
            after,
            ..
        } => {
            assert_eq!(purpose, "dropping `queued_alice`");
            assert_eq!(name, "queued_alice");
            assert_eq!(*after, limits.advisory_lock);
        }
        other => panic!("expected LockBusy, got {other:?}"),
    }
    assert!(
        error.to_string().contains("another sandpit operation"),
        "{error}"
    );
    assert!(took >= limits.advisory_lock, "{took:?}");
    assert!(
        took < limits.advisory_lock + Duration::from_secs(3),
        "{took:?}"
    );

    other_operation
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    // The one that gave up let go of the teardown queue too.
    admin.drop_biome_database(&project, &biome).await.unwrap();
}

#[tokio::test]
async fn wait_ready_on_a_server_that_refuses_says_so_rather_than_timing_out() {
    let mut cluster = shared().cluster.clone();
    // A loopback port nobody listens on: every attempt is refused at once.
    cluster.port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wait = Duration::from_millis(400);
    let (ready, took) = timed(cluster.wait_ready(wait)).await;
    match ready.unwrap_err() {
        DatabaseError::Unreachable { message, .. } => {
            assert!(message.starts_with("not ready after 400ms: "), "{message}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        took >= wait && took < wait + Duration::from_secs(3),
        "{took:?}"
    );
}
