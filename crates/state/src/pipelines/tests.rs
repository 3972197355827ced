//! Tests of pipeline records against real SQLite files: states derived from events, the
//! transitions refused, the queue, recovery after a server stopped, and append-only storage.

use super::*;

fn open_temp() -> (crate::testing::Guard, StateStore) {
    crate::testing::fresh(crate::testing::Backend::of_module(module_path!()))
}

fn new_pipeline(branch: Option<&str>, sha_digit: char) -> NewPipeline {
    NewPipeline {
        project: "geo".into(),
        trigger: Trigger::Manual,
        requested_by: "alice@example.com".into(),
        branch: branch.map(str::to_owned),
        sha: sha_digit.to_string().repeat(40),
        stages: vec![
            NewStage {
                kind: StageKind::Fetch,
                env: None,
            },
            NewStage {
                kind: StageKind::Build,
                env: None,
            },
            NewStage {
                kind: StageKind::Deploy,
                env: Some("dev".into()),
            },
            NewStage {
                kind: StageKind::Promote,
                env: Some("prod".into()),
            },
        ],
        retry_of: None,
        target: PipelineTarget::Environments,
        biome: None,
    }
}

#[test]
fn a_pipeline_recorded_before_its_commit_is_read_gets_its_stages_planned_once() {
    let (_dir, mut store) = open_temp();
    let mut new = new_pipeline(None, 'b');
    new.stages.truncate(1);
    new.target = PipelineTarget::Biome;
    new.biome = Some("mr-3".into());
    let created = store.create_pipeline(&new).unwrap();
    assert_eq!(created.stages.len(), 1);
    assert_eq!(
        (created.target, created.biome.as_deref()),
        (PipelineTarget::Biome, Some("mr-3"))
    );
    let planned = [
        NewStage {
            kind: StageKind::Build,
            env: None,
        },
        NewStage {
            kind: StageKind::Up,
            env: Some("dev".into()),
        },
    ];
    let pipeline = store.plan_stages(created.id, &planned).unwrap();
    let kinds: Vec<_> = pipeline.stages.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [StageKind::Fetch, StageKind::Build, StageKind::Up]);
    assert_eq!(pipeline.stages[2].label(), "up dev");
    let again = store.plan_stages(created.id, &planned).unwrap_err();
    assert!(again.to_string().contains("planned already"), "{again}");
    // Reopened, the facts read back the same.
    let read = store.pipeline(created.id).unwrap().unwrap();
    assert_eq!(read, pipeline);
}

#[test]
fn a_biome_target_needs_its_biome_and_an_environments_target_has_none() {
    let (_dir, mut store) = open_temp();
    let mut without = new_pipeline(None, 'c');
    without.target = PipelineTarget::BiomeDown;
    assert!(store.create_pipeline(&without).is_err());
    let mut with = new_pipeline(None, 'c');
    with.biome = Some("mr-1".into());
    assert!(store.create_pipeline(&with).is_err());
    assert!(store.pipelines(None, 10).unwrap().is_empty());
}

#[test]
fn a_pipeline_goes_through_its_stages_and_its_state_follows_the_events() {
    let (_dir, mut store) = open_temp();
    let created = store
        .create_pipeline(&new_pipeline(Some("main"), 'a'))
        .unwrap();
    assert_eq!(created.state, PipelineState::Queued);
    assert_eq!(created.stages.len(), 4);
    assert!(created
        .stages
        .iter()
        .all(|s| s.state == StageState::Waiting));
    assert_eq!(created.stages[2].label(), "deploy dev");
    let id = created.id;

    store.start_pipeline(id).unwrap();
    for position in 0..3 {
        store.start_stage(id, position).unwrap();
        store
            .finish_stage(id, position, &Outcome::Succeeded, None)
            .unwrap();
    }
    let deployment = store
        .create(&crate::NewDeployment {
            project: "geo".into(),
            target: "prod".into(),
            env: "prod".into(),
            biome: None,
            sha: "a".repeat(40),
            components: vec![],
            requested_by: "alice@example.com".into(),
            approvals_required: 1,
            kind: crate::DeploymentKind::Promote { from: "dev".into() },
            rollback_of: None,
            restores: None,
        })
        .unwrap()
        .id;
    store.start_stage(id, 3).unwrap();
    store
        .finish_stage(
            id,
            3,
            &Outcome::Pending("the deployment waits for 1 approval".into()),
            Some(deployment),
        )
        .unwrap();
    let pending = store
        .finish_pipeline(
            id,
            &Outcome::Pending("waits for approval of deployment #7".into()),
        )
        .unwrap();
    assert_eq!(pending.state, PipelineState::Pending);
    assert_eq!(pending.stages[3].state, StageState::Pending);
    assert_eq!(pending.stages[3].deployment, Some(deployment));
    assert!(pending.started_at.is_some());
    assert!(
        pending.finished_at.is_none(),
        "a pending pipeline has not finished"
    );
    // The approval arrives and the promotion finishes: so does the pipeline.
    store
        .finish_stage(id, 3, &Outcome::Succeeded, None)
        .unwrap();
    let done = store.finish_pipeline(id, &Outcome::Succeeded).unwrap();
    assert_eq!(done.state, PipelineState::Succeeded);
    assert!(done.finished_at.is_some());
    assert_eq!(
        done.stages[3].deployment,
        Some(deployment),
        "kept from the earlier event"
    );
    assert_eq!(store.pipeline(id).unwrap().unwrap(), done);
}

#[test]
fn transitions_that_make_no_sense_are_refused() {
    let (_dir, mut store) = open_temp();
    let id = store.create_pipeline(&new_pipeline(None, 'b')).unwrap().id;
    // (what is tried, given the state reached so far)
    assert!(matches!(
        store.finish_pipeline(id, &Outcome::Succeeded),
        Err(StateError::PipelineTransition {
            event: "succeeded",
            ..
        })
    ));
    assert!(matches!(
        store.finish_stage(id, 0, &Outcome::Succeeded, None),
        Err(StateError::PipelineTransition { .. })
    ));
    store.start_pipeline(id).unwrap();
    assert!(matches!(
        store.start_pipeline(id),
        Err(StateError::PipelineTransition { .. })
    ));
    assert!(matches!(
        store.supersede_pipeline(id, 99),
        Err(StateError::PipelineTransition { .. })
    ));
    assert!(matches!(
        store.start_stage(id, 9),
        Err(StateError::Invalid { .. })
    ));
    store.start_stage(id, 0).unwrap();
    store
        .finish_stage(id, 0, &Outcome::Failed("no such commit".into()), None)
        .unwrap();
    assert!(matches!(
        store.start_stage(id, 0),
        Err(StateError::PipelineTransition { .. })
    ));
    store.skip_stage(id, 1, "fetch failed").unwrap();
    let failed = store
        .finish_pipeline(id, &Outcome::Failed("fetch failed".into()))
        .unwrap();
    assert_eq!(failed.state, PipelineState::Failed);
    assert_eq!(failed.stages[1].state, StageState::Skipped);
    assert_eq!(failed.message.as_deref(), Some("fetch failed"));
    assert!(matches!(store.pipeline(12345), Ok(None)));
    assert!(matches!(
        store.start_pipeline(12345),
        Err(StateError::PipelineNotFound { id: 12345 })
    ));
}

#[test]
fn bad_records_are_refused_before_anything_is_written() {
    let (_dir, mut store) = open_temp();
    let mut short_sha = new_pipeline(None, 'c');
    short_sha.sha = "abc123".into();
    let mut no_stages = new_pipeline(None, 'c');
    no_stages.stages.clear();
    let mut unknown_retry = new_pipeline(None, 'c');
    unknown_retry.retry_of = Some(41);
    for (bad, what) in [
        (short_sha, "short sha"),
        (no_stages, "no stages"),
        (unknown_retry, "retry of nothing"),
    ] {
        assert!(store.create_pipeline(&bad).is_err(), "{what}");
    }
    assert!(store.pipelines(None, 10).unwrap().is_empty());
}

#[test]
fn the_queue_lists_oldest_first_and_superseded_pipelines_never_run() {
    let (_dir, mut store) = open_temp();
    let first = store
        .create_pipeline(&new_pipeline(Some("main"), '1'))
        .unwrap()
        .id;
    let second = store
        .create_pipeline(&new_pipeline(Some("main"), '2'))
        .unwrap()
        .id;
    let queued: Vec<i64> = store
        .pipelines_in_state(PipelineState::Queued)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(queued, vec![first, second]);
    let superseded = store.supersede_pipeline(first, second).unwrap();
    assert_eq!(superseded.state, PipelineState::Superseded);
    assert!(superseded.message.unwrap().contains(&format!("#{second}")));
    assert!(matches!(
        store.start_pipeline(first),
        Err(StateError::PipelineTransition { .. })
    ));
    let counts = store.pipeline_counts().unwrap();
    assert_eq!(counts[&PipelineState::Queued], 1);
    assert_eq!(counts[&PipelineState::Superseded], 1);
    assert_eq!(counts[&PipelineState::Running], 0);
    assert_eq!(counts.len(), PipelineState::ALL.len());
    let newest_first: Vec<i64> = store
        .pipelines(Some("geo"), 10)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(newest_first, vec![second, first]);
    assert!(store.pipelines(Some("other"), 10).unwrap().is_empty());
    assert_eq!(store.pipelines(None, 1).unwrap().len(), 1);
}

#[test]
fn running_pipelines_fail_when_the_server_that_ran_them_stopped_and_queued_ones_wait() {
    let (_dir, mut store) = open_temp();
    let running = store
        .create_pipeline(&new_pipeline(Some("main"), 'd'))
        .unwrap()
        .id;
    let alive = store
        .create_pipeline(&new_pipeline(Some("other"), 'c'))
        .unwrap()
        .id;
    // Started by this process, which is alive: another server's pipeline is not touched.
    store.start_pipeline(alive).unwrap();
    // The rest is recorded as by a process that has exited since.
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    store.pid = exited.id();
    let queued = store
        .create_pipeline(&new_pipeline(Some("feature"), 'e'))
        .unwrap()
        .id;
    store.start_pipeline(running).unwrap();
    store.start_stage(running, 0).unwrap();
    store
        .finish_stage(running, 0, &Outcome::Succeeded, None)
        .unwrap();
    store.start_stage(running, 1).unwrap();
    let reason = "the server stopped while it ran; `sandpit pipeline retry` runs it again";
    assert_eq!(
        store.fail_interrupted_pipelines(reason).unwrap(),
        vec![running]
    );
    assert_eq!(
        store.pipeline(alive).unwrap().unwrap().state,
        PipelineState::Running
    );
    let failed = store.pipeline(running).unwrap().unwrap();
    assert_eq!(failed.state, PipelineState::Failed);
    assert_eq!(failed.stages[1].state, StageState::Failed);
    assert_eq!(failed.stages[1].message.as_deref(), Some(reason));
    assert_eq!(failed.stages[0].state, StageState::Succeeded);
    assert_eq!(
        store.pipeline(queued).unwrap().unwrap().state,
        PipelineState::Queued
    );
    // A retry is a new pipeline that names the one it runs again.
    let mut retry = new_pipeline(Some("main"), 'd');
    retry.retry_of = Some(running);
    assert_eq!(
        store.create_pipeline(&retry).unwrap().retry_of,
        Some(running)
    );
}

#[test]
fn pipeline_records_are_append_only() {
    let (_dir, mut store) = open_temp();
    let id = store.create_pipeline(&new_pipeline(None, 'f')).unwrap().id;
    let conn = store.connection();
    for statement in [
        format!("UPDATE pipelines SET sha = 'x' WHERE id = {id}"),
        format!("DELETE FROM pipelines WHERE id = {id}"),
        format!("UPDATE pipeline_stages SET env = 'x' WHERE pipeline_id = {id}"),
        format!("DELETE FROM pipeline_stages WHERE pipeline_id = {id}"),
        format!("UPDATE pipeline_events SET event = 'succeeded' WHERE pipeline_id = {id}"),
        format!("DELETE FROM pipeline_events WHERE pipeline_id = {id}"),
    ] {
        let error = conn
            .execute(&statement, crate::sql::args![])
            .unwrap_err()
            .to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
}
