//! A template's objects belong to `pg_database_owner`, so in each clone they are its owner's, the
//! biome role's: what that does not give (another biome's database, the template, the role
//! itself, anything a superuser or another predefined role could do), and how templates an older
//! sandpit made are built again.

use sandpit_database::{quote_identifier, MigrationSet, Secret, TemplateName, ADMIN_USER};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::fixture::{connect, name, shared, Server};

fn set() -> MigrationSet {
    MigrationSet::from_files(
        [(
            "001_notes.sql",
            "CREATE TABLE notes (id serial PRIMARY KEY, body text);",
        )],
        None,
    )
}

/// The role every clone's objects belong to.
const DATABASE_OWNER: &str = "pg_database_owner";

async fn owner_of_notes(client: &Client) -> String {
    client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'notes'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The SQLSTATE of `sql` run by `client`, which must fail.
async fn refused(client: &Client, sql: &str) -> SqlState {
    let error = client
        .batch_execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("`{sql}` was allowed"));
    error.code().cloned().unwrap_or_else(|| panic!("{error}"))
}

#[tokio::test]
async fn owning_the_clone_reaches_no_other_database() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("owners");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    let (password_a, password_b) = (Secret::new("pw-owner-a"), Secret::new("pw-owner-b"));
    let a = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password_a)
        .await
        .unwrap();
    let b = admin
        .ensure_biome_database(&project, &name("bob"), &template, &password_b)
        .await
        .unwrap();
    let client_a = connect(&server.url(&a.role, &password_a, &a.database))
        .await
        .unwrap();
    let client_b = connect(&server.url(&b.role, &password_b, &b.database))
        .await
        .unwrap();
    // Nothing was handed over: the clone's objects are `pg_database_owner`'s, as in the
    // template, and so Alice's here.
    assert_eq!(owner_of_notes(&client_a).await, DATABASE_OWNER);
    client_a
        .batch_execute("ALTER TABLE notes ADD COLUMN mine text; DROP TABLE notes")
        .await
        .unwrap();
    client_b
        .batch_execute("INSERT INTO notes (body) VALUES ('bob''s')")
        .await
        .unwrap();

    // The roles: no superuser, nothing but their own login, no membership in any role (no
    // pg_read_server_files and the like).
    let catalog = server.catalog().await;
    for role in [&a.role, &b.role] {
        let row = catalog
            .query_one(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls \
                 FROM pg_roles WHERE rolname = $1",
                &[role],
            )
            .await
            .unwrap();
        let powers: Vec<bool> = (0..5).map(|column| row.get(column)).collect();
        assert_eq!(powers, [false; 5], "{role}");
        let memberships = catalog
            .query(
                "SELECT 1 FROM pg_auth_members WHERE member = (SELECT oid FROM pg_roles \
                 WHERE rolname = $1)",
                &[role],
            )
            .await
            .unwrap();
        assert!(memberships.is_empty(), "{role} is a member of some role");
    }
    let superusers: Vec<String> = catalog
        .query("SELECT rolname::text FROM pg_roles WHERE rolsuper", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(superusers, [ADMIN_USER]);
    assert_eq!(
        refused(&client_a, "SELECT pg_read_file('PG_VERSION')").await,
        SqlState::INSUFFICIENT_PRIVILEGE
    );

    // Alice's credentials open neither Bob's database nor the template.
    for (database, expected) in [
        (b.database.as_str(), SqlState::INSUFFICIENT_PRIVILEGE),
        (
            template.as_str(),
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        ),
        ("postgres", SqlState::INSUFFICIENT_PRIVILEGE),
    ] {
        let error = connect(&server.url(&a.role, &password_a, database))
            .await
            .err()
            .unwrap_or_else(|| panic!("alice could connect to {database}"));
        assert_eq!(error.code(), Some(&expected), "{database}: {error}");
    }

    // Alice can neither change nor hand out `pg_database_owner`, nor give her database away,
    // nor touch Bob's.
    let quoted_b = quote_identifier(&b.role);
    for sql in [
        format!("DROP ROLE {DATABASE_OWNER}"),
        format!("GRANT {DATABASE_OWNER} TO {quoted_b}"),
        format!(
            "ALTER DATABASE {} OWNER TO {quoted_b}",
            quote_identifier(&a.database)
        ),
        format!("DROP DATABASE {}", quote_identifier(&b.database)),
        format!("ALTER ROLE {quoted_b} PASSWORD 'taken'"),
    ] {
        assert_eq!(
            refused(&client_a, &sql).await,
            SqlState::INSUFFICIENT_PRIVILEGE,
            "{sql}"
        );
    }
    assert_eq!(
        refused(&client_a, &format!("ALTER ROLE {DATABASE_OWNER} LOGIN")).await,
        SqlState::RESERVED_NAME
    );
    let count: i64 = client_b
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "bob's table survives alice dropping hers");

    // Dropping a biome leaves the other biomes' objects theirs, and the template clonable.
    drop(client_a);
    admin
        .drop_biome_database(&project, &name("alice"))
        .await
        .unwrap();
    client_b
        .batch_execute("ALTER TABLE notes ADD COLUMN extra text")
        .await
        .unwrap();
    let carol = admin
        .ensure_biome_database(&project, &name("carol"), &template, &password_a)
        .await
        .unwrap();
    let client_c = connect(&server.url(&carol.role, &password_a, &carol.database))
        .await
        .unwrap();
    assert_eq!(owner_of_notes(&client_c).await, DATABASE_OWNER);
}

/// Turns a template built now back into what an older sandpit left: objects owned by the
/// administrator, no comment.
async fn make_it_as_before(server: &Server, catalog: &Client, template: &TemplateName) {
    let quoted = quote_identifier(template.as_str());
    catalog
        .batch_execute(&format!(
            "ALTER DATABASE {quoted} IS_TEMPLATE false ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    let cluster = &server.cluster;
    let inside = connect(&server.url(
        &cluster.admin_user,
        &cluster.admin_password,
        template.as_str(),
    ))
    .await
    .unwrap();
    inside
        .batch_execute(&format!(
            "ALTER TABLE notes OWNER TO {}",
            quote_identifier(ADMIN_USER)
        ))
        .await
        .unwrap();
    drop(inside);
    catalog
        .batch_execute(&format!("COMMENT ON DATABASE {quoted} IS NULL"))
        .await
        .unwrap();
    // The session in the template may take a moment to end before it can be a template again.
    for attempt in 0.. {
        let marked = catalog
            .batch_execute(&format!(
                "ALTER DATABASE {quoted} IS_TEMPLATE true ALLOW_CONNECTIONS false"
            ))
            .await;
        match marked {
            Ok(()) => break,
            Err(_) if attempt < 100 => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}

#[tokio::test]
async fn a_template_an_older_sandpit_built_still_clones_and_is_rebuilt() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("older");
    let template = admin.ensure_template(&project, &set()).await.unwrap();
    let catalog = server.catalog().await;
    make_it_as_before(server, &catalog, &template).await;

    // A clone of it gets its objects handed over, as before.
    let password = Secret::new("pw-older");
    let before = admin
        .ensure_biome_database(&project, &name("before"), &template, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&before.role, &password, &before.database))
        .await
        .unwrap();
    assert_eq!(owner_of_notes(&client).await, before.role);
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('kept')")
        .await
        .unwrap();

    // Asking for the template again builds it anew under the same name.
    assert_eq!(
        admin.ensure_template(&project, &set()).await.unwrap(),
        template
    );
    let comment: Option<String> = catalog
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&template.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        comment.as_deref(),
        Some("sandpit template objects=pg_database_owner")
    );
    let after = admin
        .ensure_biome_database(&project, &name("after"), &template, &password)
        .await
        .unwrap();
    let client_after = connect(&server.url(&after.role, &password, &after.database))
        .await
        .unwrap();
    assert_eq!(owner_of_notes(&client_after).await, DATABASE_OWNER);

    // The biome made before keeps its data and its objects through another `up`.
    admin
        .ensure_biome_database(&project, &name("before"), &template, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&before.role, &password, &before.database))
        .await
        .unwrap();
    assert_eq!(owner_of_notes(&client).await, before.role);
    let count: i64 = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}
