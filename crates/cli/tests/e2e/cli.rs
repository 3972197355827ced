//! The command line's contract: usage errors, spec diagnostics, init.

use crate::harness::Sandbox;

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let sandbox = Sandbox::new();
    sandbox.fails(&["frobnicate"], 2);
    sandbox.fails(&["logs", "alice", "web", "extra"], 2);
    let error = sandbox.fails(&["status", "alice"], 1);
    assert!(error.contains("no sandpit.toml"), "{error}");
    assert!(error.contains("sandpit init"), "{error}");
}

#[test]
fn malformed_names_are_usage_errors_before_anything_runs() {
    let sandbox = Sandbox::with_files(&[(
        "sandpit.toml",
        "[project]\nname = \"names\"\n\n[jobs.noop]\npath = \".\"\nrun = \"true\"\n",
    )]);
    for args in [
        &["up", "!!!"][..],
        &["up", "alice", "--env", "Dev"],
        &["down", "///"],
        &["status", "***"],
        &["history", "a/b/c"],
        &["deploy", "dev-"],
        &["promote", "dev", "T"],
        &["rollback", "9"],
        &["env", "destroy", "Prod", "--confirm", "Prod"],
        &["verify", "UPPER"],
        &["logs", "alice", "Web"],
        &["logs", "%%", "web"],
        &["artifacts", "--env", "x y"],
    ] {
        let error = sandbox.fails(args, 2);
        assert!(
            error.contains("hint:") || error.contains("invalid"),
            "{args:?}: {error}"
        );
    }
    assert!(
        !sandbox.home.join("projects").exists(),
        "nothing was built or started"
    );
    // A well-formed name that is an environment's is refused before the build, as a failure.
    let error = sandbox.fails(&["up", "dev"], 1);
    assert!(error.contains("is the name of an environment"), "{error}");
    assert!(
        !sandbox.home.join("projects/names/build-logs").exists(),
        "{error}"
    );
}

#[test]
fn init_writes_a_starter_that_builds_and_refuses_to_overwrite() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["init", "--name", "starter"]);
    assert!(out.contains("sandpit.toml"));
    let text = std::fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    assert!(text.contains("name = \"starter\""), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 5,
        "commented: {text}"
    );
    let error = sandbox.fails(&["init"], 1);
    assert!(error.contains("already exists"), "{error}");
    let error = sandbox.fails(&["-C", "/tmp", "init", "--name", "Bad_Name"], 2);
    assert!(error.contains("Bad_Name"), "{error}");
}

#[test]
fn every_spec_problem_is_reported_with_its_location() {
    let sandbox = Sandbox::with_files(&[(
        "sandpit.toml",
        r#"[project]
name = "broken"

[services.Web]
path = "web"
run = "x"

[services.api]
path = "../outside"
hellth = "/"
run = "y"
depends_on = ["ghost"]
"#,
    )]);
    let error = sandbox.fails(&["build"], 1);
    assert!(
        error.contains("sandpit.toml:4:"),
        "bad name located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:9:"),
        "bad path located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:12:"),
        "unknown dependency located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:10:1: unknown key `hellth` in service `api`")
            && error.contains("did you mean `health`?"),
        "unknown key refused with a suggestion: {error}"
    );
    assert!(error.contains("hint:"), "{error}");
}
