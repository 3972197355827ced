//! A server killed in the middle of building a template leaves no template behind.

use std::time::Duration;

use sandpit_database::{names, MigrationSet};

use crate::fixture::{databases_like, name, Server};

#[tokio::test]
async fn server_killed_during_template_build_leaves_no_template() {
    let server = Server::start();
    let project = name("crashy");
    let set = MigrationSet::from_files(
        [
            ("001_table.sql", "CREATE TABLE t (id int);"),
            (
                "002_slow.sql",
                "SELECT pg_sleep(2); INSERT INTO t VALUES (1);",
            ),
        ],
        None,
    );
    let template = names::template_database(&project, &set.content_hash());
    let building = names::building_database(template.as_str());

    let admin = server.admin().await;
    let watcher = server.catalog().await;
    let build = tokio::spawn({
        let set = set.clone();
        let project = project.clone();
        async move { admin.ensure_template(&project, &set).await }
    });
    // Wait until the slow migration is running, then pull the plug.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = watcher
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep%'",
                &[&building],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow migration never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.crash();
    let error = build.await.unwrap().unwrap_err();
    assert!(!error
        .to_string()
        .contains(server.cluster.admin_password.expose()));

    server.launch();
    let catalog = server.catalog().await;
    assert!(
        !databases_like(&catalog, "crashy%")
            .await
            .contains(&template.to_string()),
        "no template after a crash"
    );
    let admin = server.admin().await;
    let built = admin.ensure_template(&project, &set).await.unwrap();
    assert_eq!(built, template);
    assert_eq!(
        databases_like(&catalog, "crashy%").await,
        [template.to_string()],
        "the leftover `_building` database is gone"
    );
}
