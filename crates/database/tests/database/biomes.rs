//! Biome databases: isolated from each other, from templates, and dropped without a trace.

use sandpit_database::{DatabaseError, MigrationSet, Secret};

use crate::fixture::{connect, databases_like, name, shared};

fn set() -> MigrationSet {
    MigrationSet::from_files(
        [(
            "001_notes.sql",
            "CREATE TABLE notes (id serial PRIMARY KEY, body text);",
        )],
        None,
    )
}

#[tokio::test]
async fn biomes_side_by_side_see_only_their_own_data() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("side");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    let (password_a, password_b) = (Secret::new("pw-a"), Secret::new("pw-b"));
    let a = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password_a)
        .await
        .unwrap();
    let b = admin
        .ensure_biome_database(&project, &name("bob"), &template, &password_b)
        .await
        .unwrap();
    assert_eq!(
        (a.database.as_str(), a.role.as_str()),
        ("side_alice", "side_alice_rw")
    );
    assert_eq!(
        admin.template_of(&a.database).await.unwrap(),
        Some(template.clone())
    );
    assert_eq!(a.template, template);
    assert!(format!("{a:?}").contains("***") && !format!("{a:?}").contains("pw-a"));

    let client_a = connect(&server.url(&a.role, &password_a, &a.database))
        .await
        .unwrap();
    client_a
        .batch_execute("INSERT INTO notes (body) VALUES ('from alice')")
        .await
        .unwrap();
    let client_b = connect(&server.url(&b.role, &password_b, &b.database))
        .await
        .unwrap();
    let count: i64 = client_b
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    let count: i64 = client_a
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    // Alice's credentials open nothing but Alice's database.
    for (database, expected) in [
        (b.database.as_str(), "permission denied for database"),
        (template.as_str(), "is not currently accepting connections"),
        ("postgres", "permission denied for database"),
    ] {
        let error = connect(&server.url(&a.role, &password_a, database))
            .await
            .err()
            .unwrap_or_else(|| panic!("alice could connect to {database}"));
        let message = error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains(expected), "{database}: {message}");
    }
    // And the wrong password opens nothing.
    assert!(connect(&server.url(&a.role, &password_b, &a.database))
        .await
        .is_err());
}

#[tokio::test]
async fn drop_leaves_no_database_and_no_role() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("dropper");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    admin
        .ensure_shared_database(
            &project,
            &sandpit_database::MigrationFile::new("shared.sql", "CREATE TABLE lookup (k int);"),
        )
        .await
        .unwrap();
    let password = Secret::new("pw-gone");
    let biome = admin
        .ensure_biome_database(&project, &name("gone"), &template, &password)
        .await
        .unwrap();
    admin
        .grant_shared_read(&project, &biome.role)
        .await
        .unwrap();
    // A live session does not stop the drop.
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();

    admin
        .drop_biome_database(&project, &name("gone"))
        .await
        .unwrap();
    admin
        .drop_biome_database(&project, &name("gone"))
        .await
        .unwrap();
    assert!(
        client.batch_execute("SELECT 1").await.is_err(),
        "session was ended"
    );

    let catalog = server.catalog().await;
    assert_eq!(
        databases_like(&catalog, "dropper_gone%").await,
        Vec::<String>::new()
    );
    let roles = catalog
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&biome.role])
        .await
        .unwrap();
    assert!(roles.is_empty());
    assert!(!admin.database_exists(&biome.database).await.unwrap());
    // The template and the shared database are untouched.
    assert!(admin.database_exists(template.as_str()).await.unwrap());
    assert!(admin.database_exists("dropper_shared").await.unwrap());
}

#[tokio::test]
async fn unreachable_server_is_reported_without_the_password() {
    let url = "postgres://sandpit_admin:topsecret@127.0.0.1:1/postgres";
    let error = sandpit_database::Admin::connect(url).await.unwrap_err();
    assert!(matches!(error, DatabaseError::Unreachable { .. }));
    let message = error.to_string();
    assert!(!message.contains("topsecret"), "{message}");
    assert!(
        message.contains("sandpit_admin:***@127.0.0.1:1"),
        "{message}"
    );
}

#[tokio::test]
async fn the_role_gets_every_kind_of_object_the_migrations_made() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("handover");
    let set = MigrationSet::from_files(
        [(
            "001_everything.sql",
            "CREATE EXTENSION citext;\n\
             CREATE SCHEMA reports;\n\
             CREATE TABLE reports.grades (id serial PRIMARY KEY, tag citext);\n\
             CREATE SEQUENCE free_standing;\n\
             CREATE VIEW reports.v AS SELECT 1 AS one;\n\
             CREATE MATERIALIZED VIEW m AS SELECT 1 AS one;\n\
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);\n\
             CREATE TYPE mood AS ENUM ('ok');\n\
             CREATE TYPE pair AS (a int, b int);\n\
             CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n\
             CREATE PROCEDURE noop() LANGUAGE sql AS 'SELECT 1';\n\
             CREATE AGGREGATE total(int) (SFUNC = int4pl, STYPE = int);\n",
        )],
        None,
    );
    let template = admin.ensure_template(&project, &set).await.unwrap();
    let password = Secret::new("pw-handover");
    let biome = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();
    // Whatever the role has no owner's rights to in the user schemas is an extension's
    // (citext's own objects). Those rights come from membership in the template's owner role.
    let left: Vec<String> = client
        .query(
            "WITH mine AS (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'reports')), \
             extension AS (SELECT objid FROM pg_depend WHERE deptype = 'e') \
             SELECT 'schema ' || nspname FROM pg_namespace \
               WHERE oid IN (SELECT oid FROM mine) AND NOT pg_has_role(nspowner, 'USAGE') \
             UNION ALL SELECT 'relation ' || c.oid::regclass::text FROM pg_class c \
               WHERE c.relnamespace IN (SELECT oid FROM mine) AND c.relkind IN ('r', 'S', 'v', 'm') \
               AND NOT pg_has_role(c.relowner, 'USAGE') AND c.oid NOT IN (SELECT objid FROM extension) \
             UNION ALL SELECT 'routine ' || p.oid::regprocedure::text FROM pg_proc p \
               WHERE p.pronamespace IN (SELECT oid FROM mine) \
               AND NOT pg_has_role(p.proowner, 'USAGE') AND p.oid NOT IN (SELECT objid FROM extension) \
             UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t \
               WHERE t.typnamespace IN (SELECT oid FROM mine) AND t.typtype IN ('e', 'd', 'c') \
               AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
               AND NOT pg_has_role(t.typowner, 'USAGE') AND t.oid NOT IN (SELECT objid FROM extension) \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    // Owning them, the role can change each kind.
    client
        .batch_execute(
            "ALTER TABLE reports.grades ADD COLUMN extra text; SELECT nextval('free_standing'); \
             REFRESH MATERIALIZED VIEW m; ALTER DOMAIN positive SET DEFAULT 1; \
             ALTER TYPE pair ADD ATTRIBUTE c int; DROP PROCEDURE noop(); \
             DROP AGGREGATE total(int); CREATE TABLE reports.mine (id int);",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_clone_left_without_its_role_and_grants_is_finished_by_the_next_call() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("halfway");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    // What a crash right after the clone leaves: the database, owned by the administrator,
    // open to PUBLIC, without a comment, and no role.
    let catalog = server.catalog().await;
    catalog
        .batch_execute(&format!(
            "CREATE DATABASE halfway_alice TEMPLATE {}",
            sandpit_database::quote_identifier(template.as_str())
        ))
        .await
        .unwrap();
    let password = Secret::new("pw-halfway");
    let biome = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password)
        .await
        .unwrap();
    assert_eq!(biome.template, template);
    assert_eq!(
        admin.template_of(&biome.database).await.unwrap(),
        Some(template)
    );
    let row = catalog
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text, \
             has_database_privilege('public', oid, 'CONNECT') \
             FROM pg_database WHERE datname = 'halfway_alice'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        (biome.role.clone(), false)
    );
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('mine')")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sizes_of_many_biome_databases_come_in_one_answer_and_grow_with_their_data() {
    let server = shared();
    // Read as `sandpit ls` reads it: from the cluster's files, preparing nothing.
    let url = sandpit_database::cluster::existing_admin_url(&server.cluster.state_dir)
        .expect("the running cluster is initialised");
    let admin = sandpit_database::Admin::connect(&url).await.unwrap();
    let project = name("sized");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    let password = Secret::new("pw-sized");
    let a = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password)
        .await
        .unwrap();
    let b = admin
        .ensure_biome_database(&project, &name("bob"), &template, &password)
        .await
        .unwrap();
    let asked = [
        a.database.clone(),
        b.database.clone(),
        "sized_nobody".to_owned(),
    ];
    let before = admin.database_sizes(&asked).await.unwrap();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        [&a.database, &b.database],
        "a database that does not exist is left out"
    );
    let catalog = server.catalog().await;
    let expected: i64 = catalog
        .query_one("SELECT pg_database_size($1::text)", &[&a.database])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before[&a.database], expected as u64);
    assert!(before[&a.database] > 0);

    let client = connect(&server.url(&a.role, &password, &a.database))
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO notes (body) SELECT repeat('x', 1000) FROM generate_series(1, 5000)",
        )
        .await
        .unwrap();
    let after = admin.database_sizes(&asked).await.unwrap();
    assert!(
        after[&a.database] > before[&a.database] + 1_000_000,
        "{before:?} → {after:?}"
    );
    assert_eq!(admin.database_sizes(&[]).await.unwrap().len(), 0);
}

#[test]
fn a_cluster_that_was_never_initialised_has_no_admin_url() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        sandpit_database::cluster::existing_admin_url(dir.path()),
        None
    );
    // Password and port alone (an interrupted first start) are not a cluster yet.
    std::fs::write(dir.path().join("admin-password"), "pw").unwrap();
    std::fs::write(dir.path().join("port"), "5999\n").unwrap();
    assert_eq!(
        sandpit_database::cluster::existing_admin_url(dir.path()),
        None
    );
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data").join("PG_VERSION"), "16\n").unwrap();
    let url = sandpit_database::cluster::existing_admin_url(dir.path()).unwrap();
    assert!(url.contains("127.0.0.1:5999"), "{url}");
}
