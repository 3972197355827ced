//! The read-only shared reference database.

use sandpit_database::{names, MigrationFile, MigrationSet, Secret};

use crate::fixture::{connect, name, shared};

#[tokio::test]
async fn biomes_read_the_shared_database_but_cannot_write() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("refdata");
    let load = MigrationFile::new(
        "shared.sql",
        "CREATE TABLE wells (id int PRIMARY KEY, name text); \
         INSERT INTO wells VALUES (1, 'north'), (2, 'south');",
    );
    admin.ensure_shared_database(&project, &load).await.unwrap();
    let shared_name = names::shared_database(&project);
    let catalog = server.catalog().await;
    let oid_query = "SELECT oid FROM pg_database WHERE datname = $1";
    let oid: u32 = catalog
        .query_one(oid_query, &[&shared_name])
        .await
        .unwrap()
        .get(0);
    admin.ensure_shared_database(&project, &load).await.unwrap();
    let same: u32 = catalog
        .query_one(oid_query, &[&shared_name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(oid, same, "same content is not reloaded");

    let template = admin
        .ensure_template(
            &project,
            &MigrationSet::from_files([("001.sql", "CREATE TABLE t (id int);")], None),
        )
        .await
        .unwrap();
    let password = Secret::new("pw-reader");
    let biome = admin
        .ensure_biome_database(&project, &name("reader"), &template, &password)
        .await
        .unwrap();
    let other_password = Secret::new("pw-other");
    let other = admin
        .ensure_biome_database(&project, &name("other"), &template, &other_password)
        .await
        .unwrap();
    admin
        .grant_shared_read(&project, &biome.role)
        .await
        .unwrap();

    let client = connect(&server.url(&biome.role, &password, &shared_name))
        .await
        .unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM wells", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // Refused by permissions even when the role lifts the read-only default.
    for statement in [
        "INSERT INTO wells VALUES (3, 'east')",
        "SET default_transaction_read_only = off; INSERT INTO wells VALUES (3, 'east')",
        "SET default_transaction_read_only = off; UPDATE wells SET name = 'x'",
        "SET default_transaction_read_only = off; CREATE TABLE mine (id int)",
        "SET default_transaction_read_only = off; CREATE TEMP TABLE mine (id int)",
    ] {
        let error = client.batch_execute(statement).await.unwrap_err();
        let message = error.as_db_error().unwrap().message().to_owned();
        assert!(
            message.contains("permission denied") || message.contains("read-only transaction"),
            "{statement}: {message}"
        );
    }
    // A biome that was not granted access cannot even connect.
    assert!(
        connect(&server.url(&other.role, &other_password, &shared_name))
            .await
            .is_err()
    );

    // New content replaces the database, and existing readers keep their access.
    let reload = MigrationFile::new(
        "shared.sql",
        "CREATE TABLE wells (id int PRIMARY KEY, name text); INSERT INTO wells VALUES (9, 'west');",
    );
    admin
        .ensure_shared_database(&project, &reload)
        .await
        .unwrap();
    let client = connect(&server.url(&biome.role, &password, &shared_name))
        .await
        .unwrap();
    let name_row: String = client
        .query_one("SELECT name FROM wells", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name_row, "west");
    assert!(client
        .batch_execute("SET default_transaction_read_only = off; DELETE FROM wells")
        .await
        .is_err());
}
