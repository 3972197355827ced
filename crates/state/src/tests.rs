//! Tests of the state store. Compiled twice (see `lib.rs`): against real SQLite files in
//! temporary directories, and against fresh databases on a real PostgreSQL server; the tests
//! that are about SQLite files themselves (paths, modes, old schema versions) open them by path
//! and so run against SQLite in both copies.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::sql::args;
use crate::testing::{Backend, Guard};

use crate::store::{INTERRUPTED_QUEUED, INTERRUPTED_RUNNING};
use crate::{
    DeployedComponent, Deployment, DeploymentKind, DeploymentState, NewDeployment, StateError,
    StateStore, StepKind,
};

const PROJECT: &str = "geo";

/// The backend this copy of the suite runs against.
fn backend() -> Backend {
    Backend::of_module(module_path!())
}

fn open_temp() -> (Guard, StateStore) {
    crate::testing::fresh(backend())
}

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("home").join("state").join("state.db")
}

/// A 40-hex commit made of one repeated hex digit pair.
fn sha(tag: &str) -> String {
    tag.repeat(40 / tag.len())
}

/// `sha256:` and 64 copies of one hex digit.
fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn component(name: &str, commit: &str, d: char) -> DeployedComponent {
    DeployedComponent {
        name: name.to_string(),
        artifact: format!("{name}-{commit}.zip"),
        digest: digest(d),
        borrowed_from: None,
    }
}

fn new(target: &str, commit: &str, digests: &[(&str, char)]) -> NewDeployment {
    let (env, biome) = match target.split_once('/') {
        Some((env, biome)) => (env.to_string(), Some(biome.to_string())),
        None => (target.to_string(), None),
    };
    NewDeployment {
        project: PROJECT.to_string(),
        target: target.to_string(),
        env,
        biome,
        sha: commit.to_string(),
        components: digests
            .iter()
            .map(|(name, d)| component(name, commit, *d))
            .collect(),
        requested_by: "dev@x".to_string(),
        approvals_required: 0,
        kind: DeploymentKind::Deploy,
        rollback_of: None,
        restores: None,
    }
}

/// Records `new` and runs it to success.
fn succeed(store: &mut StateStore, new: &NewDeployment) -> Deployment {
    let d = store.create(new).expect("create");
    store.mark_started(d.id, std::process::id()).expect("start");
    store.mark_succeeded(d.id).expect("succeed");
    store.get(d.id).expect("get").expect("exists")
}

fn fail(store: &mut StateStore, new: &NewDeployment) -> Deployment {
    let d = store.create(new).expect("create");
    store.mark_started(d.id, std::process::id()).expect("start");
    store
        .mark_failed(d.id, "health check failed")
        .expect("fail");
    store.get(d.id).expect("get").expect("exists")
}

fn ids(deployments: &[Deployment]) -> Vec<i64> {
    deployments.iter().map(|d| d.id).collect()
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait true");
    pid
}

#[test]
fn a_borrowed_component_is_recorded_with_its_lender() {
    let (_dir, mut store) = open_temp();
    let mut request = new("dev/alice", &sha("ab"), &[("api", 'a'), ("web", 'b')]);
    request.components[1].borrowed_from = Some("dev".to_owned());
    request.kind = DeploymentKind::Up;
    let d = store.create(&request).unwrap();
    assert_eq!(
        d.components[0].borrowed_from, None,
        "the biome runs `api` itself"
    );
    assert_eq!(d.components[1].borrowed_from.as_deref(), Some("dev"));
    assert_eq!(
        store.get(d.id).unwrap().unwrap().components,
        request.components
    );
}

#[test]
fn create_records_a_pending_deployment() {
    let (_dir, mut store) = open_temp();
    let mut request = new("dev/alice", &sha("ab"), &[("api", 'a'), ("model", 'b')]);
    // A bare hex digest is stored with its prefix.
    request.components[1].digest = "B".repeat(64);
    let d = store.create(&request).unwrap();
    assert_eq!(d.id, 1);
    assert_eq!(d.state, DeploymentState::Pending);
    assert_eq!(d.target, "dev/alice");
    assert_eq!(d.biome.as_deref(), Some("alice"));
    assert_eq!(d.approvals_missing(), 0);
    assert!(!d.is_finished());
    assert!(d.approved_by.is_empty() && d.started_at.is_none() && d.finished_at.is_none());
    assert_eq!(d.components[0], component("api", &sha("ab"), 'a'));
    assert_eq!(d.components[1].digest, digest('b'));
    humantime::parse_rfc3339(&d.created_at).expect("created_at is RFC 3339");
    assert!(d.created_at.ends_with('Z'));
    assert_eq!(store.get(1).unwrap(), Some(d));
    assert_eq!(store.get(2).unwrap(), None);
}

#[test]
fn a_deployment_made_for_a_reason_keeps_it_until_a_failure_replaces_it() {
    let (_dir, mut store) = open_temp();
    let mut down = new("dev/alice", &sha("ab"), &[]);
    down.kind = DeploymentKind::Down;
    let made = store
        .create_because(&down, Some("expired 2026-12-01T00:00:00Z"))
        .unwrap();
    assert_eq!(
        made.message.as_deref(),
        Some("expired 2026-12-01T00:00:00Z")
    );
    store.mark_started(made.id, std::process::id()).unwrap();
    store.mark_succeeded(made.id).unwrap();
    let done = store.get(made.id).unwrap().unwrap();
    assert_eq!(
        (done.state, done.message.as_deref()),
        (
            DeploymentState::Succeeded,
            Some("expired 2026-12-01T00:00:00Z")
        )
    );
    let failing = store
        .create_because(&down, Some("merge request !3 is merged"))
        .unwrap();
    store
        .mark_failed(failing.id, "the database did not answer")
        .unwrap();
    let failed = store.get(failing.id).unwrap().unwrap();
    assert_eq!(
        failed.message.as_deref(),
        Some("the database did not answer")
    );
    // Without a reason, nothing changes: a plain `create` has no message.
    let plain = store.create(&new("dev/bob", &sha("cd"), &[])).unwrap();
    assert_eq!(plain.message, None);
}

#[test]
fn create_refuses_inconsistent_records() {
    let (_dir, mut store) = open_temp();
    type Change = Box<dyn Fn(&mut NewDeployment)>;
    let cases: Vec<(&str, Change)> = vec![
        ("target", Box::new(|n| n.target = "test".to_string())),
        ("target", Box::new(|n| n.biome = Some("bob".to_string()))),
        ("sha is empty", Box::new(|n| n.sha.clear())),
        (
            "requested_by is empty",
            Box::new(|n| n.requested_by.clear()),
        ),
        (
            "rollback_of names deployment #9",
            Box::new(|n| n.rollback_of = Some(9)),
        ),
        (
            "restores names deployment #9",
            Box::new(|n| n.restores = Some(9)),
        ),
    ];
    for (expected, change) in cases {
        let mut request = new("dev", &sha("ab"), &[("api", 'a')]);
        change(&mut request);
        let err = store.create(&request).unwrap_err();
        assert!(
            matches!(err, StateError::Invalid { .. }) && err.to_string().contains(expected),
            "{expected}: {err}"
        );
    }
    assert!(store.history(PROJECT, None).unwrap().is_empty());
}

#[test]
fn approvals_count_down_and_refuse_requester_repeats_and_extras() {
    let (_dir, mut store) = open_temp();
    let mut request = new("prod", &sha("ab"), &[("api", 'a')]);
    request.approvals_required = 2;
    let d = store.create(&request).unwrap();
    assert_eq!(d.approvals_missing(), 2);

    let err = store.approve(d.id, "dev@x").unwrap_err();
    assert!(
        matches!(err, StateError::SelfApproval { id: 1, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "dev@x requested deployment #1 and cannot approve it; another user must"
    );

    let d = store.approve(d.id, "bob@x").unwrap();
    assert_eq!(d.approved_by, ["bob@x"]);
    assert_eq!(d.approvals_missing(), 1);
    let err = store.mark_started(d.id, std::process::id()).unwrap_err();
    assert!(
        matches!(err, StateError::ApprovalsMissing { missing: 1, .. }),
        "{err}"
    );

    let err = store.approve(d.id, "bob@x").unwrap_err();
    assert!(matches!(err, StateError::AlreadyApproved { .. }), "{err}");

    let d = store.approve(d.id, "carol@x").unwrap();
    assert_eq!(d.approved_by, ["bob@x", "carol@x"]);
    assert_eq!(d.approvals_missing(), 0);
    assert_eq!(d.state, DeploymentState::Pending);

    let err = store.approve(d.id, "dave@x").unwrap_err();
    assert!(matches!(err, StateError::NoApprovalNeeded { .. }), "{err}");

    store.mark_started(d.id, std::process::id()).unwrap();
    store.mark_succeeded(d.id).unwrap();
    let err = store.approve(d.id, "dave@x").unwrap_err();
    assert!(
        matches!(
            err,
            StateError::NotPending {
                state: DeploymentState::Succeeded,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "deployment #1 is already succeeded; only pending deployments can be approved or rejected"
    );

    // No approval needed at all; unknown ids.
    let open = store
        .create(&new("dev", &sha("ab"), &[("api", 'a')]))
        .unwrap();
    let err = store.approve(open.id, "bob@x").unwrap_err();
    assert!(err.to_string().contains("does not need approval"), "{err}");
    let err = store.approve(42, "bob@x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "there is no deployment #42; `sandpit history ENV` lists them"
    );
}

#[test]
fn reject_finishes_a_pending_deployment() {
    let (_dir, mut store) = open_temp();
    let mut request = new("prod", &sha("ab"), &[("api", 'a')]);
    request.approvals_required = 1;
    let d = store.create(&request).unwrap();
    let d = store
        .reject(d.id, "bob@x", Some("not on a Friday"))
        .unwrap();
    assert_eq!(d.state, DeploymentState::Rejected);
    assert_eq!(d.rejected_by.as_deref(), Some("bob@x"));
    assert_eq!(d.message.as_deref(), Some("not on a Friday"));
    assert!(d.is_finished() && d.finished_at.is_some());

    assert!(matches!(
        store.approve(d.id, "carol@x").unwrap_err(),
        StateError::NotPending {
            state: DeploymentState::Rejected,
            ..
        }
    ));
    assert!(matches!(
        store.reject(d.id, "carol@x", None).unwrap_err(),
        StateError::NotPending { .. }
    ));
    assert!(matches!(
        store.mark_started(d.id, 1).unwrap_err(),
        StateError::InvalidTransition {
            event: "started",
            ..
        }
    ));
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Start,
    Succeed,
    Fail,
    RollBack,
}

#[test]
fn state_is_derived_from_events() {
    use DeploymentState::*;
    use Step::*;
    let cases: &[(&[Step], DeploymentState, bool, bool)] = &[
        // steps, state, started_at set, finished_at set
        (&[], Pending, false, false),
        (&[Start], Running, true, false),
        (&[Start, Succeed], Succeeded, true, true),
        (&[Start, Fail], Failed, true, true),
        (&[Fail], Failed, false, true),
        (&[Start, Succeed, RollBack], RolledBack, true, true),
        (&[Start, Fail, RollBack], RolledBack, true, true),
        (&[Start, RollBack], RolledBack, true, true),
    ];
    let (_dir, mut store) = open_temp();
    let undoer = store
        .create(&new("test", &sha("cd"), &[("api", 'c')]))
        .unwrap();
    for (steps, state, started, finished) in cases {
        let d = store
            .create(&new("dev", &sha("ab"), &[("api", 'a')]))
            .unwrap();
        for step in *steps {
            match step {
                Start => store.mark_started(d.id, 4242).unwrap(),
                Succeed => store.mark_succeeded(d.id).unwrap(),
                Fail => store.mark_failed(d.id, "boom").unwrap(),
                RollBack => store.mark_rolled_back(d.id, undoer.id).unwrap(),
            }
        }
        let d = store.get(d.id).unwrap().unwrap();
        assert_eq!(d.state, *state, "{steps:?}");
        assert_eq!(d.state.is_finished(), d.is_finished());
        assert_eq!(d.started_at.is_some(), *started, "{steps:?}");
        assert_eq!(d.finished_at.is_some(), *finished, "{steps:?}");
        if steps.iter().any(|s| matches!(s, Fail)) {
            assert_eq!(d.message.as_deref(), Some("boom"));
        }
        if steps.iter().any(|s| matches!(s, RollBack)) {
            assert_eq!(d.rolled_back_by, Some(undoer.id));
        }
    }
}

#[test]
fn invalid_transitions_are_refused() {
    let (_dir, mut store) = open_temp();
    let d = store
        .create(&new("dev", &sha("ab"), &[("api", 'a')]))
        .unwrap();
    let refused = |r: Result<(), StateError>, event: &str| match r {
        Err(StateError::InvalidTransition { event: e, .. }) => assert_eq!(e, event),
        other => panic!("{event}: {other:?}"),
    };
    refused(store.mark_succeeded(d.id), "succeeded");
    let other = store
        .create(&new("dev", &sha("cd"), &[("api", 'c')]))
        .unwrap();
    refused(store.mark_rolled_back(d.id, other.id), "rolled_back");
    assert!(matches!(
        store.mark_rolled_back(other.id, 99),
        Err(StateError::NotFound { id: 99 })
    ));
    store.mark_started(d.id, 1).unwrap();
    refused(store.mark_started(d.id, 1), "started");
    store.mark_succeeded(d.id).unwrap();
    refused(store.mark_failed(d.id, "late"), "failed");
    refused(store.mark_succeeded(d.id), "succeeded");
    assert!(matches!(
        store.mark_rolled_back(d.id, d.id),
        Err(StateError::Invalid { .. })
    ));
    assert!(matches!(
        store.mark_succeeded(99),
        Err(StateError::NotFound { id: 99 })
    ));
}

#[test]
fn history_is_newest_first_and_filtered_by_target() {
    let (_dir, mut store) = open_temp();
    let a = succeed(&mut store, &new("dev", &sha("a1"), &[("api", 'a')]));
    let b = store
        .create(&new("dev/alice", &sha("b1"), &[("api", 'b')]))
        .unwrap();
    let c = fail(&mut store, &new("test", &sha("c1"), &[("api", 'c')]));
    let d = store
        .create(&new("dev", &sha("d1"), &[("api", 'd')]))
        .unwrap();
    let mut other = new("dev", &sha("e1"), &[("api", 'e')]);
    other.project = "other".to_string();
    let e = store.create(&other).unwrap();

    let cases: &[(&str, Option<&str>, Vec<i64>)] = &[
        (PROJECT, None, vec![d.id, c.id, b.id, a.id]),
        (PROJECT, Some("dev"), vec![d.id, a.id]),
        (PROJECT, Some("dev/alice"), vec![b.id]),
        (PROJECT, Some("test"), vec![c.id]),
        (PROJECT, Some("prod"), vec![]),
        ("other", None, vec![e.id]),
        ("nobody", None, vec![]),
    ];
    for (project, target, expected) in cases {
        let found = store.history(project, *target).unwrap();
        assert_eq!(&ids(&found), expected, "{project} {target:?}");
    }
    let dev = store.history(PROJECT, Some("dev")).unwrap();
    assert_eq!(dev[1], a);
}

#[test]
fn current_and_previous_successful_follow_successes_and_rollbacks() {
    let (_dir, mut store) = open_temp();
    assert_eq!(store.current(PROJECT, "prod").unwrap(), None);
    let one = succeed(
        &mut store,
        &new("prod", &sha("a1"), &[("api", 'a'), ("model", 'm')]),
    );
    let two = fail(
        &mut store,
        &new("prod", &sha("b1"), &[("api", 'b'), ("model", 'm')]),
    );
    let three = succeed(
        &mut store,
        &new("prod", &sha("c1"), &[("api", 'c'), ("model", 'm')]),
    );
    let _elsewhere = succeed(&mut store, &new("test", &sha("f1"), &[("api", 'f')]));
    assert_eq!(
        store.current(PROJECT, "prod").unwrap().map(|d| d.id),
        Some(three.id)
    );
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", three.id)
            .unwrap()
            .map(|d| d.id),
        Some(one.id),
        "failed deployments are skipped"
    );
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", two.id)
            .unwrap()
            .map(|d| d.id),
        Some(one.id)
    );
    assert_eq!(
        store.previous_successful(PROJECT, "prod", one.id).unwrap(),
        None
    );

    // A redeploy of the same digests is a deployment of its own: rolling back from it goes to
    // the one before, even though it ran the same commit.
    let four = succeed(
        &mut store,
        &new("prod", &sha("c1"), &[("model", 'm'), ("api", 'c')]),
    );
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", four.id)
            .unwrap()
            .map(|d| d.id),
        Some(three.id)
    );

    // Roll back four to three.
    let mut rollback = new("prod", &sha("c1"), &[("api", 'c'), ("model", 'm')]);
    rollback.kind = DeploymentKind::Rollback;
    rollback.rollback_of = Some(four.id);
    rollback.restores = Some(three.id);
    let five = succeed(&mut store, &rollback);
    store.mark_rolled_back(four.id, five.id).unwrap();
    let current = store.current(PROJECT, "prod").unwrap().unwrap();
    assert_eq!(current.id, five.id);
    assert_eq!(
        (current.rollback_of, current.restores),
        (Some(four.id), Some(three.id))
    );
    assert_eq!(current.kind, DeploymentKind::Rollback);
    assert_eq!(store.origin(five.id).unwrap().id, three.id);
    // Rolling back again steps back from what five runs (three's artifacts) to one.
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", five.id)
            .unwrap()
            .map(|d| d.id),
        Some(one.id)
    );
    // The same commit deployed twice is two steps: a rollback from a redeploy of `one`'s
    // digests goes to `one` itself (regression: it used to answer "no earlier deployment").
    let six = succeed(
        &mut store,
        &new("prod", &sha("a1"), &[("api", 'a'), ("model", 'm')]),
    );
    let mut again = new("prod", &sha("a1"), &[("api", 'a'), ("model", 'm')]);
    again.kind = DeploymentKind::Rollback;
    again.rollback_of = Some(six.id);
    again.restores = Some(five.id);
    let seven = succeed(&mut store, &again);
    store.mark_rolled_back(six.id, seven.id).unwrap();
    assert_eq!(store.origin(seven.id).unwrap().id, three.id);
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", six.id)
            .unwrap()
            .map(|d| d.id),
        Some(five.id),
        "a rollback is a step like any other"
    );
    // A running deployment does not replace the current one until it succeeds.
    let eight = store
        .create(&new("prod", &sha("d1"), &[("api", 'd')]))
        .unwrap();
    store.mark_started(eight.id, std::process::id()).unwrap();
    assert_eq!(
        store.current(PROJECT, "prod").unwrap().map(|d| d.id),
        Some(seven.id)
    );
    assert!(matches!(
        store.previous_successful(PROJECT, "prod", 77),
        Err(StateError::NotFound { id: 77 })
    ));
}

#[test]
fn involving_finds_commits_digests_and_artifacts() {
    let (_dir, mut store) = open_temp();
    let full = "0123456789abcdef0123456789abcdef01234567";
    let one = succeed(
        &mut store,
        &new("dev", full, &[("api", 'a'), ("model", 'b')]),
    );
    let two = succeed(
        &mut store,
        &new("test", full, &[("api", 'a'), ("model", 'b')]),
    );
    let dirty = format!("{}-dirty-0123456789ab", sha("fe"));
    let three = store
        .create(&new("dev/alice", &dirty, &[("api", 'c'), ("model", 'b')]))
        .unwrap();
    let mut elsewhere = new("dev", full, &[("api", 'a')]);
    elsewhere.project = "other".to_string();
    store.create(&elsewhere).unwrap();

    let bare_b = "b".repeat(64);
    let cases: Vec<(String, Vec<i64>)> = vec![
        (full[..7].to_string(), vec![two.id, one.id]),
        (full.to_string(), vec![two.id, one.id]),
        (full.to_uppercase(), vec![two.id, one.id]),
        (digest('a'), vec![two.id, one.id]),
        (digest('b'), vec![three.id, two.id, one.id]),
        (bare_b, vec![three.id, two.id, one.id]),
        ("c".repeat(64), vec![three.id]),
        (format!("api-{full}.zip"), vec![two.id, one.id]),
        (format!("model-{dirty}.zip"), vec![three.id]),
        (sha("fe")[..10].to_string(), vec![three.id]),
        (dirty.clone(), vec![three.id]),
        (digest('9'), vec![]),
        ("fffffff".to_string(), vec![]),
        ("api-nothing.zip".to_string(), vec![]),
    ];
    for (needle, expected) in cases {
        let found = store.involving(PROJECT, &needle).unwrap();
        assert_eq!(ids(&found), expected, "{needle}");
    }
    for bad in ["abc", "main", "sha256:abc", "0123456-dirty-xyz", ""] {
        let err = store.involving(PROJECT, bad).unwrap_err();
        assert!(matches!(err, StateError::BadQuery { .. }), "{bad}: {err}");
    }
}

#[test]
fn retained_digests_cover_the_newest_deployments_of_every_target_of_the_env() {
    let (_dir, mut store) = open_temp();
    // dev base: a (old), b (failed, newest)
    succeed(&mut store, &new("dev", &sha("a1"), &[("api", '1')]));
    succeed(&mut store, &new("dev", &sha("a2"), &[("api", '2')]));
    fail(&mut store, &new("dev", &sha("a3"), &[("api", '3')]));
    // dev/alice: two successes
    succeed(&mut store, &new("dev/alice", &sha("b1"), &[("api", '4')]));
    succeed(&mut store, &new("dev/alice", &sha("b2"), &[("api", '5')]));
    // another env and another project are not counted
    succeed(&mut store, &new("test", &sha("c1"), &[("api", '6')]));
    let mut other = new("dev", &sha("d1"), &[("api", '7')]);
    other.project = "other".to_string();
    succeed(&mut store, &other);

    let set = |chars: &str| chars.chars().map(digest).collect::<BTreeSet<_>>();
    let cases = [
        // keep=1: newest of each target (3, 5) plus dev's current (2, the failed 3 is newer)
        (1, set("235")),
        (2, set("2345")),
        (10, set("12345")),
        (0, set("25")),
    ];
    for (keep, expected) in cases {
        assert_eq!(
            store.retained_digests(PROJECT, "dev", keep).unwrap(),
            expected,
            "keep={keep}"
        );
    }
    // A pending deployment is retained whatever keep says.
    store
        .create(&new("dev", &sha("a4"), &[("api", '8')]))
        .unwrap();
    assert_eq!(
        store.retained_digests(PROJECT, "dev", 0).unwrap(),
        set("258")
    );
    assert_eq!(
        store.retained_digests(PROJECT, "test", 1).unwrap(),
        set("6")
    );
    assert!(store
        .retained_digests(PROJECT, "prod", 5)
        .unwrap()
        .is_empty());
}

#[test]
fn wait_turn_serializes_deployments_of_one_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut store = StateStore::open(&path).unwrap();
    let first = store
        .create(&new("dev", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    store.wait_turn(first.id, Duration::from_secs(5)).unwrap();
    store.mark_started(first.id, std::process::id()).unwrap();
    let second = store
        .create(&new("dev", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    // Another target is not held up.
    let other = store
        .create(&new("dev/alice", &sha("a3"), &[("api", 'c')]))
        .unwrap();
    store.wait_turn(other.id, Duration::from_secs(5)).unwrap();

    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut store = StateStore::open(&path).unwrap();
        tx.send("waiting").unwrap();
        store.wait_turn(second.id, Duration::from_secs(30)).unwrap();
        // When its turn comes, the first has finished.
        let first_then = store.get(first.id).unwrap().unwrap();
        store.mark_started(second.id, std::process::id()).unwrap();
        tx.send("started").unwrap();
        first_then
    });
    assert_eq!(rx.recv().unwrap(), "waiting");
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "the second must not start while the first runs"
    );
    store.mark_succeeded(first.id).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "started");
    let first_then = waiter.join().unwrap();
    assert_eq!(first_then.state, DeploymentState::Succeeded);
    let second = store.get(second.id).unwrap().unwrap();
    assert!(first_then.finished_at.unwrap() <= second.started_at.unwrap());
}

#[test]
fn wait_turn_times_out_naming_the_blocking_deployment() {
    let (_dir, mut store) = open_temp();
    let first = store
        .create(&new("dev", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    store.mark_started(first.id, std::process::id()).unwrap();
    // Queued and approved (needs none), by a live process: it blocks as well.
    let second = store
        .create(&new("dev", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    let third = store
        .create(&new("dev", &sha("a3"), &[("api", 'c')]))
        .unwrap();
    let err = store
        .wait_turn(second.id, Duration::from_millis(120))
        .unwrap_err();
    assert!(
        matches!(err, StateError::QueueTimeout { id, blocking_id } if id == second.id && blocking_id == first.id),
        "{err}"
    );
    store.mark_succeeded(first.id).unwrap();
    let err = store
        .wait_turn(third.id, Duration::from_millis(120))
        .unwrap_err();
    assert!(
        matches!(err, StateError::QueueTimeout { blocking_id, .. } if blocking_id == second.id)
    );
    assert!(
        err.to_string()
            .contains(&format!("behind deployment #{}", second.id)),
        "{err}"
    );
    assert!(matches!(
        store.wait_turn(99, Duration::ZERO),
        Err(StateError::NotFound { id: 99 })
    ));
}

#[test]
fn wait_turn_is_not_blocked_by_a_deployment_awaiting_approval() {
    let (_dir, mut store) = open_temp();
    let mut protected = new("prod", &sha("a1"), &[("api", 'a')]);
    protected.approvals_required = 1;
    let waiting = store.create(&protected).unwrap();
    let later = store
        .create(&new("prod", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    store.wait_turn(later.id, Duration::from_secs(5)).unwrap();
    assert_eq!(
        store.get(waiting.id).unwrap().unwrap().state,
        DeploymentState::Pending
    );
    // Once approved, it is queued ahead of deployments created after it.
    store.approve(waiting.id, "bob@x").unwrap();
    let err = store
        .wait_turn(later.id, Duration::from_millis(100))
        .unwrap_err();
    assert!(
        matches!(err, StateError::QueueTimeout { blocking_id, .. } if blocking_id == waiting.id)
    );
}

#[test]
fn wait_turn_fails_a_started_deployment_whose_process_died() {
    let (_dir, mut store) = open_temp();
    let stale = store
        .create(&new("dev", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    store.mark_started(stale.id, dead_pid()).unwrap();
    let next = store
        .create(&new("dev", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    store.wait_turn(next.id, Duration::from_secs(5)).unwrap();
    let stale = store.get(stale.id).unwrap().unwrap();
    assert_eq!(stale.state, DeploymentState::Failed);
    assert_eq!(stale.message.as_deref(), Some(INTERRUPTED_RUNNING));
    // A second wait does not record it twice.
    store.wait_turn(next.id, Duration::from_secs(5)).unwrap();
    let events: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM deployment_events WHERE deployment_id = ?1 AND event = 'failed'",
            args![stale.id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);
}

#[test]
fn wait_turn_fails_a_queued_deployment_whose_process_died() {
    let (_dir, mut store) = open_temp();
    let live_pid = store.pid;
    store.pid = dead_pid();
    let abandoned = store
        .create(&new("dev", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    store.pid = live_pid;
    let next = store
        .create(&new("dev", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    store.wait_turn(next.id, Duration::from_secs(5)).unwrap();
    let abandoned = store.get(abandoned.id).unwrap().unwrap();
    assert_eq!(abandoned.state, DeploymentState::Failed);
    assert_eq!(abandoned.message.as_deref(), Some(INTERRUPTED_QUEUED));
}

#[test]
fn process_liveness_sees_live_dead_and_zombie_processes() {
    assert!(crate::process::is_alive(std::process::id()));
    assert!(!crate::process::is_alive(dead_pid()));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Not reaped yet: it becomes a zombie once it exits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while crate::process::is_alive(pid) {
        assert!(std::time::Instant::now() < deadline, "child never exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "a zombie still has /proc/<pid>"
    );
    child.wait().unwrap();
}

/// Every stored row of deployment `id` (facts and components), as text.
fn fact_rows(store: &StateStore, id: i64) -> Vec<String> {
    let conn = store.connection();
    let mut rows = Vec::new();
    for sql in [
        "SELECT * FROM deployments WHERE id = ?1",
        "SELECT * FROM deployment_components WHERE deployment_id = ?1 ORDER BY position",
        "SELECT * FROM deployment_events WHERE deployment_id = ?1 ORDER BY id",
    ] {
        let found = conn
            .query_map(sql, args![id], |row| Ok(format!("{:?}", row.values)))
            .unwrap();
        rows.extend(found);
    }
    rows
}

#[test]
fn records_are_append_only() {
    let (_dir, mut store) = open_temp();
    let mut promote = new("test", &sha("a1"), &[("api", 'a'), ("model", 'b')]);
    promote.kind = DeploymentKind::Promote {
        from: "dev".to_string(),
    };
    let finished = succeed(&mut store, &promote);
    let before = fact_rows(&store, finished.id);
    assert_eq!(before.len(), 1 + 2 + 3, "{before:?}");

    // Later activity on the target and on the deployment itself.
    let mut rollback = new("test", &sha("a2"), &[("api", 'c')]);
    rollback.kind = DeploymentKind::Rollback;
    rollback.rollback_of = Some(finished.id);
    let later = succeed(&mut store, &rollback);
    fail(&mut store, &new("test", &sha("a3"), &[("api", 'd')]));
    let after_activity = fact_rows(&store, finished.id);
    assert_eq!(before, after_activity);
    store.mark_rolled_back(finished.id, later.id).unwrap();
    let after = fact_rows(&store, finished.id);
    assert_eq!(
        before[..],
        after[..before.len()],
        "earlier rows are unchanged"
    );
    assert_eq!(after.len(), before.len() + 1, "one event appended");
    assert_eq!(
        store.get(finished.id).unwrap().unwrap().kind,
        DeploymentKind::Promote {
            from: "dev".to_string()
        }
    );

    // The database itself refuses changes.
    for sql in [
        "UPDATE deployments SET sha = 'x'",
        "DELETE FROM deployments",
        "UPDATE deployment_components SET digest = 'x'",
        "DELETE FROM deployment_components",
        "UPDATE deployment_events SET event = 'failed'",
        "DELETE FROM deployment_events",
    ] {
        let err = store.connection().execute(sql, args![]).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(fact_rows(&store, finished.id), after);
}

#[test]
fn reopening_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let (history, ids_before) = {
        let mut store = StateStore::open(&path).unwrap();
        succeed(&mut store, &new("dev", &sha("a1"), &[("api", 'a')]));
        let mut request = new("prod", &sha("a1"), &[("api", 'a')]);
        request.approvals_required = 1;
        let pending = store.create(&request).unwrap();
        store.approve(pending.id, "bob@x").unwrap();
        fail(&mut store, &new("dev/alice", &sha("a2"), &[("api", 'b')]));
        let history = store.history(PROJECT, None).unwrap();
        (history.clone(), ids(&history))
    };
    let mut store = StateStore::open(&path).unwrap();
    assert_eq!(store.history(PROJECT, None).unwrap(), history);
    let next = store
        .create(&new("dev", &sha("a3"), &[("api", 'c')]))
        .unwrap();
    assert_eq!(next.id, ids_before[0] + 1);
    let version: i64 = store
        .sqlite_connection()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::MIGRATIONS.len() as i64);
    let mode: String = store
        .sqlite_connection()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        let store = StateStore::open(&path).unwrap();
        store
            .sqlite_connection()
            .pragma_update(None, "user_version", 99)
            .unwrap();
    }
    let err = StateStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StateError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade sandpit"), "{err}");
}

#[test]
fn concurrent_creates_from_separate_handles_get_distinct_ordered_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    // Both handles open a new file at once: migrating must not race either.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = StateStore::open(&path).unwrap();
                (0..25)
                    .map(|i| {
                        let mut request = new("dev", &sha("a1"), &[("api", 'a')]);
                        request.requested_by = format!("thread{t}-{i}@x");
                        store.create(&request).unwrap().id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for thread in threads {
        let mine = thread.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        all.extend(mine);
    }
    assert_eq!(all.len(), 50);
    assert_eq!(
        all.iter().copied().collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
}

#[test]
fn deployments_serialize_in_snake_case() {
    let (_dir, mut store) = open_temp();
    let mut promote = new("test", &sha("a1"), &[("api", 'a')]);
    promote.kind = DeploymentKind::Promote {
        from: "dev".to_string(),
    };
    let d = succeed(&mut store, &promote);
    let later = store
        .create(&new("test", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    store.mark_rolled_back(d.id, later.id).unwrap();
    let d = store.get(d.id).unwrap().unwrap();
    let json = serde_json_value(&d);
    assert!(json.contains(r#""state":"rolled_back""#), "{json}");
    assert!(
        json.contains(r#""kind":{"promote":{"from":"dev"}}"#),
        "{json}"
    );
    assert!(json.contains(r#""approved_by":[]"#), "{json}");
    assert!(
        json.contains(&format!(r#""digest":"{}""#, digest('a'))),
        "{json}"
    );
    assert_eq!(DeploymentState::RolledBack.to_string(), "rolled_back");
    assert_eq!(DeploymentKind::Up.to_string(), "up");
}

/// The JSON the CLI would print.
fn serde_json_value<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// Connections creating the file at the same moment all open it. (Between processes the race is
/// rarer and was caught by the end-to-end concurrent-deploy test: one of two `sandpit deploy`s
/// failed with "database is locked" while switching the new file to WAL.)
#[test]
fn processes_creating_the_file_at_the_same_moment_all_open_it() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || StateStore::open(&path).map(|_| ()))
            })
            .collect();
        for opener in openers {
            opener
                .join()
                .unwrap()
                .expect("every concurrent open succeeds");
        }
    }
}

#[test]
fn a_destroy_ends_what_runs_and_bounds_rollbacks() {
    let (_dir, mut store) = open_temp();
    let one = succeed(&mut store, &new("prod", &sha("a1"), &[("api", 'a')]));
    let mut destroy = new("prod", &sha("a1"), &[]);
    destroy.kind = DeploymentKind::Destroy;
    let destroyed = succeed(&mut store, &destroy);
    assert_eq!(destroyed.kind, DeploymentKind::Destroy);
    assert_eq!(store.current(PROJECT, "prod").unwrap(), None);
    assert_eq!(
        store.destroyed(PROJECT, "prod").unwrap().map(|d| d.id),
        Some(destroyed.id)
    );
    assert_eq!(
        store
            .previous_successful(PROJECT, "prod", destroyed.id)
            .unwrap(),
        None,
        "never back across a destroy"
    );
    let two = succeed(&mut store, &new("prod", &sha("b1"), &[("api", 'b')]));
    assert_eq!(store.destroyed(PROJECT, "prod").unwrap(), None);
    assert_eq!(
        store.current(PROJECT, "prod").unwrap().map(|d| d.id),
        Some(two.id)
    );
    assert_eq!(
        store.previous_successful(PROJECT, "prod", two.id).unwrap(),
        None,
        "{one:?} ran before the destroy"
    );
    assert_eq!(store.history(PROJECT, Some("prod")).unwrap().len(), 3);
    assert_eq!(
        store
            .destroyed_between(PROJECT, "prod", one.id, two.id)
            .unwrap()
            .map(|d| d.id),
        Some(destroyed.id)
    );
    assert_eq!(
        store
            .destroyed_between(PROJECT, "prod", destroyed.id, two.id)
            .unwrap(),
        None
    );
}

#[test]
fn steps_are_recorded_in_order_while_running_only() {
    let (_dir, mut store) = open_temp();
    let created = store
        .create(&new("prod", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    assert!(matches!(
        store.record_step(created.id, StepKind::Rehearsed, "too early"),
        Err(StateError::InvalidTransition { .. })
    ));
    store.mark_started(created.id, std::process::id()).unwrap();
    store
        .record_step(created.id, StepKind::Rehearsed, "rehearsed 002_a.sql")
        .unwrap();
    store
        .record_step(created.id, StepKind::Migrated, "applied 002_a.sql")
        .unwrap();
    store.mark_succeeded(created.id).unwrap();
    let done = store.get(created.id).unwrap().unwrap();
    assert_eq!(done.state, DeploymentState::Succeeded);
    let steps: Vec<(StepKind, &str)> = done
        .steps
        .iter()
        .map(|s| (s.step, s.message.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (StepKind::Rehearsed, "rehearsed 002_a.sql"),
            (StepKind::Migrated, "applied 002_a.sql")
        ]
    );
    let failing = store
        .create(&new("prod", &sha("b1"), &[("api", 'b')]))
        .unwrap();
    store.mark_started(failing.id, std::process::id()).unwrap();
    store
        .record_step(
            failing.id,
            StepKind::RehearsalFailed,
            "002_b.sql line 1: boom",
        )
        .unwrap();
    store.mark_failed(failing.id, "rehearsal failed").unwrap();
    let failed = store.get(failing.id).unwrap().unwrap();
    assert_eq!(failed.state, DeploymentState::Failed);
    assert_eq!(failed.steps[0].step, StepKind::RehearsalFailed);
    assert_eq!(
        serde_json_value(&failed.steps[0].step),
        "\"rehearsal_failed\""
    );
}

#[test]
fn a_version_one_database_is_brought_forward_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO deployments (project, target, env, biome, sha, kind, promoted_from,
                 requested_by, approvals_required, rollback_of, restores, created_at)
             VALUES ('orewise', 'prod', 'prod', NULL, 'aaaaaaa', 'deploy', NULL, 'dev@x', 0, NULL, NULL,
                     '2026-01-01T00:00:00.000Z');
             INSERT INTO deployments (project, target, env, biome, sha, kind, promoted_from,
                 requested_by, approvals_required, rollback_of, restores, created_at)
             VALUES ('orewise', 'prod', 'prod', NULL, 'aaaaaaa', 'rollback', NULL, 'dev@x', 0, 1, 1,
                     '2026-01-01T00:00:01.000Z');
             INSERT INTO deployment_components VALUES (1, 0, 'api', 'api-aaaaaaa.zip', 'sha256:00');
             INSERT INTO deployment_events (deployment_id, event, at, actor, message, pid, ref_deployment)
             VALUES (1, 'created', '2026-01-01T00:00:00.000Z', 'dev@x', NULL, 1, NULL),
                    (1, 'started', '2026-01-01T00:00:00.100Z', NULL, NULL, 1, NULL),
                    (1, 'succeeded', '2026-01-01T00:00:00.200Z', NULL, NULL, 1, NULL),
                    (2, 'created', '2026-01-01T00:00:01.000Z', 'dev@x', NULL, 1, NULL);",
        )
        .unwrap();
    }
    let mut store = StateStore::open(&path).unwrap();
    let first = store.get(1).unwrap().unwrap();
    assert_eq!(first.state, DeploymentState::Succeeded);
    assert_eq!(first.components[0].artifact, "api-aaaaaaa.zip");
    let second = store.get(2).unwrap().unwrap();
    assert_eq!((second.rollback_of, second.restores), (Some(1), Some(1)));
    // The new kinds and events are accepted, ids continue, and the records stay append-only.
    let mut destroy = new("prod", &sha("a1"), &[]);
    destroy.kind = DeploymentKind::Destroy;
    let destroyed = store.create(&destroy).unwrap();
    assert_eq!(destroyed.id, 3);
    store
        .mark_started(destroyed.id, std::process::id())
        .unwrap();
    store
        .record_step(destroyed.id, StepKind::Migrated, "nothing")
        .unwrap();
    for sql in [
        "DELETE FROM deployments",
        "UPDATE deployment_events SET event = 'failed'",
        "DELETE FROM deployment_components",
    ] {
        let err = store.connection().execute(sql, args![]).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let dangling: i64 = store
        .sqlite_connection()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    let references: String = store
        .sqlite_connection()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'deployment_events'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        references.contains("REFERENCES \"deployments\"")
            || references.contains("REFERENCES deployments "),
        "{references}"
    );
}

#[test]
fn a_plan_is_recorded_while_pending_and_other_steps_while_running() {
    let (_dir, mut store) = open_temp();
    let mut protected = new("prod", &sha("c1"), &[("infra", 'c')]);
    protected.approvals_required = 1;
    let created = store.create(&protected).unwrap();
    let planned = "infra: 1 to add, 0 to change, 0 to destroy: + terraform_data.marker";
    store
        .record_step(created.id, StepKind::Planned, planned)
        .unwrap();
    assert!(matches!(
        store.record_step(created.id, StepKind::Applied, "too early"),
        Err(StateError::InvalidTransition { .. })
    ));
    let pending = store.get(created.id).unwrap().unwrap();
    assert_eq!(pending.state, DeploymentState::Pending);
    assert_eq!(pending.steps[0].step, StepKind::Planned);
    assert_eq!(pending.steps[0].message, planned);
    assert_eq!(serde_json_value(&pending.steps[0].step), "\"planned\"");
    store.approve(created.id, "approver@x").unwrap();
    store.mark_started(created.id, std::process::id()).unwrap();
    assert!(matches!(
        store.record_step(created.id, StepKind::Planned, "too late"),
        Err(StateError::InvalidTransition { .. })
    ));
    store
        .record_step(created.id, StepKind::Applied, planned)
        .unwrap();
    store.mark_succeeded(created.id).unwrap();
    let steps: Vec<StepKind> = store
        .get(created.id)
        .unwrap()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(steps, [StepKind::Planned, StepKind::Applied]);
}

#[test]
fn a_version_nine_database_keeps_its_events_and_accepts_plans() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &crate::schema::MIGRATIONS[..9] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 9).unwrap();
        tx.execute_batch(
            "INSERT INTO deployments (project, target, env, biome, sha, kind, promoted_from,
                 requested_by, approvals_required, rollback_of, restores, created_at)
             VALUES ('orewise', 'prod', 'prod', NULL, 'aaaaaaa', 'deploy', NULL, 'dev@x', 1, NULL, NULL,
                     '2026-01-01T00:00:00.000Z');
             INSERT INTO deployment_events (deployment_id, event, at, actor, message, pid, ref_deployment)
             VALUES (1, 'created', '2026-01-01T00:00:00.000Z', 'dev@x', NULL, 1, NULL),
                    (1, 'approved', '2026-01-01T00:00:00.050Z', 'ops@x', NULL, 1, NULL),
                    (1, 'started', '2026-01-01T00:00:00.100Z', NULL, NULL, 1, NULL),
                    (1, 'migrated', '2026-01-01T00:00:00.150Z', NULL, 'applied 002_a.sql', 1, NULL),
                    (1, 'succeeded', '2026-01-01T00:00:00.200Z', NULL, NULL, 1, NULL);",
        )
        .unwrap();
        tx.commit().unwrap();
        assert!(conn
            .execute(
                "INSERT INTO deployment_events (deployment_id, event, at) VALUES (1, 'planned', 'x')",
                [],
            )
            .is_err());
    }
    let mut store = StateStore::open(&path).unwrap();
    let first = store.get(1).unwrap().unwrap();
    assert_eq!(first.state, DeploymentState::Succeeded);
    assert_eq!(first.approved_by, ["ops@x"]);
    assert_eq!(first.steps[0].message, "applied 002_a.sql");
    let mut protected = new("prod", &sha("d1"), &[]);
    protected.approvals_required = 1;
    let created = store.create(&protected).unwrap();
    assert_eq!(created.id, 2);
    store
        .record_step(created.id, StepKind::Planned, "infra: 0 to add")
        .unwrap();
    let err = store
        .connection()
        .execute("DELETE FROM deployment_events", args![])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let dangling: i64 = store
        .sqlite_connection()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
}

#[test]
fn an_empty_state_file_is_refused_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"").unwrap();
    let err = StateStore::open(&path).unwrap_err();
    assert!(matches!(err, StateError::Empty { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("0 bytes") && message.contains("move it aside"),
        "{message}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
    // A new store is created whole: no temporary file is left, and it has its schema.
    std::fs::remove_file(&path).unwrap();
    let store = StateStore::open(&path).unwrap();
    let version: i64 = store
        .sqlite_connection()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::MIGRATIONS.len() as i64);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".new-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        b"not sqlite at all, just some bytes that are long enough",
    )
    .unwrap();
    let err = StateStore::open(&path).unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not sqlite at all, just some bytes that are long enough"
    );
}

#[test]
fn fail_interrupted_fails_dead_deployments_of_every_target_once() {
    let (_dir, mut store) = open_temp();
    let dead = store
        .create(&new("dev", &sha("a1"), &[("api", 'a')]))
        .unwrap();
    store.mark_started(dead.id, dead_pid()).unwrap();
    let alive = store
        .create(&new("dev/alice", &sha("a2"), &[("api", 'b')]))
        .unwrap();
    store.mark_started(alive.id, std::process::id()).unwrap();
    let mut waiting = new("prod", &sha("a3"), &[("api", 'c')]);
    waiting.approvals_required = 1;
    let waiting = store.create(&waiting).unwrap();
    assert_eq!(store.fail_interrupted(PROJECT).unwrap(), 1);
    assert_eq!(store.fail_interrupted(PROJECT).unwrap(), 0, "only once");
    let states: Vec<DeploymentState> = [dead.id, alive.id, waiting.id]
        .iter()
        .map(|id| store.get(*id).unwrap().unwrap().state)
        .collect();
    assert_eq!(
        states,
        [
            DeploymentState::Failed,
            DeploymentState::Running,
            DeploymentState::Pending
        ]
    );
}

#[test]
fn a_config_change_runs_the_artifacts_of_what_it_restores_so_rollback_steps_past_it() {
    let (_dir, mut store) = open_temp();
    let one = succeed(&mut store, &new("dev", &sha("a1"), &[("api", 'a')]));
    let two = succeed(&mut store, &new("dev", &sha("b1"), &[("api", 'b')]));
    let mut configured = new("dev", &sha("b1"), &[("api", 'b')]);
    configured.kind = DeploymentKind::Config;
    configured.restores = Some(two.id);
    let three = succeed(&mut store, &configured);
    configured.restores = Some(three.id);
    let four = succeed(&mut store, &configured);
    assert_eq!(store.current(PROJECT, "dev").unwrap().unwrap().id, four.id);
    assert_eq!(store.origin(four.id).unwrap().id, two.id);
    assert_eq!(
        store
            .previous_successful(PROJECT, "dev", four.id)
            .unwrap()
            .map(|d| d.id),
        Some(one.id),
        "a rollback goes to other artifacts, not to the same ones before a config change"
    );
}

#[test]
fn latest_is_the_newest_deployment_of_the_target_in_any_state() {
    let (_dir, mut store) = open_temp();
    assert!(store.latest(PROJECT, "dev").unwrap().is_none());
    let first = succeed(&mut store, &new("dev", &sha("a"), &[("api", 'a')]));
    let _other_target = succeed(&mut store, &new("test", &sha("b"), &[("api", 'b')]));
    assert_eq!(store.latest(PROJECT, "dev").unwrap().unwrap().id, first.id);
    let failed = fail(&mut store, &new("dev", &sha("c"), &[("api", 'c')]));
    assert_eq!(store.latest(PROJECT, "dev").unwrap().unwrap().id, failed.id);
    // Still queued (recorded, not started) counts too: something is on its way.
    let queued = store
        .create(&new("dev", &sha("d"), &[("api", 'd')]))
        .unwrap();
    assert_eq!(store.latest(PROJECT, "dev").unwrap().unwrap().id, queued.id);
    assert_eq!(store.current(PROJECT, "dev").unwrap().unwrap().id, first.id);
    assert!(store.latest("another-project", "dev").unwrap().is_none());
}

fn new_project(name: &str, url: &str) -> crate::NewProject {
    crate::NewProject {
        name: name.to_string(),
        git_url: url.to_string(),
        branch: "main".to_string(),
        added_by: "admin@x".to_string(),
        webhook_secret: "0123456789abcdef-secret".to_string(),
        allow_forks: false,
    }
}

#[test]
fn projects_are_registered_once_listed_fetched_and_removed() {
    let (_dir, mut store) = open_temp();
    assert!(store.projects().unwrap().is_empty());
    let added = store
        .add_project(&new_project("shop", "file:///srv/shop.git"))
        .unwrap();
    assert_eq!(
        (
            added.name.as_str(),
            added.git_url.as_str(),
            added.branch.as_str()
        ),
        ("shop", "file:///srv/shop.git", "main")
    );
    assert_eq!(added.added_by, "admin@x");
    assert!(added.added_at.ends_with('Z'), "{}", added.added_at);
    assert_eq!(
        (added.head.as_deref(), added.removed_at.as_deref()),
        (None, None)
    );
    store
        .add_project(&new_project("api", "/srv/api.git"))
        .unwrap();

    // The same name again is a conflict that says who has it; nothing is recorded.
    let err = store
        .add_project(&new_project("shop", "file:///elsewhere.git"))
        .unwrap_err();
    assert!(matches!(err, StateError::ProjectExists { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("project `shop` is already registered (added by admin@x"),
        "{err}"
    );
    let names: Vec<String> = store
        .projects()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["api", "shop"]);

    // Fetches record the branch head; the newest one counts.
    store.record_fetch("shop", &sha("a1")).unwrap();
    let fetched = store.record_fetch("shop", &sha("b2")).unwrap();
    assert_eq!(fetched.head, Some(sha("b2")));
    assert!(fetched.fetched_at.is_some());
    assert_eq!(store.project("shop").unwrap(), Some(fetched.clone()));
    let err = store.record_fetch("shop", "main").unwrap_err();
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    let err = store.record_fetch("nope", &sha("a1")).unwrap_err();
    assert!(matches!(err, StateError::ProjectNotFound { .. }), "{err:?}");

    // Removed: gone from the list, its name free again (a new registration, fresh head).
    let removed = store.remove_project("shop", "root@x").unwrap();
    assert_eq!(removed.removed_by.as_deref(), Some("root@x"));
    assert!(removed.removed_at.is_some());
    assert_eq!(store.project("shop").unwrap(), None);
    let err = store.remove_project("shop", "root@x").unwrap_err();
    assert!(matches!(err, StateError::ProjectNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("there is no project `shop`"),
        "{err}"
    );
    let again = store
        .add_project(&new_project("shop", "file:///srv/shop2.git"))
        .unwrap();
    assert_ne!(again.id, fetched.id);
    assert_eq!(
        (again.head, again.git_url.as_str()),
        (None, "file:///srv/shop2.git")
    );
    let names: Vec<String> = store
        .projects()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["api", "shop"]);

    let err = store.add_project(&new_project(" ", "/x")).unwrap_err();
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
}

#[test]
fn project_records_are_append_only_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        let mut store = StateStore::open(&path).unwrap();
        store
            .add_project(&new_project("shop", "/srv/shop.git"))
            .unwrap();
        store.record_fetch("shop", &sha("c3")).unwrap();
        for sql in [
            "UPDATE projects SET git_url = 'x'",
            "DELETE FROM projects",
            "UPDATE project_events SET sha = 'x'",
            "DELETE FROM project_events",
        ] {
            let err = store.connection().execute(sql, args![]).unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        let err = store
            .connection()
            .execute(
                "INSERT INTO project_events (project_id, event, at) VALUES (1, 'renamed', 'now')",
                args![],
            )
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
    }
    let store = StateStore::open(&path).unwrap();
    assert_eq!(
        store.project("shop").unwrap().unwrap().head,
        Some(sha("c3"))
    );
}

#[test]
fn a_version_two_database_gains_the_projects_registry_and_keeps_its_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        tx.execute_batch(crate::schema::MIGRATIONS[1]).unwrap();
        tx.pragma_update(None, "user_version", 2).unwrap();
        tx.execute_batch(&format!(
            "INSERT INTO deployments (project, target, env, biome, sha, kind, promoted_from,
                 requested_by, approvals_required, rollback_of, restores, created_at)
             VALUES ('orewise', 'prod', 'prod', NULL, '{}', 'config', NULL, 'dev@x', 0, NULL, NULL,
                     '2026-01-01T00:00:00.000Z');
             INSERT INTO deployment_events (deployment_id, event, at, actor, message, pid, ref_deployment)
             VALUES (1, 'created', '2026-01-01T00:00:00.000Z', 'dev@x', NULL, 1, NULL);",
            sha("d4")
        ))
        .unwrap();
        tx.commit().unwrap();
    }
    let mut store = StateStore::open(&path).unwrap();
    assert_eq!(store.get(1).unwrap().unwrap().sha, sha("d4"));
    store
        .add_project(&new_project("shop", "/srv/shop.git"))
        .unwrap();
    assert_eq!(store.projects().unwrap().len(), 1);
}

fn new_token(id: &str, secret_hash_digit: char) -> crate::NewToken {
    crate::NewToken {
        id: id.to_owned(),
        user: "alice@x".to_owned(),
        roles: vec!["viewer".to_owned(), "deployer".to_owned()],
        secret_sha256: secret_hash_digit.to_string().repeat(64),
        expires_at: Some("2030-01-01T00:00:00.000Z".to_owned()),
        created_by: "admin".to_owned(),
    }
}

#[test]
fn tokens_are_created_found_by_secret_hash_listed_and_revoked_once() {
    let (_dir, mut store) = open_temp();
    let first = store
        .create_token(&new_token("tok_0123456789ab", 'a'))
        .unwrap();
    assert_eq!(first.roles, ["viewer", "deployer"]);
    assert_eq!(
        first.expires_at.as_deref(),
        Some("2030-01-01T00:00:00.000Z")
    );
    assert_eq!(first.revoked_at, None);
    let mut second = new_token("tok_ba9876543210", 'b');
    second.expires_at = None;
    store.create_token(&second).unwrap();

    let found = store.token_by_secret_hash(&"a".repeat(64)).unwrap();
    assert_eq!(
        found.as_ref().map(|t| t.id.as_str()),
        Some("tok_0123456789ab")
    );
    assert_eq!(store.token_by_secret_hash(&"c".repeat(64)).unwrap(), None);
    let ids: Vec<String> = store.tokens().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["tok_0123456789ab", "tok_ba9876543210"]);

    let revoked = store.revoke_token("tok_0123456789ab", "root").unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.revoked_by.as_deref(), Some("root"));
    // Revoked tokens are still found, so a server can say "revoked" rather than "unknown".
    let found = store
        .token_by_secret_hash(&"a".repeat(64))
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, revoked.revoked_at);

    let again = store.revoke_token("tok_0123456789ab", "root").unwrap_err();
    assert!(
        matches!(again, StateError::TokenAlreadyRevoked { .. }),
        "{again}"
    );
    let unknown = store.revoke_token("tok_000000000000", "root").unwrap_err();
    assert!(
        matches!(unknown, StateError::TokenNotFound { .. }),
        "{unknown}"
    );
    assert!(
        unknown.to_string().contains("sandpit tokens list"),
        "{unknown}"
    );
}

#[test]
fn malformed_or_duplicate_tokens_are_refused() {
    let (_dir, mut store) = open_temp();
    store
        .create_token(&new_token("tok_0123456789ab", 'a'))
        .unwrap();
    let same_secret = store
        .create_token(&new_token("tok_111111111111", 'a'))
        .unwrap_err();
    assert!(
        matches!(same_secret, StateError::Database { .. }),
        "{same_secret}"
    );
    let mut cases = Vec::new();
    let mut bad_id = new_token("token-1", 'b');
    cases.push(("id", bad_id.clone()));
    bad_id.id = "tok_0123456789AB".to_owned();
    cases.push(("upper-case id", bad_id));
    let mut no_roles = new_token("tok_222222222222", 'b');
    no_roles.roles.clear();
    cases.push(("roles", no_roles));
    let mut comma = new_token("tok_222222222222", 'b');
    comma.roles = vec!["viewer,admin".to_owned()];
    cases.push(("comma in a role", comma));
    let mut short_hash = new_token("tok_222222222222", 'b');
    short_hash.secret_sha256 = "ab".to_owned();
    cases.push(("hash", short_hash));
    let mut no_user = new_token("tok_222222222222", 'b');
    no_user.user = " ".to_owned();
    cases.push(("user", no_user));
    for (what, token) in cases {
        let error = store.create_token(&token).unwrap_err();
        assert!(
            matches!(error, StateError::Invalid { .. }),
            "{what}: {error}"
        );
    }
    assert_eq!(store.tokens().unwrap().len(), 1);
}

#[test]
fn token_records_are_append_only() {
    let (_dir, mut store) = open_temp();
    store
        .create_token(&new_token("tok_0123456789ab", 'a'))
        .unwrap();
    store.revoke_token("tok_0123456789ab", "root").unwrap();
    for sql in [
        "UPDATE tokens SET roles = 'admin'",
        "DELETE FROM tokens",
        "UPDATE token_events SET actor = 'x'",
        "DELETE FROM token_events",
    ] {
        let err = store.connection().execute(sql, args![]).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // A second revocation cannot slip in beside the checks either: the index refuses it.
    let err = store
        .connection()
        .execute(
            "INSERT INTO token_events (token_id, event, at, actor) VALUES ('tok_0123456789ab', 'revoked', 'now', 'x')", args![],
        )
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
}

#[test]
fn the_newest_failed_deployment_of_each_biome_is_found_without_the_rest() {
    let (_dir, mut store) = open_temp();
    // alice: failed, then succeeded (not left behind); bob: succeeded, then failed; the base
    // failed but is no biome; carol only succeeded.
    fail(&mut store, &new("dev/alice", &sha("a1"), &[("api", 'a')]));
    succeed(&mut store, &new("dev/alice", &sha("a2"), &[("api", 'a')]));
    succeed(&mut store, &new("dev/bob", &sha("b1"), &[("api", 'b')]));
    let bob = fail(&mut store, &new("dev/bob", &sha("b2"), &[("api", 'b')]));
    fail(&mut store, &new("dev", &sha("c1"), &[("api", 'c')]));
    succeed(&mut store, &new("dev/carol", &sha("d1"), &[("api", 'd')]));
    let found: Vec<i64> = store
        .newest_failed_biome_deployments(PROJECT)
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(found, [bob.id]);
    assert!(store
        .newest_failed_biome_deployments("another")
        .unwrap()
        .is_empty());
}

fn delivery(key: Option<&str>, action: &str, mr: Option<(u64, &str)>) -> crate::NewDelivery {
    crate::NewDelivery {
        project: "shop".into(),
        forge: "gitlab".into(),
        event: "Merge Request Hook".into(),
        delivery_key: key.map(str::to_owned),
        status: 202,
        action: action.into(),
        summary: "something".into(),
        pipeline_id: None,
        biome: mr.map(|(iid, _)| format!("mr-{iid}")),
        sha: None,
        merge_request: mr.map(|(iid, _)| iid),
        mr_updated_at: mr.map(|(_, at)| at.to_owned()),
    }
}

#[test]
fn a_delivery_key_is_recorded_once_and_a_redelivery_gets_the_first_answer() {
    let (_dir, mut store) = open_temp();
    let first = match store
        .record_delivery(&delivery(
            Some("uuid-1"),
            "biome_up",
            Some((1, "2026-01-01T00:00:01Z")),
        ))
        .unwrap()
    {
        crate::Recorded::New(first) => first,
        other => panic!("{other:?}"),
    };
    let mut again = delivery(Some("uuid-1"), "ignored", None);
    again.summary = "would be different".into();
    assert_eq!(
        store.record_delivery(&again).unwrap(),
        crate::Recorded::Earlier(first.clone())
    );
    // Without a key, every delivery is its own.
    for _ in 0..2 {
        assert!(matches!(
            store
                .record_delivery(&delivery(None, "ignored", None))
                .unwrap(),
            crate::Recorded::New(_)
        ));
    }
    assert_eq!(store.deliveries(Some("shop"), 10).unwrap().len(), 3);
    assert!(store.deliveries(Some("other"), 10).unwrap().is_empty());
    assert_eq!(
        store.delivery_by_key("shop", "uuid-1").unwrap(),
        Some(first)
    );
}

#[test]
fn the_watermark_of_a_merge_request_is_its_newest_acting_event_by_the_event_time() {
    let (_dir, mut store) = open_temp();
    for (key, action, at) in [
        ("a", "biome_up", "2026-01-01T00:00:05Z"),
        ("b", "biome_up", "2026-01-01T00:00:09Z"),
        // Arrived later, happened earlier.
        ("c", "biome_down", "2026-01-01T00:00:07Z"),
        ("d", "ignored", "2026-01-01T00:00:30Z"),
    ] {
        store
            .record_delivery(&delivery(Some(key), action, Some((4, at))))
            .unwrap();
    }
    let mark = store
        .merge_request_watermark("shop", "gitlab", 4)
        .unwrap()
        .unwrap();
    assert_eq!(mark.delivery_key.as_deref(), Some("b"));
    assert!(store
        .merge_request_watermark("shop", "gitlab", 5)
        .unwrap()
        .is_none());
    assert!(store
        .merge_request_watermark("shop", "github", 4)
        .unwrap()
        .is_none());
}

#[test]
fn deliveries_and_webhook_settings_are_append_only() {
    let (_dir, mut store) = open_temp();
    store
        .record_delivery(&delivery(Some("k"), "ignored", None))
        .unwrap();
    store
        .add_project(&new_project("shop", "file:///x"))
        .unwrap();
    let conn = store.connection();
    for statement in [
        "UPDATE hook_deliveries SET summary = 'x'",
        "DELETE FROM hook_deliveries",
        "UPDATE project_webhooks SET allow_forks = 1",
        "DELETE FROM project_webhooks",
    ] {
        let error = conn.execute(statement, args![]).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
}
