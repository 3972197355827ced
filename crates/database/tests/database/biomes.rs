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
