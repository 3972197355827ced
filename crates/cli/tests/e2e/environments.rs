//! Environments end to end: deploy, promote the same bytes, approvals, automatic and manual
//! rollback, ordering, tamper evidence and trace.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::harness::{component, http_get, Sandbox};

const SERVER: &str = r#"import http.server, os
broken = os.path.exists("BROKEN")
version = open("VERSION").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if broken and self.path == "/health" else 200
        self.send_response(code); self.end_headers(); self.wfile.write(version.encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn pipeline() -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "flow"

[environments.dev]
biomes = true
[environments.test]
promote_from = "dev"
[environments.prod]
promote_from = "test"
protected = true
approvals = 1

[services.web]
path = "web"
run = "python3 server.py"
health = "/health"
start_timeout = 5
"#,
        ),
        ("web/server.py", SERVER),
        ("web/VERSION", "v1\n"),
    ])
}

pub(crate) fn as_user(sandbox: &Sandbox, user: &str, args: &[&str]) -> std::process::Output {
    let mut command = sandbox.command(args);
    command.env("SANDPIT_USER", user);
    command.output().unwrap()
}

pub(crate) fn json_as(sandbox: &Sandbox, user: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let output = as_user(sandbox, user, &with_json);
    assert!(
        output.status.success(),
        "{args:?} as {user}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn web_digest(sandbox: &Sandbox, env: &str) -> String {
    let listed = sandbox.json(&["artifacts", "--env", env]);
    let artifacts = listed["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1, "{listed:#}");
    artifacts[0]["digest"].as_str().unwrap().to_owned()
}

fn serves(status: &Value) -> String {
    http_get(&format!(
        "{}/",
        component(status, "web")["url"].as_str().unwrap()
    ))
    .1
}

#[test]
fn deploy_promote_and_approve_carry_the_same_bytes_to_prod() {
    let sandbox = pipeline();
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    let built = sandbox.json(&["build"]);
    let build_digest = built["components"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let dev = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    assert_eq!(dev["state"], "succeeded", "{dev:#}");
    assert_eq!(dev["status"]["state"], "healthy");
    let test = json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    assert_eq!(test["state"], "succeeded", "{test:#}");

    // prod is protected: the promotion waits for someone else's approval.
    let refused = as_user(&sandbox, "alice@example.com", &["promote", "dev", "prod"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("takes promotions from `test`"));
    let pending = json_as(&sandbox, "alice@example.com", &["promote", "test", "prod"]);
    assert_eq!(pending["state"], "pending", "{pending:#}");
    let id = pending["id"].as_i64().unwrap().to_string();
    assert!(
        sandbox.run(&["status", "prod"]).status.code() == Some(1),
        "nothing runs in prod yet"
    );
    let own = as_user(&sandbox, "alice@example.com", &["approve", &id]);
    assert_eq!(own.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("cannot approve"),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let approved = json_as(&sandbox, "bob@example.com", &["approve", &id]);
    assert_eq!(approved["state"], "succeeded", "{approved:#}");
    assert_eq!(
        approved["approved_by"],
        serde_json::json!(["bob@example.com"])
    );

    // The same bytes everywhere: identical digests in the three stores, equal to the build's.
    for env in ["dev", "test", "prod"] {
        assert_eq!(web_digest(&sandbox, env), build_digest, "{env}");
        let status = sandbox.status(env);
        assert_eq!(status["state"], "healthy", "{env}");
        assert_eq!(component(&status, "web")["digest"], build_digest.as_str());
        assert_eq!(serves(&status), "v1");
        let file = sandbox.home.join(format!(
            "projects/flow/envs/{env}/artifacts/files/web-{sha}.zip"
        ));
        assert!(
            file.is_file(),
            "{} is visible under the case study's name",
            file.display()
        );
    }

    let listed = sandbox.json(&["ls"]);
    assert_eq!(
        listed["biomes"],
        serde_json::json!([]),
        "bases are not biomes: {listed:#}"
    );
    let bases: Vec<&str> = listed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(bases, ["dev", "prod", "test"]);

    let history = sandbox.json(&["history", "prod"]);
    let record = &history["deployments"][0];
    assert_eq!(record["requested_by"], "alice@example.com");
    assert_eq!(
        record["approved_by"],
        serde_json::json!(["bob@example.com"])
    );
    assert_eq!(record["sha"], sha.as_str());
    assert_eq!(record["components"][0]["digest"], build_digest.as_str());

    let trace = sandbox.json(&["trace", &sha[..10]]);
    let mut targets: Vec<&str> = trace["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["dev", "prod", "test"]);
    assert_eq!(trace["deployments"].as_array().unwrap().len(), 3);
    assert_eq!(trace["provenance"][0]["digest"], build_digest.as_str());
    let by_digest = sandbox.json(&["trace", &build_digest]);
    assert_eq!(by_digest["running"].as_array().unwrap().len(), 3);

    // A blob in `test` that no longer matches its digest stops a redeploy, names the file and
    // both digests, and leaves what runs in test running.
    let before = sandbox.status("test");
    let hex = build_digest.trim_start_matches("sha256:");
    let blob = sandbox
        .home
        .join("projects/flow/envs/test/artifacts/blobs/sha256")
        .join(hex);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&blob, &bytes).unwrap();
    let refused = as_user(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains(&blob.display().to_string()) && error.contains(hex),
        "{error}"
    );
    let after = sandbox.status("test");
    assert_eq!(
        component(&after, "web")["pid"],
        component(&before, "web")["pid"]
    );
    assert_eq!(serves(&after), "v1");
}

#[test]
fn an_unhealthy_deploy_rolls_back_by_itself_and_a_tampered_blob_changes_nothing() {
    let sandbox = pipeline();
    let first = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    let first_id = first["id"].as_i64().unwrap();
    let v1_pid = component(&sandbox.status("dev"), "web")["pid"].clone();

    sandbox.write("web/BROKEN", "yes\n");
    sandbox.write("web/VERSION", "v2\n");
    sandbox.commit("v2, broken");
    let failed = as_user(&sandbox, "alice@example.com", &["deploy", "dev"]);
    assert_eq!(failed.status.code(), Some(1));
    let error = String::from_utf8_lossy(&failed.stderr);
    assert!(error.contains("rolled back automatically"), "{error}");
    let status = sandbox.wait_for_status("dev", std::time::Duration::from_secs(30), |s| {
        s["state"] == "healthy"
    });
    assert_eq!(serves(&status), "v1");
    let history = sandbox.json(&["history", "dev"]);
    let deployments = history["deployments"].as_array().unwrap();
    let rollback = &deployments[0];
    let broken = &deployments[1];
    assert_eq!(broken["state"], "rolled_back", "{history:#}");
    assert_eq!(rollback["state"], "succeeded");
    assert_eq!(rollback["rollback_of"], broken["id"]);
    assert_eq!(rollback["restores"].as_i64(), Some(first_id));

    // Tamper with v1's bytes in dev's store: a redeploy of them is refused, naming the file and
    // both digests, and what runs keeps running.
    let digest = component(&status, "web")["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = sandbox
        .home
        .join("projects/flow/envs/dev/artifacts/blobs/sha256")
        .join(&digest);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let refused = as_user(
        &sandbox,
        "alice@example.com",
        &["rollback", "dev", "--to", &first_id.to_string()],
    );
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains(&blob.display().to_string()),
        "names the file: {error}"
    );
    assert!(
        error.contains(&digest),
        "names the expected digest: {error}"
    );
    assert!(error.contains("has been modified"), "{error}");
    let after = sandbox.status("dev");
    assert_eq!(
        component(&after, "web")["pid"],
        component(&status, "web")["pid"],
        "nothing running was touched"
    );
    assert_ne!(v1_pid, serde_json::Value::Null);
}

#[test]
fn rollback_by_id_and_stale_commits_are_refused() {
    let sandbox = pipeline();
    let v1 = sandbox.git(&["rev-parse", "HEAD"]);
    let d1 = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    sandbox.write("web/VERSION", "v2\n");
    sandbox.commit("v2");
    let d2 = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    sandbox.write("web/VERSION", "v3\n");
    sandbox.commit("v3");
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    assert_eq!(serves(&sandbox.status("dev")), "v3");

    // A slow pipeline deploying v1 now must not silently undo v3.
    let stale = as_user(
        &sandbox,
        "alice@example.com",
        &["deploy", "dev", "--sha", &v1],
    );
    assert_eq!(stale.status.code(), Some(1));
    let error = String::from_utf8_lossy(&stale.stderr);
    assert!(
        error.contains("older than") && error.contains("--allow-older"),
        "{error}"
    );
    assert_eq!(serves(&sandbox.status("dev")), "v3");

    let rolled = json_as(
        &sandbox,
        "carol@example.com",
        &["rollback", "dev", "--to", &d2["id"].to_string()],
    );
    assert_eq!(rolled["state"], "succeeded");
    assert_eq!(rolled["restores"], d2["id"]);
    assert_eq!(serves(&sandbox.status("dev")), "v2");
    // A plain rollback steps back once more: past v3 (undone) and v2 (running) to v1.
    let again = json_as(&sandbox, "carol@example.com", &["rollback", "dev"]);
    assert_eq!(again["restores"], d1["id"]);
    assert_eq!(serves(&sandbox.status("dev")), "v1");
    let v2 = d2["sha"].as_str().unwrap().to_owned();
    json_as(
        &sandbox,
        "carol@example.com",
        &["deploy", "dev", "--sha", &v2],
    );
    assert_eq!(serves(&sandbox.status("dev")), "v2");
    let older = json_as(
        &sandbox,
        "carol@example.com",
        &["deploy", "dev", "--sha", &v1, "--allow-older"],
    );
    assert_eq!(older["state"], "succeeded");
    assert_eq!(serves(&sandbox.status("dev")), "v1");
    assert_eq!(d1["sha"], v1.as_str());
}

#[test]
fn concurrent_deploys_into_one_environment_are_serialized() {
    let sandbox = pipeline();
    json_as(&sandbox, "alice@example.com", &["build"]);
    let mut first = sandbox.command(&["deploy", "dev"]);
    first
        .env("SANDPIT_USER", "one@example.com")
        .stderr(std::process::Stdio::piped());
    let mut second = sandbox.command(&["deploy", "dev"]);
    second
        .env("SANDPIT_USER", "two@example.com")
        .stderr(std::process::Stdio::piped());
    let (a, b) = (first.spawn().unwrap(), second.spawn().unwrap());
    for output in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let history = sandbox.json(&["history", "dev"]);
    let deployments = history["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2);
    let (later, earlier) = (&deployments[0], &deployments[1]);
    assert!(later["id"].as_i64() > earlier["id"].as_i64());
    assert!(
        earlier["finished_at"].as_str().unwrap() <= later["started_at"].as_str().unwrap(),
        "the later deployment started only after the earlier finished: {history:#}"
    );
    assert!(deployments.iter().all(|d| d["state"] == "succeeded"));
}

#[test]
fn gc_keeps_the_artifacts_of_the_last_deployments_and_nothing_else() {
    let sandbox = pipeline();
    let toml = fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    sandbox.write(
        "sandpit.toml",
        &toml.replace(
            "[environments.dev]\nbiomes = true",
            "[environments.dev]\nbiomes = true\nkeep_deployments = 2",
        ),
    );
    sandbox.commit("keep two");
    let d1 = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    for version in ["v2", "v3"] {
        sandbox.write("web/VERSION", &format!("{version}\n"));
        sandbox.commit(version);
        json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    }
    let v1_artifact = d1["components"][0]["artifact"].as_str().unwrap().to_owned();
    let dry = sandbox.json(&["gc", "--env", "dev", "--dry-run"]);
    assert_eq!(
        dry["environments"][0]["removed"],
        serde_json::json!([v1_artifact])
    );
    assert_eq!(
        sandbox.json(&["artifacts", "--env", "dev"])["artifacts"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "dry run removes nothing"
    );
    sandbox.json(&["gc", "--env", "dev"]);
    let left: Vec<String> = sandbox.json(&["artifacts", "--env", "dev"])["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&v1_artifact));
    // What was collected cannot be rolled back to, and the message says why.
    let refused = as_user(
        &sandbox,
        "alice@example.com",
        &["rollback", "dev", "--to", &d1["id"].to_string()],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no longer in `dev`'s artifact store"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        serves(&sandbox.status("dev")),
        "v3",
        "a refused rollback changes nothing"
    );
    // The previous one is retained and still works.
    json_as(&sandbox, "alice@example.com", &["rollback", "dev"]);
    assert_eq!(serves(&sandbox.status("dev")), "v2");
}

fn deployment_id(value: &Value) -> String {
    value["id"].as_i64().unwrap().to_string()
}

/// Promotes what runs in test into prod, approved by bob.
fn promote_to_prod(sandbox: &Sandbox) -> Value {
    let pending = json_as(sandbox, "alice@example.com", &["promote", "test", "prod"]);
    assert_eq!(pending["state"], "pending", "{pending:#}");
    json_as(
        sandbox,
        "bob@example.com",
        &["approve", &deployment_id(&pending)],
    )
}

#[test]
fn an_environment_is_removed_only_by_a_confirmed_recorded_and_approved_destroy() {
    let sandbox = pipeline();
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    promote_to_prod(&sandbox);
    let running = sandbox.status("prod");

    // `down` removes biomes only, and says what to run instead.
    let refused = sandbox.fails(&["down", "prod"], 1);
    assert!(
        refused.contains("is an environment")
            && refused.contains("sandpit env destroy prod --confirm prod"),
        "{refused}"
    );
    // An environment that receives promotions refuses deployments.
    for env in ["test", "prod"] {
        let refused = as_user(&sandbox, "alice@example.com", &["deploy", env]);
        assert_eq!(refused.status.code(), Some(1), "deploy {env}");
        let error = String::from_utf8_lossy(&refused.stderr);
        assert!(
            error.contains("only receives promotions") && error.contains("sandpit promote"),
            "{error}"
        );
    }
    // Refusals have kinds a script can tell apart: a request that is wrong for its target, and
    // one that clashes with what runs there.
    let code = |args: &[&str]| {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = as_user(&sandbox, "alice@example.com", &with_json);
        let value: Value = serde_json::from_slice(&output.stdout).unwrap();
        value["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(code(&["down", "prod"]), "invalid_input");
    assert_eq!(code(&["deploy", "prod"]), "invalid_input");
    assert_eq!(code(&["rollback", "prod", "--to", "999999"]), "not_found");
    // The confirmation must name the environment; without one it is a usage error.
    let typo = as_user(
        &sandbox,
        "alice@example.com",
        &["env", "destroy", "prod", "--confirm", "prdo"],
    );
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("--confirm prod"));
    let missing = as_user(&sandbox, "alice@example.com", &["env", "destroy", "prod"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        component(&sandbox.status("prod"), "web")["pid"],
        component(&running, "web")["pid"],
        "nothing was touched"
    );

    // prod is protected: the destroy waits for someone else's approval.
    let pending = json_as(
        &sandbox,
        "alice@example.com",
        &["env", "destroy", "prod", "--confirm", "prod"],
    );
    assert_eq!(pending["state"], "pending", "{pending:#}");
    assert_eq!(pending["kind"], "destroy");
    assert_eq!(sandbox.status("prod")["state"], "healthy");
    let done = json_as(
        &sandbox,
        "bob@example.com",
        &["approve", &deployment_id(&pending)],
    );
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let gone = sandbox.fails(&["status", "prod"], 1);
    assert!(gone.contains("no biome `prod`"), "{gone}");
    let history = sandbox.json(&["history", "prod"]);
    let latest = &history["deployments"][0];
    assert_eq!(latest["kind"], "destroy");
    assert_eq!(latest["requested_by"], "alice@example.com");
    assert_eq!(
        latest["approved_by"],
        serde_json::json!(["bob@example.com"])
    );
    // Nothing runs there now: a rollback refuses to bring back what ran before the destroy.
    let refused = as_user(&sandbox, "carol@example.com", &["rollback", "prod"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("destroyed"));
    // Other environments are untouched, and a promotion starts prod again.
    assert_eq!(sandbox.status("test")["state"], "healthy");
    let again = promote_to_prod(&sandbox);
    assert_eq!(again["state"], "succeeded");
    assert_eq!(serves(&sandbox.status("prod")), "v1");

    // An unprotected environment is destroyed at once.
    let test = json_as(
        &sandbox,
        "alice@example.com",
        &["env", "destroy", "test", "--confirm", "test"],
    );
    assert_eq!(test["state"], "succeeded");
    assert!(sandbox.fails(&["status", "test"], 1).contains("no biome"));
}

#[test]
fn rollback_into_a_protected_environment_needs_approval_and_steps_back_over_equal_commits() {
    let sandbox = pipeline();
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    let first = promote_to_prod(&sandbox);
    // The same commit promoted again is a deployment of its own.
    let second = promote_to_prod(&sandbox);
    sandbox.write("web/VERSION", "v2\n");
    sandbox.commit("v2");
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    promote_to_prod(&sandbox);
    assert_eq!(serves(&sandbox.status("prod")), "v2");

    let pending = json_as(&sandbox, "alice@example.com", &["rollback", "prod"]);
    assert_eq!(pending["state"], "pending", "{pending:#}");
    assert_eq!(pending["restores"], second["id"]);
    assert_eq!(
        serves(&sandbox.status("prod")),
        "v2",
        "nothing changes before the approval"
    );
    let own = as_user(
        &sandbox,
        "alice@example.com",
        &["approve", &deployment_id(&pending)],
    );
    assert_eq!(own.status.code(), Some(1));
    let rolled = json_as(
        &sandbox,
        "bob@example.com",
        &["approve", &deployment_id(&pending)],
    );
    assert_eq!(rolled["state"], "succeeded", "{rolled:#}");
    assert_eq!(serves(&sandbox.status("prod")), "v1");

    // A second rollback steps back from what runs (the second promotion's artifacts) to the first
    // promotion, although it ran the same commit (regression: "no earlier successful deployment").
    let again = json_as(&sandbox, "carol@example.com", &["rollback", "prod"]);
    let again = json_as(
        &sandbox,
        "bob@example.com",
        &["approve", &deployment_id(&again)],
    );
    assert_eq!(again["state"], "succeeded", "{again:#}");
    assert_eq!(again["restores"], first["id"]);
    assert_eq!(serves(&sandbox.status("prod")), "v1");
    // Nothing older is left: the answer names what runs and how to pick another.
    let none = as_user(&sandbox, "carol@example.com", &["rollback", "prod"]);
    assert_eq!(none.status.code(), Some(1));
    let error = String::from_utf8_lossy(&none.stderr);
    assert!(
        error.contains("no successful deployment older than") && error.contains("--to"),
        "{error}"
    );
}

#[test]
fn reads_never_start_the_daemon_and_say_how_to_start_it() {
    let sandbox = pipeline();
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    sandbox.ok(&["daemon", "stop"]);
    assert_eq!(sandbox.daemon_pid(), None);

    let listed = sandbox.ok(&["ls"]);
    assert!(
        listed.contains("daemon is not running") && listed.contains("sandpit daemon start"),
        "{listed}"
    );
    let listed = sandbox.json(&["ls"]);
    assert_eq!(listed["daemon_running"], false);
    assert_eq!(listed["environments"], serde_json::json!([]));
    let status = sandbox.fails(&["status", "dev"], 1);
    assert!(
        status.contains("daemon is not running") && status.contains("sandpit daemon start"),
        "{status}"
    );
    let history = sandbox.json(&["history", "dev"]);
    assert_eq!(history["deployments"].as_array().unwrap().len(), 1);
    sandbox.ok(&["trace", &sandbox.git(&["rev-parse", "HEAD"])]);
    let daemon = sandbox.json(&["daemon", "status"]);
    assert_eq!(daemon["running"], false, "no read started it: {daemon:#}");
    assert!(
        sandbox.processes_under_home().is_empty(),
        "nothing was restarted"
    );

    let started = sandbox.json(&["daemon", "start"]);
    assert_eq!(started["started"], true);
    let back = sandbox.wait_for_status("dev", std::time::Duration::from_secs(30), |s| {
        s["state"] == "healthy"
    });
    assert_eq!(serves(&back), "v1");
    assert_eq!(sandbox.json(&["daemon", "start"])["started"], false);
}

#[test]
fn lookups_that_find_nothing_exit_1_and_still_print_json() {
    let sandbox = pipeline();
    let empty = sandbox.json(&["history", "prod"]);
    assert_eq!(
        empty["deployments"],
        serde_json::json!([]),
        "a known environment with no deployments is an answer"
    );
    for args in [
        &["history", "nope"][..],
        &["history", "staging/alice"],
        &["trace", "deadbeef"],
        &["status", "nope"],
    ] {
        let stderr = sandbox.fails(args, 1);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = sandbox.run(&with_json);
        assert_eq!(output.status.code(), Some(1), "{with_json:?}");
        let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{with_json:?}: {e}: {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert!(
            value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{value:#}"
        );
        // The kind of failure is told by its type, for scripts (and the server) to act on.
        assert_eq!(
            value["error"]["code"], "not_found",
            "{with_json:?}: {value:#}"
        );
    }
    let nope = sandbox.fails(&["history", "nope"], 1);
    assert!(
        nope.contains("`nope`") && nope.contains("dev, prod, test"),
        "{nope}"
    );
    let trace = sandbox.fails(&["trace", "deadbeef"], 1);
    assert!(
        trace.contains("nothing in project `flow` matches `deadbeef`"),
        "{trace}"
    );
}

#[test]
fn a_tampered_blob_in_one_store_is_caught_there_only_and_reads_keep_answering() {
    let sandbox = pipeline();
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    let digest = web_digest(&sandbox, "test");
    let hex = digest.trim_start_matches("sha256:").to_owned();
    let blob_in = |env: &str| {
        sandbox
            .home
            .join(format!("projects/flow/envs/{env}/artifacts/blobs/sha256"))
            .join(&hex)
    };
    let verified = sandbox.json(&["verify"]);
    assert_eq!(verified["ok"], true, "{verified:#}");

    // Each store holds its own bytes: changing test's copy changes nothing else.
    let blob = blob_in("test");
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    bytes[10] ^= 0x55;
    fs::write(&blob, &bytes).unwrap();
    assert_ne!(fs::read(blob_in("dev")).unwrap(), bytes);

    let output = sandbox.run(&["verify", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let stores = report["stores"].as_array().unwrap();
    let store = |name: &str| stores.iter().find(|s| s["store"] == name).unwrap().clone();
    assert_eq!(
        store("test")["artifacts"][0]["integrity"],
        "modified",
        "{report:#}"
    );
    assert_eq!(store("test")["artifacts"][0]["digest"], digest.as_str());
    let actual = store("test")["artifacts"][0]["actual_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(actual, digest);
    assert_eq!(store("dev")["artifacts"][0]["integrity"], "intact");
    assert_eq!(store("build")["artifacts"][0]["integrity"], "intact");
    let running_test = report["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "test")
        .unwrap()
        .clone();
    assert_eq!(running_test["integrity"], "modified", "{report:#}");
    let text = sandbox.run(&["verify"]);
    assert_eq!(text.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&text.stdout);
    assert!(
        printed.contains(&digest) && printed.contains(&actual),
        "{printed}"
    );
    assert_eq!(sandbox.run(&["verify", "dev"]).status.code(), Some(0));

    // Every read keeps answering, per artifact.
    let listed = sandbox.json(&["artifacts", "--env", "test"]);
    assert_eq!(listed["artifacts"][0]["integrity"], "modified");
    assert_eq!(listed["artifacts"][0]["actual_digest"], actual.as_str());
    assert_eq!(
        sandbox.json(&["artifacts", "--env", "dev"])["artifacts"][0]["integrity"],
        "intact"
    );
    let trace = sandbox.json(&["trace", &sha]);
    let copies = trace["stored"].as_array().unwrap();
    assert_eq!(copies.len(), 3, "{trace:#}");
    let in_test = copies.iter().find(|c| c["store"] == "test").unwrap();
    assert_eq!(in_test["integrity"], "modified");
    assert_eq!(trace["provenance"][0]["digest"], digest.as_str());

    // dev redeploys from its own intact copy; test refuses its damaged one, and `verify --repair`
    // replaces it with an intact copy (keeping the damaged file), after which test takes it again.
    let redeployed = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    assert_eq!(redeployed["state"], "succeeded", "{redeployed:#}");
    let refused = as_user(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("verify --repair"), "{error}");
    let repaired = sandbox.json(&["verify", "--repair"]);
    assert_eq!(repaired["ok"], true, "{repaired:#}");
    assert_eq!(repaired["repairs"][0]["store"], "test", "{repaired:#}");
    assert_eq!(repaired["repairs"][0]["repaired"], true);
    let quarantined: Vec<_> = fs::read_dir(
        sandbox
            .home
            .join("projects/flow/envs/test/artifacts/quarantine"),
    )
    .unwrap()
    .flatten()
    .collect();
    assert_eq!(quarantined.len(), 1, "the damaged file is kept");
    assert_eq!(fs::read(quarantined[0].path()).unwrap(), bytes);
    assert_eq!(fs::read(&blob).unwrap(), fs::read(blob_in("dev")).unwrap());
    let promoted = json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    assert_eq!(promoted["state"], "succeeded", "{promoted:#}");

    // A damaged blob in the build store is rebuilt by the next build.
    let build_blob = sandbox
        .home
        .join("projects/flow/artifacts/blobs/sha256")
        .join(&hex);
    fs::set_permissions(&build_blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&build_blob, b"garbage").unwrap();
    assert_eq!(sandbox.run(&["verify"]).status.code(), Some(1));
    let rebuilt = sandbox.json(&["build"]);
    assert_eq!(
        rebuilt["components"][0]["digest"],
        digest.as_str(),
        "{rebuilt:#}"
    );
    assert_eq!(sandbox.json(&["verify"])["ok"], true);
}

/// Regression: `deploy` on a dirty tree suggested `--allow-dirty`, which deploy does not take.
#[test]
fn deploy_on_a_dirty_tree_hints_only_what_deploy_takes() {
    let sandbox = pipeline();
    sandbox.write("web/VERSION", "uncommitted\n");
    let error = sandbox.fails(&["deploy", "dev"], 1);
    assert!(
        error.contains("uncommitted changes") && error.contains("web/VERSION"),
        "{error}"
    );
    assert!(!error.contains("--allow-dirty"), "{error}");
    let hint = error
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("{error}"));
    // The command the hint offers works as written, and deploys the commit, not the changes.
    let suggested = hint
        .split('`')
        .find(|part| part.starts_with("sandpit deploy"))
        .unwrap_or_else(|| panic!("{hint}"));
    let args: Vec<&str> = suggested.split_whitespace().skip(1).collect();
    let deployed = sandbox.json(&args);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    assert_eq!(serves(&deployed["status"]), "v1");
    // build and up do take it, and still say so.
    let error = sandbox.fails(&["build"], 1);
    assert!(error.contains("--allow-dirty"), "{error}");
}

/// Applies a hint `set `promote_from = "X"` under [environments.Y]` to `toml`.
fn with_suggested_promote_from(toml: &str, hint: &str) -> Option<String> {
    let rest = hint.split("set `promote_from = \"").nth(1)?;
    let (source, rest) = rest.split_once('"')?;
    let target = rest.split("[environments.").nth(1)?.split(']').next()?;
    let header = format!("[environments.{target}]\n");
    assert!(toml.contains(&header), "{hint}");
    Some(toml.replace(&header, &format!("{header}promote_from = \"{source}\"\n")))
}

/// Regression: `promote test dev` (backwards along dev -> test -> prod) suggested
/// `promote_from = "test"` under `[environments.dev]`, a cycle the spec refuses.
#[test]
fn promotion_hints_suggest_only_what_validates() {
    let sandbox = pipeline();
    let toml = fs::read_to_string(sandbox.repo.join("sandpit.toml"))
        .unwrap()
        .replace("[services.web]", "[environments.lab]\n\n[services.web]");
    sandbox.write("sandpit.toml", &toml);
    sandbox.commit("a lab outside the chain");
    sandbox.json(&["deploy", "dev"]);
    json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);

    for (from, to) in [("test", "dev"), ("prod", "dev"), ("dev", "lab")] {
        let error = sandbox.fails(&["promote", from, to], 1);
        assert!(error.contains("hint:"), "{error}");
        if let Some(changed) = with_suggested_promote_from(&toml, &error) {
            if let Err(problems) = sandpit_spec::parse(&changed) {
                panic!(
                    "`promote {from} {to}` suggests an invalid sandpit.toml:\n{error}\n{problems}"
                );
            }
        }
    }
    // Backwards: nothing to configure; the chain's own promotion is offered, and works.
    let error = sandbox.fails(&["promote", "test", "dev"], 1);
    assert!(!error.contains("promote_from"), "{error}");
    assert!(error.contains("dev -> test"), "{error}");
    assert!(error.contains("`sandpit promote dev test`"), "{error}");
    let promoted = json_as(&sandbox, "alice@example.com", &["promote", "dev", "test"]);
    assert_eq!(promoted["state"], "succeeded", "{promoted:#}");

    // Outside the chain: the suggested key, written as suggested, makes the promotion work.
    let error = sandbox.fails(&["promote", "dev", "lab"], 1);
    let changed = with_suggested_promote_from(&toml, &error).unwrap_or_else(|| panic!("{error}"));
    sandbox.write("sandpit.toml", &changed);
    sandbox.commit("lab takes dev's");
    let promoted = json_as(&sandbox, "alice@example.com", &["promote", "dev", "lab"]);
    assert_eq!(promoted["state"], "succeeded", "{promoted:#}");
}

/// The names in a store, by `artifacts --json`, with their sizes.
fn stored(sandbox: &Sandbox, env: Option<&str>) -> Vec<(String, u64)> {
    let mut args = vec!["artifacts"];
    if let Some(env) = env {
        args.extend(["--env", env]);
    }
    sandbox.json(&args)["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn listing(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// `gc` also cleans the build store: what a biome runs, what an environment's retention keeps
/// and each component's newest build stay (with the daemon stopped too); the rest goes, and
/// `--dry-run` says what and how many bytes without touching anything.
#[test]
fn gc_cleans_the_build_store_but_keeps_what_biomes_retention_and_the_next_build_need() {
    let sandbox = pipeline();
    let web = |sandbox: &Sandbox| format!("web-{}.zip", sandbox.git(&["rev-parse", "HEAD"]));
    let alice = sandbox.json(&["up", "alice"]);
    assert_eq!(alice["state"], "healthy", "{alice:#}");
    let for_alice = web(&sandbox);
    let mut for_nobody = Vec::new();
    for version in ["v2", "v3"] {
        sandbox.write("web/VERSION", &format!("{version}\n"));
        sandbox.commit(version);
        sandbox.json(&["build"]);
        for_nobody.push(web(&sandbox));
    }
    sandbox.write("web/VERSION", "v4\n");
    sandbox.commit("v4");
    sandbox.json(&["deploy", "dev"]);
    let for_dev = web(&sandbox);
    sandbox.write("web/VERSION", "v5\n");
    sandbox.commit("v5");
    sandbox.json(&["build"]);
    let newest = web(&sandbox);
    let before = stored(&sandbox, None);
    assert_eq!(before.len(), 5, "{before:?}");

    let build_root = sandbox.home.join("projects/flow/artifacts");
    let files_before = listing(&build_root);
    let dry = sandbox.json(&["gc", "--dry-run"]);
    let mut removed: Vec<String> = dry["build_store"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    removed.sort();
    for_nobody.sort();
    assert_eq!(removed, for_nobody, "{dry:#}");
    let bytes: u64 = before
        .iter()
        .filter(|(name, _)| for_nobody.contains(name))
        .map(|(_, size)| size)
        .sum();
    assert_eq!(dry["build_store"]["freed_bytes"], bytes, "{dry:#}");
    assert!(bytes > 0);
    let envs: Vec<&str> = dry["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["env"].as_str().unwrap())
        .collect();
    assert_eq!(
        envs,
        ["dev", "prod", "test"],
        "every environment store is reported"
    );
    assert_eq!(dry["environments"][0]["removed"], serde_json::json!([]));
    assert_eq!(
        listing(&build_root),
        files_before,
        "a dry run changes nothing"
    );
    let text = sandbox.ok(&["gc", "--dry-run"]);
    assert!(text.contains("would remove"), "{text}");
    for name in &for_nobody {
        assert!(text.contains(&format!("build: {name}")), "{text}");
    }
    assert!(text.contains(&bytes.to_string()), "{text}");

    // With the daemon stopped, what its biomes ran is still needed: its next start brings them back.
    sandbox.ok(&["daemon", "stop"]);
    let collected = sandbox.json(&["gc"]);
    assert_eq!(collected["daemon_running"], false);
    assert_eq!(
        collected["build_store"]["freed_bytes"], bytes,
        "{collected:#}"
    );
    let mut left: Vec<String> = stored(&sandbox, None).into_iter().map(|(n, _)| n).collect();
    left.sort();
    let mut kept = vec![for_alice, for_dev.clone(), newest.clone()];
    kept.sort();
    assert_eq!(left, kept);
    assert_eq!(
        stored(&sandbox, Some("dev"))
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [for_dev]
    );
    sandbox.ok(&["daemon", "start"]);
    let alice = sandbox.wait_for_status("alice", std::time::Duration::from_secs(30), |s| {
        s["state"] == "healthy"
    });
    assert_eq!(serves(&alice), "v1", "alice came back from what gc kept");

    // The newest build is reused, not rebuilt.
    let rebuilt = sandbox.json(&["build"]);
    assert_eq!(rebuilt["components"][0]["artifact"], newest.as_str());
    assert_eq!(rebuilt["components"][0]["outcome"], "reused", "{rebuilt:#}");
    assert_eq!(
        sandbox.json(&["gc"])["build_store"]["removed"],
        serde_json::json!([])
    );
}
