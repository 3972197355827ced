//! PostgreSQL-only properties of the store, on the test server of `crate::testing`: the
//! database itself refuses changes (TRUNCATE too), concurrent openers migrate once, a second
//! `started` is refused by the index whoever writes it, and a wrong URL is reported without
//! its password.

use crate::sql::args;
use crate::testing::{fresh, fresh_database, Backend};
use crate::{DeployedComponent, DeploymentKind, NewDeployment, StateError, StateStore};

fn deployment() -> NewDeployment {
    NewDeployment {
        project: "geo".into(),
        target: "dev".into(),
        env: "dev".into(),
        biome: None,
        sha: "ab".repeat(20),
        components: vec![DeployedComponent {
            name: "api".into(),
            artifact: format!("api-{}.zip", "ab".repeat(20)),
            digest: format!("sha256:{}", "c".repeat(64)),
            borrowed_from: None,
        }],
        requested_by: "alice".into(),
        approvals_required: 0,
        kind: DeploymentKind::Deploy,
        rollback_of: None,
        restores: None,
    }
}

#[test]
fn truncating_a_record_table_is_refused_by_the_database() {
    let (_guard, mut store) = fresh(Backend::Postgres);
    store.create(&deployment()).unwrap();
    for table in [
        "deployment_events",
        "pipeline_events",
        "tokens",
        "biome_expiries",
    ] {
        let error = store
            .connection()
            .batch(&format!("TRUNCATE {table} CASCADE"))
            .unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{table}: {error}"
        );
    }
    assert_eq!(store.history("geo", None).unwrap().len(), 1);
}

#[test]
fn servers_opening_a_new_database_together_migrate_it_once() {
    let url = fresh_database();
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || StateStore::connect(&url).map(|_| ()))
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    let store = StateStore::connect(&url).unwrap();
    let versions: Vec<i64> = store
        .connection()
        .query_map(
            "SELECT version FROM sandpit_schema_migrations ORDER BY version",
            args![],
            |row| row.get(0),
        )
        .unwrap();
    let known = crate::postgres_schema::MIGRATIONS.len() as i64;
    assert_eq!(versions, (1..=known).collect::<Vec<_>>());
}

#[test]
fn a_second_started_event_is_refused_by_the_database_itself() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (_guard, mut store) = fresh(backend);
        let id = store.create(&deployment()).unwrap().id;
        store.mark_started(id, std::process::id()).unwrap();
        // Written past the store's checks, as a racing server that skipped them would.
        let error = store
            .connection()
            .execute(
                "INSERT INTO deployment_events (deployment_id, event, at, pid) VALUES (?1, 'started', 'now', 1)",
                args![id],
            )
            .unwrap_err();
        assert!(error.is_unique_violation(), "{backend:?}: {error}");
        // And through the store: someone else runs it, which is not a new start.
        assert!(matches!(
            store.mark_started(id, 1),
            Err(StateError::InvalidTransition { .. })
        ));
        let pipeline = store
            .create_pipeline(&crate::NewPipeline {
                project: "geo".into(),
                trigger: crate::Trigger::Manual,
                requested_by: "alice".into(),
                branch: None,
                sha: "ab".repeat(20),
                stages: vec![crate::NewStage {
                    kind: crate::StageKind::Fetch,
                    env: None,
                }],
                retry_of: None,
                target: crate::PipelineTarget::Environments,
                biome: None,
            })
            .unwrap()
            .id;
        store.start_pipeline(pipeline).unwrap();
        store.start_stage(pipeline, 0).unwrap();
        for stage in ["NULL", "0"] {
            let error = store
                .connection()
                .execute(
                    &format!("INSERT INTO pipeline_events (pipeline_id, stage, event, at) VALUES (?1, {stage}, 'started', 'now')"),
                    args![pipeline],
                )
                .unwrap_err();
            assert!(
                error.is_unique_violation(),
                "{backend:?} stage {stage}: {error}"
            );
        }
    }
}

#[test]
fn two_handles_racing_to_start_one_deployment_start_it_once() {
    let (guard, mut store) = fresh(Backend::Postgres);
    let id = store.create(&deployment()).unwrap().id;
    let url = guard.url.clone().unwrap();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut store = StateStore::connect(&url).unwrap();
                store.mark_started(id, std::process::id()).is_ok()
            })
        })
        .collect();
    let won = racers
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1);
    let started: i64 = store
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM deployment_events WHERE deployment_id = ?1 AND event = 'started'",
            args![id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(started, 1);
}

#[test]
fn a_wrong_password_or_a_dead_server_is_named_without_the_password() {
    let url = fresh_database();
    let (head, tail) = url.split_once('@').unwrap();
    let (user, _password) = head.rsplit_once(':').unwrap();
    let wrong = format!("{user}:not-the-password-xyz@{tail}");
    let error = StateStore::connect(&wrong).unwrap_err();
    assert!(matches!(error, StateError::Unreachable { .. }), "{error}");
    let message = error.to_string();
    assert!(!message.contains("not-the-password-xyz"), "{message}");
    assert!(message.contains(":***@127.0.0.1"), "{message}");
    assert!(message.contains("password"), "{message}");

    // Nothing listens on port 9 of loopback.
    let dead = "postgres://sandpit:secret-pw@127.0.0.1:9/state";
    let message = StateStore::connect(dead).unwrap_err().to_string();
    assert!(!message.contains("secret-pw"), "{message}");
    assert!(
        message.contains("postgres://sandpit:***@127.0.0.1:9/state"),
        "{message}"
    );
    assert!(message.contains("hint:"), "{message}");
}
