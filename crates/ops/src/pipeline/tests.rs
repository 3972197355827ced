//! Pipelines requested, queued, superseded, failed and recovered against real git remotes and a
//! real state store (a rollout needs the daemon, which this `$SANDPIT_HOME` cannot start, so
//! the deploy stage fails here; the end-to-end suite runs pipelines to the end).

use sandpit_state::{PipelineState, StageState, Trigger};

use super::*;
use crate::error::ErrorKind;
use crate::projects::fixtures::*;

const CHAIN: &str = r#"[project]
name = "shop"

[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"
auto_promote = true

[environments.prod]
promote_from = "test"
auto_promote = true
protected = true
"#;

fn deployer() -> Principal {
    Principal::named("dora@example.com", [Role::Deployer])
}

fn registered(world: &World, definition: &str) -> String {
    let head = world.commit(Some(definition), "first");
    world.push("main");
    crate::projects::add(&world.context, &admin(), "shop", world.url(), "main").unwrap();
    head
}

fn asked(revision: Revision) -> PipelineRequest {
    PipelineRequest {
        project: "shop".into(),
        revision,
        trigger: Trigger::Manual,
        target: crate::pipeline::Target::Environments,
    }
}

fn labels(pipeline: &Pipeline) -> Vec<String> {
    pipeline.stages.iter().map(|s| s.label()).collect()
}

#[test]
fn a_request_is_queued_with_the_stages_its_commit_asks_for() {
    let world = World::new();
    let head = registered(&world, CHAIN);
    let queued = request(&world.context, &deployer(), &asked(Revision::Default)).unwrap();
    assert_eq!(queued.state, PipelineState::Queued);
    assert_eq!(queued.sha, head);
    assert_eq!(queued.branch.as_deref(), Some("main"));
    assert_eq!(queued.requested_by, "dora@example.com");
    assert_eq!(
        labels(&queued),
        [
            "fetch",
            "build",
            "deploy dev",
            "promote test",
            "promote prod"
        ]
    );
    let by_sha = request(
        &world.context,
        &deployer(),
        &asked(Revision::Sha(head[..10].into())),
    )
    .unwrap();
    assert_eq!(by_sha.sha, head);
    assert_eq!(
        by_sha.branch, None,
        "a named commit belongs to no branch queue"
    );
    let listed: Vec<i64> = list(&world.context, Some("shop"), 10)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, vec![by_sha.id, queued.id]);
    assert_eq!(show(&world.context, queued.id).unwrap(), queued);
}

#[test]
fn bad_requests_are_refused_and_nothing_is_queued() {
    let world = World::new();
    let head = registered(&world, CHAIN);
    // (who, what, kind, words in the message)
    let unpushed = {
        let sha = world.commit(Some(CHAIN), "not pushed");
        assert_ne!(sha, head);
        sha
    };
    let cases: Vec<(Principal, PipelineRequest, ErrorKind, &str)> = vec![
        (
            viewer(),
            asked(Revision::Default),
            ErrorKind::Forbidden,
            "needs the `deployer` role; this token has viewer",
        ),
        (
            Principal::named("dev@example.com", [Role::Developer]),
            asked(Revision::Default),
            ErrorKind::Forbidden,
            "`deployer`",
        ),
        (
            deployer(),
            PipelineRequest {
                project: "nope".into(),
                ..asked(Revision::Default)
            },
            ErrorKind::NotFound,
            "nope",
        ),
        (
            deployer(),
            asked(Revision::Sha(unpushed.clone())),
            ErrorKind::NotFound,
            "push it first",
        ),
        (
            deployer(),
            asked(Revision::Branch("feature".into())),
            ErrorKind::NotFound,
            "feature",
        ),
    ];
    for (principal, asked, kind, words) in cases {
        let (got, message) = refusal(request(&world.context, &principal, &asked));
        assert_eq!(got, kind, "{asked:?}: {message}");
        assert!(message.contains(words), "{asked:?}: {message}");
    }
    // A branch whose sandpit.toml became invalid is refused with its diagnostics.
    world.git(None, &["checkout", "-q", "-b", "broken"]);
    world.commit(Some("[project]\nname = \"shop\"\n[servces.api]\n"), "typo");
    world.push("broken");
    let (kind, message) = refusal(request(
        &world.context,
        &deployer(),
        &asked(Revision::Branch("broken".into())),
    ));
    assert_eq!(kind, ErrorKind::InvalidInput, "{message}");
    assert!(message.contains("servces"), "{message}");
    assert!(list(&world.context, None, 10).unwrap().is_empty());
}

#[test]
fn only_the_newest_queued_pipeline_of_a_branch_runs_and_a_failed_stage_skips_the_rest() {
    let world = World::new();
    registered(&world, CHAIN);
    let ids: Vec<i64> = (0..3)
        .map(|_| {
            request(&world.context, &deployer(), &asked(Revision::Default))
                .unwrap()
                .id
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = runtime.block_on(run_queue(&world.context)).unwrap();
    assert_eq!(ran, vec![ids[2]], "only the newest ran");
    for older in &ids[..2] {
        let superseded = show(&world.context, *older).unwrap();
        assert_eq!(superseded.state, PipelineState::Superseded);
        assert!(superseded
            .message
            .unwrap()
            .contains(&format!("#{}", ids[2])));
        assert!(superseded
            .stages
            .iter()
            .all(|s| s.state == StageState::Waiting));
    }
    // This home cannot start a daemon, so the deployment fails; the promotions never run.
    let newest = show(&world.context, ids[2]).unwrap();
    assert_eq!(newest.state, PipelineState::Failed);
    let states: Vec<StageState> = newest.stages.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StageState::Succeeded,
            StageState::Succeeded,
            StageState::Failed,
            StageState::Skipped,
            StageState::Skipped
        ]
    );
    assert!(
        newest
            .message
            .as_deref()
            .unwrap()
            .starts_with("stage `deploy dev` failed:"),
        "{:?}",
        newest.message
    );
    let log = std::fs::read_to_string(log_path(&world.context, ids[2])).unwrap();
    for line in [
        "fetch: succeeded",
        "build: succeeded",
        "deploy dev: failed",
        "promote test: skipped",
    ] {
        assert!(log.contains(line), "{line} in\n{log}");
    }
    // A finished pipeline can be retried: a new one, naming it.
    let retried = retry(&world.context, &deployer(), ids[2]).unwrap();
    assert_eq!(retried.retry_of, Some(ids[2]));
    assert_eq!(retried.sha, newest.sha);
    assert_eq!(retried.state, PipelineState::Queued);
    let (kind, message) = refusal(retry(&world.context, &deployer(), retried.id));
    assert_eq!(kind, ErrorKind::Conflict, "{message}");
    let (kind, _) = refusal(retry(&world.context, &deployer(), 9999));
    assert_eq!(kind, ErrorKind::NotFound);
    let (kind, _) = refusal(retry(&world.context, &viewer(), ids[2]));
    assert_eq!(kind, ErrorKind::Forbidden);
}

#[test]
fn a_pipeline_that_was_running_when_its_server_stopped_is_failed_and_can_be_retried() {
    let world = World::new();
    registered(&world, CHAIN);
    let queued = request(&world.context, &deployer(), &asked(Revision::Default)).unwrap();
    // Another process (now gone) started it.
    let mut store = crate::deployment::state_store(&world.context).unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    store.set_pid_for_tests(gone.id());
    store.start_pipeline(queued.id).unwrap();
    store.start_stage(queued.id, 0).unwrap();
    drop(store);
    let waiting = request(
        &world.context,
        &deployer(),
        &asked(Revision::Sha(queued.sha.clone())),
    )
    .unwrap();
    assert_eq!(recover(&world.context).unwrap(), vec![queued.id]);
    let failed = show(&world.context, queued.id).unwrap();
    assert_eq!(failed.state, PipelineState::Failed);
    assert_eq!(failed.message.as_deref(), Some(INTERRUPTED));
    assert_eq!(failed.stages[0].state, StageState::Failed);
    assert_eq!(
        show(&world.context, waiting.id).unwrap().state,
        PipelineState::Queued
    );
    assert!(recover(&world.context).unwrap().is_empty(), "only once");
    assert_eq!(
        retry(&world.context, &deployer(), queued.id)
            .unwrap()
            .retry_of,
        Some(queued.id)
    );
}

#[test]
fn a_pipeline_pending_on_an_approval_ends_when_the_deployment_is_rejected() {
    let world = World::new();
    registered(&world, CHAIN);
    let queued = request(&world.context, &deployer(), &asked(Revision::Default)).unwrap();
    let mut store = crate::deployment::state_store(&world.context).unwrap();
    let waiting_for = store
        .create(&sandpit_state::NewDeployment {
            project: "shop".into(),
            target: "prod".into(),
            env: "prod".into(),
            biome: None,
            sha: queued.sha.clone(),
            components: vec![],
            requested_by: "dora@example.com".into(),
            approvals_required: 1,
            kind: sandpit_state::DeploymentKind::Promote {
                from: "test".into(),
            },
            rollback_of: None,
            restores: None,
        })
        .unwrap();
    store.start_pipeline(queued.id).unwrap();
    for position in 0..4 {
        store.start_stage(queued.id, position).unwrap();
        store
            .finish_stage(queued.id, position, &Outcome::Succeeded, None)
            .unwrap();
    }
    store.start_stage(queued.id, 4).unwrap();
    store
        .finish_stage(
            queued.id,
            4,
            &Outcome::Pending("waits".into()),
            Some(waiting_for.id),
        )
        .unwrap();
    store
        .finish_pipeline(queued.id, &Outcome::Pending("waits".into()))
        .unwrap();
    assert_eq!(
        store.pipeline_waiting_on(waiting_for.id).unwrap(),
        Some((queued.id, 4))
    );
    drop(store);
    // Nothing decided yet: nothing changes.
    assert_eq!(
        deployment_decided(&world.context, waiting_for.id).unwrap(),
        None
    );
    let approver = Context {
        principal: Principal::named("ann@example.com", [Role::Approver]),
        ..world.context.clone()
    };
    crate::approve::reject(&approver, waiting_for.id, Some("not today")).unwrap();
    let ended = show(&world.context, queued.id).unwrap();
    assert_eq!(ended.state, PipelineState::Failed);
    assert_eq!(ended.stages[4].state, StageState::Failed);
    assert!(ended.message.unwrap().contains("rejected"));
    let store = crate::deployment::state_store(&world.context).unwrap();
    assert_eq!(
        store.pipeline_waiting_on(waiting_for.id).unwrap(),
        None,
        "no longer waits"
    );
}
