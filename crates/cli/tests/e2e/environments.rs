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

fn as_user(sandbox: &Sandbox, user: &str, args: &[&str]) -> std::process::Output {
    let mut command = sandbox.command(args);
    command.env("SANDPIT_USER", user);
    command.output().unwrap()
}

fn json_as(sandbox: &Sandbox, user: &str, args: &[&str]) -> Value {
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
