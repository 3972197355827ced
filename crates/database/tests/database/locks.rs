//! Advisory locks held on the `Admin`'s own connection: operations sharing one `Admin` still run
//! one at a time, and an operation dropped half-way lets go of its lock.

use std::time::Duration;

use sandpit_database::{names, MigrationSet};

use crate::fixture::{databases_like, name, shared};

fn slow_set(seconds: f64) -> MigrationSet {
    MigrationSet::from_files(
        [(
            "001_slow.sql",
            format!("SELECT pg_sleep({seconds});\nCREATE TABLE t (id int);"),
        )],
        None,
    )
}

#[tokio::test]
async fn two_builds_on_one_admin_run_one_after_the_other() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("lock-shared-admin");
    let set = slow_set(0.3);
    // The session holds its advisory locks re-entrantly: without the Admin's own queue both
    // would "hold" the lock and build the same `_building` database at once.
    let (left, right) = tokio::join!(
        admin.ensure_template(&project, &set),
        admin.ensure_template(&project, &set),
    );
    assert_eq!(left.unwrap(), right.unwrap());
    let catalog = server.catalog().await;
    assert_eq!(
        databases_like(&catalog, "lock-shared-admin%").await.len(),
        1
    );
}

#[tokio::test]
async fn an_operation_dropped_while_holding_its_lock_releases_it() {
    let server = shared();
    let project = name("lock-dropped");
    let set = slow_set(30.0);
    let holder = server.admin().await;
    let catalog = server.catalog().await;
    {
        let build = holder.ensure_template(&project, &set);
        tokio::pin!(build);
        // Until the migration runs, so the build holds the template's lock.
        loop {
            tokio::select! {
                result = &mut build => panic!("the build finished: {result:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let running = catalog
                .query(
                    "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' \
                     AND datname LIKE 'lock-dropped%'",
                    &[],
                )
                .await
                .unwrap();
            if !running.is_empty() {
                break;
            }
        }
        // Dropped here, like a caller that gave up on it.
    }
    // `holder` is still alive; the template's lock must not be held any more. (The backend of
    // the closed connection may take a moment to end.)
    let template = names::template_database(&project, &set.content_hash());
    let key = names::advisory_lock_key(template.as_str());
    let mut free = false;
    for _ in 0..100 {
        free = catalog
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .unwrap()
            .get(0);
        if free {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        free,
        "the dropped build still holds the lock on `{template}`"
    );
    catalog
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    // The dropped build's migration session sleeps on in the server: end it, so it does not
    // weigh on the other tests sharing the server.
    drop(holder);
    catalog
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname LIKE 'lock-dropped%'",
        )
        .await
        .unwrap();
}
