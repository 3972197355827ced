//! Templates: built once per content hash, never left half-made.

use sandpit_database::{names, quote_identifier, DatabaseError, MigrationSet, Secret};

use crate::fixture::{connect, databases_like, name, shared};

fn migrations(extra: &str) -> MigrationSet {
    MigrationSet::from_files(
        [
            (
                "002_grades.sql",
                format!("CREATE TABLE grades (id serial PRIMARY KEY, student text NOT NULL, score int);\n{extra}"),
            ),
            ("001_schema.sql", "CREATE SCHEMA reports;".to_owned()),
            ("README.md", "not sql".to_owned()),
        ],
        Some((
            "seed.sql",
            "INSERT INTO grades (student, score) VALUES ('ada', 90);".to_owned(),
        )),
    )
}

async fn oid_of(client: &tokio_postgres::Client, database: &str) -> Option<u32> {
    client
        .query_opt(
            "SELECT oid FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

#[tokio::test]
async fn template_is_built_once_per_content_hash() {
    let server = shared();
    let admin = server.admin().await;
    let catalog = server.catalog().await;
    let project = name("tpl-once");
    let first_set = migrations("");

    let first = admin.ensure_template(&project, &first_set).await.unwrap();
    assert_eq!(
        first.as_str(),
        format!("tpl-once_tpl_{}", &first_set.content_hash()[..12])
    );
    let oid = oid_of(&catalog, first.as_str()).await.unwrap();
    let again = admin.ensure_template(&project, &first_set).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        oid_of(&catalog, first.as_str()).await,
        Some(oid),
        "not rebuilt"
    );

    let second_set = migrations("CREATE INDEX ON grades (student);");
    let second = admin.ensure_template(&project, &second_set).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(databases_like(&catalog, "tpl-once_tpl_%").await, {
        let mut both = vec![first.to_string(), second.to_string()];
        both.sort();
        both
    });
    let row = catalog
        .query_one(
            "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1",
            &[&first.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        (true, false)
    );

    // The clone carries the migration record, in order, with checksums.
    let password = Secret::new("pw-once");
    let biome = admin
        .ensure_biome_database(&project, &name("check"), &first, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT file, checksum FROM sandpit_migrations ORDER BY applied_at, file",
            &[],
        )
        .await
        .unwrap();
    let files: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(files, ["001_schema.sql", "002_grades.sql", "seed.sql"]);
    assert_eq!(rows[1].get::<_, String>(1), first_set.files[1].checksum);
    let seeded: i64 = client
        .query_one("SELECT count(*) FROM grades", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seeded, 1);
}

#[tokio::test]
async fn concurrent_builds_of_one_template_agree() {
    let server = shared();
    let project = name("tpl-race");
    let set = migrations("SELECT pg_sleep(0.3);");
    let (left, right) = tokio::join!(
        async { server.admin().await.ensure_template(&project, &set).await },
        async { server.admin().await.ensure_template(&project, &set).await },
    );
    assert_eq!(left.unwrap(), right.unwrap());
    let catalog = server.catalog().await;
    assert_eq!(databases_like(&catalog, "tpl-race%").await.len(), 1);
}

#[tokio::test]
async fn failing_migration_names_file_and_line_and_leaves_nothing() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("tpl-broken");
    let set = MigrationSet::from_files(
        [
            ("001_ok.sql", "CREATE TABLE ok (id int);"),
            (
                "002_broken.sql",
                "-- a comment\nCREATE TABLE fine (id int);\nCREATE TABEL broken (id int);\n",
            ),
            ("003_never.sql", "CREATE TABLE never (id int);"),
        ],
        None,
    );
    let error = admin.ensure_template(&project, &set).await.unwrap_err();
    match &error {
        DatabaseError::MigrationFailed {
            file,
            line,
            message,
        } => {
            assert_eq!(file, "002_broken.sql");
            assert_eq!(*line, Some(3));
            assert!(
                message.contains("syntax error at or near \"TABEL\""),
                "{message}"
            );
        }
        other => panic!("expected MigrationFailed, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("`002_broken.sql` at line 3"), "{shown}");
    let catalog = server.catalog().await;
    assert_eq!(
        databases_like(&catalog, "tpl-broken%").await,
        Vec::<String>::new()
    );

    // Fixing the file is enough to succeed.
    let fixed = MigrationSet::from_files(
        [
            ("001_ok.sql", "CREATE TABLE ok (id int);"),
            ("002_broken.sql", "CREATE TABLE broken (id int);"),
        ],
        None,
    );
    let template = admin.ensure_template(&project, &fixed).await.unwrap();
    assert_eq!(
        databases_like(&catalog, "tpl-broken%").await,
        [template.to_string()]
    );
}

#[tokio::test]
async fn long_names_and_weird_identifiers_work_on_the_server() {
    let server = shared();
    let admin = server.admin().await;
    let project = name(&format!("long-{}", "p".repeat(35)));
    let biome = name(&format!("biome-{}", "b".repeat(34)));
    let set = MigrationSet::from_files(
        [(
            "001.sql",
            format!(
                "CREATE EXTENSION citext; CREATE TABLE {} (id int, tag citext); \
                 CREATE SEQUENCE free_standing; \
                 CREATE VIEW v AS SELECT 1 AS one; CREATE TYPE mood AS ENUM ('ok'); \
                 CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';",
                quote_identifier("we\"ird name; DROP TABLE x")
            ),
        )],
        None,
    );
    let template = admin.ensure_template(&project, &set).await.unwrap();
    let password = Secret::new("it's a \"pass\" @/:%");
    let created = admin
        .ensure_biome_database(&project, &biome, &template, &password)
        .await
        .unwrap();
    assert_eq!(created.database.len(), names::MAX_IDENTIFIER_BYTES);
    assert_eq!(created.role.len(), names::MAX_IDENTIFIER_BYTES);
    assert_eq!(created.database, names::biome_database(&project, &biome));

    // The role owns everything the migrations made, so it can change all of it.
    let client = connect(&server.url(&created.role, &password, &created.database))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN extra text; SELECT nextval('free_standing'); \
             CREATE OR REPLACE VIEW v AS SELECT 2 AS one; ALTER TYPE mood ADD VALUE 'great'; \
             DROP FUNCTION answer(); CREATE TABLE mine (id int);",
            quote_identifier("we\"ird name; DROP TABLE x")
        ))
        .await
        .unwrap();
    // Idempotent, and keeps the data.
    let again = admin
        .ensure_biome_database(&project, &biome, &template, &password)
        .await
        .unwrap();
    assert_eq!(again, created);
    client.batch_execute("SELECT * FROM mine").await.unwrap();
}
