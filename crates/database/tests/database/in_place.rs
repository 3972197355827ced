//! Long-lived databases brought forward in place: the plan, the rehearsal on live data that
//! changes nothing, the application that keeps the data, and the refusals.

use std::time::{Duration, Instant};

use sandpit_database::{
    plan, BiomeDatabase, DatabaseError, MigrationFile, MigrationKind, MigrationSet, Secret,
};

use crate::fixture::{connect, databases_like, name, shared, Server};

const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

const GRADES: (&str, &str) = (
    "001_grades.sql",
    "CREATE TABLE grades (id serial PRIMARY KEY, student text NOT NULL, score int);",
);
const SEED: (&str, &str) = (
    "db/seed.sql",
    "INSERT INTO grades (student, score) VALUES ('ada', 90);",
);

fn set(files: &[(&str, &str)], seed: Option<(&str, &str)>) -> MigrationSet {
    MigrationSet::from_files(files.iter().copied(), seed)
}

/// The biome's database cloned from `set`'s template, with a client connected as its role and a
/// row written by "the service".
async fn biome_with_rows(
    server: &Server,
    project: &str,
    set: &MigrationSet,
) -> (BiomeDatabase, tokio_postgres::Client) {
    let admin = server.admin().await;
    let project = name(project);
    let template = admin.ensure_template(&project, set).await.unwrap();
    let password = Secret::new("pw-in-place");
    let biome = admin
        .ensure_biome_database(&project, &name("alice"), &template, &password)
        .await
        .unwrap();
    let client = connect(&server.url(&biome.role, &password, &biome.database))
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO grades (student, score) VALUES ('bob', 70)")
        .await
        .unwrap();
    (biome, client)
}

/// `table.column` for every column in `public`: the schema, as far as these tests care.
async fn columns(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name || '.' || column_name FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// `(file, checksum, kind)` of every row of `sandpit_migrations`.
async fn history(client: &tokio_postgres::Client) -> Vec<(String, String, String)> {
    client
        .query(
            "SELECT file, checksum, kind FROM sandpit_migrations ORDER BY file",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn names(files: &[MigrationFile]) -> Vec<&str> {
    files.iter().map(|file| file.name.as_str()).collect()
}

/// An administrator's client in `database` (the fixture's URL names the `postgres` database).
async fn admin_client(server: &Server, database: &str) -> tokio_postgres::Client {
    let url = server.cluster.admin_url();
    let (base, _) = url.rsplit_once('/').unwrap();
    connect(&format!("{base}/{database}")).await.unwrap()
}

#[tokio::test]
async fn new_migration_is_rehearsed_then_applied_in_place_keeping_the_data() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], Some(SEED));
    let (biome, client) = biome_with_rows(server, "inplace-new", &v1).await;
    let v2 = set(
        &[
            GRADES,
            (
                "002_comments.sql",
                "CREATE TABLE comments (id serial PRIMARY KEY, grade int REFERENCES grades, body text);\n\
                 ALTER TABLE grades ADD COLUMN note text;\n",
            ),
        ],
        Some(SEED),
    );

    let planned = admin.plan_migrations(&biome.database, &v2).await.unwrap();
    assert_eq!(names(&planned.pending), ["002_comments.sql"]);
    assert!(planned.changed.is_empty() && planned.ahead.is_empty());

    let (columns_before, history_before) = (columns(&client).await, history(&client).await);
    admin
        .rehearse(&biome.database, &planned.pending, LOCK_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        columns(&client).await,
        columns_before,
        "rehearsal kept nothing"
    );
    assert_eq!(history(&client).await, history_before);

    let applied = admin
        .apply_in_place(
            &name("inplace-new"),
            &name("alice"),
            &planned.pending,
            LOCK_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(applied, ["002_comments.sql"]);
    let students: Vec<String> = client
        .query("SELECT student FROM grades ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        students,
        ["ada", "bob"],
        "rows kept, seed not applied again"
    );
    assert_eq!(
        history(&client).await,
        [
            (
                "001_grades.sql".to_owned(),
                v2.files[0].checksum.clone(),
                "migration".to_owned()
            ),
            (
                "002_comments.sql".to_owned(),
                v2.files[1].checksum.clone(),
                "migration".to_owned()
            ),
            (
                "db/seed.sql".to_owned(),
                v2.seed.as_ref().unwrap().checksum.clone(),
                "seed".to_owned()
            ),
        ]
    );

    // The role owns what the migration created, so the service can use and change it.
    client
        .batch_execute(
            "INSERT INTO comments (grade, body) VALUES (1, 'well done'); \
             UPDATE grades SET note = 'checked'; \
             ALTER TABLE comments ADD COLUMN author text",
        )
        .await
        .unwrap();
    let owner: String = client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'comments'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, biome.role);

    let again = admin.plan_migrations(&biome.database, &v2).await.unwrap();
    assert!(again.is_current(), "{again:?}");
}

#[tokio::test]
async fn concurrent_applications_apply_each_file_once() {
    let server = shared();
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-race", &v1).await;
    let files = [MigrationFile::new(
        "002_slow.sql",
        "SELECT pg_sleep(0.3);\nCREATE TABLE slow (id int);",
    )];
    let (project, alice) = (name("inplace-race"), name("alice"));
    let (left, right) = tokio::join!(
        async {
            let admin = server.admin().await;
            admin
                .apply_in_place(&project, &alice, &files, LOCK_TIMEOUT)
                .await
        },
        async {
            let admin = server.admin().await;
            admin
                .apply_in_place(&project, &alice, &files, LOCK_TIMEOUT)
                .await
        },
    );
    let mut applied = [left.unwrap(), right.unwrap()];
    applied.sort();
    assert_eq!(applied, [vec![], vec!["002_slow.sql".to_owned()]]);
    assert_eq!(history(&client).await.len(), 2);
    assert_eq!(
        server
            .admin()
            .await
            .applied_migrations(&biome.database)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn rehearsal_catches_a_migration_the_existing_rows_break() {
    let server = shared();
    let admin = server.admin().await;
    // An environment base without a seed: only the service's rows are in it.
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-rows", &v1).await;
    let v2 = set(
        &[
            GRADES,
            (
                "002_teacher.sql",
                "-- every grade needs a teacher\nALTER TABLE grades ADD COLUMN teacher text NOT NULL;\n",
            ),
        ],
        None,
    );
    // The empty template accepts it: only the real data shows the problem.
    admin
        .ensure_template(&name("inplace-rows"), &v2)
        .await
        .unwrap();

    let planned = admin.plan_migrations(&biome.database, &v2).await.unwrap();
    let (columns_before, history_before) = (columns(&client).await, history(&client).await);
    let error = admin
        .rehearse(&biome.database, &planned.pending, LOCK_TIMEOUT)
        .await
        .unwrap_err();
    match &error {
        DatabaseError::RehearsalFailed {
            database,
            file,
            line,
            message,
        } => {
            assert_eq!(database, &biome.database);
            assert_eq!(file, "002_teacher.sql");
            assert_eq!(*line, Some(2));
            assert!(message.contains("contains null values"), "{message}");
        }
        other => panic!("expected RehearsalFailed, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(
        shown.contains("`002_teacher.sql` at line 2") && shown.contains("nothing was changed"),
        "{shown}"
    );
    assert_eq!(columns(&client).await, columns_before);
    assert_eq!(history(&client).await, history_before);
}

#[tokio::test]
async fn failing_file_in_place_is_rolled_back_and_earlier_files_are_reported() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-fail", &v1).await;
    let v2 = set(
        &[
            GRADES,
            ("002_ok.sql", "CREATE TABLE ok (id int);"),
            (
                "003_bad.sql",
                "CREATE TABLE half (id int);\nINSERT INTO missing VALUES (1);\n",
            ),
            ("004_never.sql", "CREATE TABLE never (id int);"),
        ],
        None,
    );
    let planned = admin.plan_migrations(&biome.database, &v2).await.unwrap();
    let error = admin
        .apply_in_place(
            &name("inplace-fail"),
            &name("alice"),
            &planned.pending,
            LOCK_TIMEOUT,
        )
        .await
        .unwrap_err();
    match &error {
        DatabaseError::InPlaceMigrationFailed {
            file,
            line,
            message,
            applied,
            ..
        } => {
            assert_eq!(file, "003_bad.sql");
            assert_eq!(*line, Some(2));
            assert!(message.contains("\"missing\" does not exist"), "{message}");
            assert_eq!(applied, &["002_ok.sql"]);
        }
        other => panic!("expected InPlaceMigrationFailed, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(
        shown.contains("`003_bad.sql` at line 2")
            && shown.contains("`002_ok.sql` applied before it stay applied"),
        "{shown}"
    );
    let tables = columns(&client).await;
    assert!(tables.contains(&"ok.id".to_owned()), "{tables:?}");
    assert!(
        !tables
            .iter()
            .any(|c| c.starts_with("half.") || c.starts_with("never.")),
        "{tables:?}"
    );
    let recorded: Vec<String> = history(&client)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(recorded, ["001_grades.sql", "002_ok.sql"]);
    let replanned = admin.plan_migrations(&biome.database, &v2).await.unwrap();
    assert_eq!(names(&replanned.pending), ["003_bad.sql", "004_never.sql"]);
}

#[tokio::test]
async fn changed_migration_is_refused_naming_both_hashes() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-changed", &v1).await;
    let edited = set(
        &[
            (
                GRADES.0,
                "CREATE TABLE grades (id serial PRIMARY KEY, student text);",
            ),
            ("002_new.sql", "CREATE TABLE new (id int);"),
        ],
        None,
    );
    let planned = admin
        .plan_migrations(&biome.database, &edited)
        .await
        .unwrap();
    assert_eq!(names(&planned.pending), ["002_new.sql"]);
    assert_eq!(planned.changed.len(), 1);
    assert_eq!(planned.changed[0].applied_checksum, v1.files[0].checksum);
    assert_eq!(planned.changed[0].commit_checksum, edited.files[0].checksum);

    let refusals = [
        planned.refuse_changed(&biome.database).unwrap_err(),
        admin
            .rehearse(&biome.database, &edited.files, LOCK_TIMEOUT)
            .await
            .unwrap_err(),
        admin
            .apply_in_place(
                &name("inplace-changed"),
                &name("alice"),
                &edited.files,
                LOCK_TIMEOUT,
            )
            .await
            .unwrap_err(),
    ];
    for error in refusals {
        assert!(
            matches!(error, DatabaseError::MigrationChanged { .. }),
            "{error:?}"
        );
        let shown = error.to_string();
        for part in [
            "`001_grades.sql`",
            v1.files[0].checksum.as_str(),
            edited.files[0].checksum.as_str(),
            "never re-run or skipped",
            "hint: restore the file as it was",
        ] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
    }
    // Refused before anything ran: the new file after it was not applied either.
    let recorded: Vec<String> = history(&client)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(recorded, ["001_grades.sql"]);
}

#[tokio::test]
async fn transaction_control_is_unwrapped_or_refused_and_plpgsql_bodies_work() {
    let server = shared();
    let admin = server.admin().await;
    let project = name("inplace-tx");
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-tx", &v1).await;
    let wrapped = MigrationFile::new(
        "002_wrapped.sql",
        "BEGIN;\nCREATE TABLE wrapped (id int);\nCOMMIT;\n",
    );
    let routines = MigrationFile::new(
        "003_routines.sql",
        "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n  NEW.n := NEW.n + 1;\n  RETURN NEW;\nEND;\n$$;\n\
         CREATE TABLE counted (n int);\n\
         CREATE TRIGGER counted_bump BEFORE INSERT ON counted FOR EACH ROW EXECUTE FUNCTION bump();\n\
         DO $do$ BEGIN PERFORM 1; END $do$;\n\
         CREATE FUNCTION two() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 2;\nEND;\n",
    );
    let split = MigrationFile::new(
        "004_split.sql",
        "CREATE TABLE first_half (id int);\nCOMMIT;\nCREATE TABLE second_half (id int);\n",
    );
    let all = [wrapped.clone(), routines.clone(), split.clone()];

    // Refused before anything runs, in a rehearsal, in place and when building a template.
    let refusals = [
        admin
            .rehearse(&biome.database, &all, LOCK_TIMEOUT)
            .await
            .unwrap_err(),
        admin
            .apply_in_place(&project, &name("alice"), &all, LOCK_TIMEOUT)
            .await
            .unwrap_err(),
        admin
            .ensure_template(
                &project,
                &MigrationSet {
                    files: vec![v1.files[0].clone(), split.clone()],
                    seed: None,
                },
            )
            .await
            .unwrap_err(),
    ];
    for error in refusals {
        match &error {
            DatabaseError::TransactionControl {
                file,
                line,
                statement,
            } => {
                assert_eq!((file.as_str(), *line), ("004_split.sql", 2));
                assert_eq!(statement, "COMMIT");
            }
            other => panic!("expected TransactionControl, got {other:?}"),
        }
        assert!(error.to_string().contains("hint: remove it"), "{error}");
    }
    assert!(!columns(&client).await.contains(&"wrapped.id".to_owned()));
    let catalog = server.catalog().await;
    assert_eq!(
        databases_like(&catalog, "inplace-tx_tpl_%").await.len(),
        1,
        "no template for the refused set"
    );

    let applied = admin
        .apply_in_place(&project, &name("alice"), &all[..2], LOCK_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(applied, ["002_wrapped.sql", "003_routines.sql"]);
    let counted: i32 = client
        .query_one("INSERT INTO counted VALUES (1) RETURNING n", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 2, "the trigger's plpgsql body ran");
    let two: i32 = client.query_one("SELECT two()", &[]).await.unwrap().get(0);
    assert_eq!(two, 2);
    client
        .batch_execute("DROP FUNCTION two(); INSERT INTO wrapped VALUES (1)")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_commit_hidden_from_the_lexer_is_caught_by_the_transaction_check() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-hidden", &v1).await;
    // With standard_conforming_strings off, `\'` escapes a quote in a plain string: the server
    // sees a COMMIT where the lexer (which assumes the default) sees a string.
    let hidden = [MigrationFile::new(
        "002_hidden.sql",
        "SET standard_conforming_strings = off;\nSELECT 'a\\''; COMMIT; SELECT '';\n",
    )];
    let rehearsed = admin
        .rehearse(&biome.database, &hidden, LOCK_TIMEOUT)
        .await
        .unwrap_err();
    let applied = admin
        .apply_in_place(
            &name("inplace-hidden"),
            &name("alice"),
            &hidden,
            LOCK_TIMEOUT,
        )
        .await
        .unwrap_err();
    for error in [rehearsed, applied] {
        match &error {
            DatabaseError::TransactionEnded { database, file, .. } => {
                assert_eq!(
                    (database.as_str(), file.as_str()),
                    (biome.database.as_str(), "002_hidden.sql")
                );
            }
            other => panic!("expected TransactionEnded, got {other:?}"),
        }
        assert!(
            error.to_string().contains("standard_conforming_strings"),
            "{error}"
        );
    }
    let recorded: Vec<String> = history(&client)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(recorded, ["001_grades.sql"], "never recorded as applied");
}

#[tokio::test]
async fn rehearsal_gives_up_on_a_held_lock_and_succeeds_once_it_is_released() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], None);
    let (biome, client) = biome_with_rows(server, "inplace-lock", &v1).await;
    let files = [MigrationFile::new(
        "002_note.sql",
        "CREATE TABLE notes (id int);\nALTER TABLE grades ADD COLUMN note text;\n",
    )];
    // A service in the middle of a transaction that read the table holds ACCESS SHARE on it.
    client
        .batch_execute("BEGIN; SELECT count(*) FROM grades")
        .await
        .unwrap();

    let short = Duration::from_millis(300);
    let started = Instant::now();
    let rehearsed = tokio::time::timeout(
        Duration::from_secs(30),
        admin.rehearse(&biome.database, &files, short),
    )
    .await
    .expect("the rehearsal gave up instead of waiting behind the service")
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    let applied = tokio::time::timeout(
        Duration::from_secs(30),
        admin.apply_in_place(&name("inplace-lock"), &name("alice"), &files, short),
    )
    .await
    .expect("the application gave up instead of waiting behind the service")
    .unwrap_err();
    for error in [rehearsed, applied] {
        match &error {
            DatabaseError::LockTimeout {
                file,
                line,
                timeout,
                applied,
                ..
            } => {
                assert_eq!((file.as_str(), *line), ("002_note.sql", 2));
                assert_eq!(*timeout, short);
                assert!(applied.is_empty());
            }
            other => panic!("expected LockTimeout, got {other:?}"),
        }
        let shown = error.to_string();
        for part in [
            "could not get a lock on",
            "within 300ms",
            "ALTER TABLE grades ADD COLUMN note text",
            "nothing was changed",
            "hint: try again",
        ] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
    }
    assert!(!columns(&client).await.contains(&"notes.id".to_owned()));

    client.batch_execute("COMMIT").await.unwrap();
    admin
        .rehearse(&biome.database, &files, short)
        .await
        .unwrap();
    let applied = admin
        .apply_in_place(&name("inplace-lock"), &name("alice"), &files, short)
        .await
        .unwrap();
    assert_eq!(applied, ["002_note.sql"]);
}

#[tokio::test]
async fn seed_rows_are_ignored_and_old_tables_are_brought_forward() {
    let server = shared();
    let admin = server.admin().await;
    let v1 = set(&[GRADES], Some(SEED));
    let (biome, client) = biome_with_rows(server, "inplace-seed", &v1).await;
    let kinds = |applied: Vec<sandpit_database::AppliedMigration>| {
        applied
            .into_iter()
            .map(|row| (row.file, row.kind))
            .collect::<Vec<_>>()
    };
    let as_built = vec![
        ("001_grades.sql".to_owned(), MigrationKind::Migration),
        ("db/seed.sql".to_owned(), MigrationKind::Seed),
    ];
    assert_eq!(
        kinds(admin.applied_migrations(&biome.database).await.unwrap()),
        as_built
    );
    // An environment base that never opted into the seed plans the same.
    let without_seed = set(&[GRADES], None);
    for commit in [&v1, &without_seed] {
        let planned = admin
            .plan_migrations(&biome.database, commit)
            .await
            .unwrap();
        assert!(
            planned.is_current() && planned.ahead.is_empty(),
            "{planned:?}"
        );
    }

    // A table as older sandpit versions made it: no kind, the seed among the migrations.
    client
        .batch_execute("ALTER TABLE sandpit_migrations DROP COLUMN kind")
        .await
        .unwrap();
    let old_rows = admin.applied_migrations(&biome.database).await.unwrap();
    assert!(old_rows
        .iter()
        .all(|row| row.kind == MigrationKind::Migration));
    assert_eq!(
        plan(&old_rows, &v1).ahead,
        ["db/seed.sql"],
        "why it must be brought forward"
    );
    let planned = admin.plan_migrations(&biome.database, &v1).await.unwrap();
    assert!(
        planned.is_current() && planned.ahead.is_empty(),
        "{planned:?}"
    );
    assert_eq!(
        kinds(admin.applied_migrations(&biome.database).await.unwrap()),
        as_built
    );

    // No table at all: nothing applied, and the table is made.
    client
        .batch_execute("DROP TABLE sandpit_migrations")
        .await
        .unwrap();
    assert!(admin
        .applied_migrations(&biome.database)
        .await
        .unwrap()
        .is_empty());
    let planned = admin.plan_migrations(&biome.database, &v1).await.unwrap();
    assert_eq!(names(&planned.pending), ["001_grades.sql"]);
    let made: bool = admin_client(server, &biome.database)
        .await
        .query_one(
            "SELECT to_regclass('public.sandpit_migrations') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(made);

    let missing = admin
        .applied_migrations("inplace-seed_nobody")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, DatabaseError::DatabaseMissing { .. }),
        "{missing:?}"
    );
}
