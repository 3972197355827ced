//! The verbs that change what runs, through a real `sandpit server`: a developer `up`s their
//! own biome from a pushed commit (named after the checkout's branch, at its HEAD), which the
//! local CLI over the same `$SANDPIT_HOME` then shows healthy and requested by the token's
//! user; another developer cannot `down` it, a deployer can; `deploy`, `promote` and
//! `rollback` remotely; an unpushed commit is refused saying to push it; a secret set remotely
//! is in neither the CLI's output nor the server's log.
//!
//! The project is registered through `POST /api/v1/projects` (the admin route of the projects
//! API), as a team would.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::Sandbox;
use crate::server::Server;

const SPEC: &str = r#"[project]
name = "plane"

[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"

[jobs.hello]
path = "hello"
run = "echo hello"
"#;

/// The sandbox (its credentials kept inside it) and the bare repository it pushes to.
fn world() -> (Sandbox, PathBuf) {
    let mut sandbox = Sandbox::with_files(&[("sandpit.toml", SPEC), ("hello/README", "a job\n")]);
    let config = sandbox.home.parent().unwrap().join("config");
    sandbox
        .extra_env
        .push(("XDG_CONFIG_HOME".into(), config.display().to_string()));
    let remote = sandbox.repo.parent().unwrap().join("plane.git");
    let made = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&remote)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    sandbox.git(&[
        "remote",
        "add",
        "origin",
        &format!("file://{}", remote.display()),
    ]);
    sandbox.git(&["push", "-q", "origin", "main"]);
    (sandbox, remote)
}

/// `POST url` as `token` with `body`: (status, JSON).
fn post(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `--server URL --token TOKEN ARGS`.
fn as_user(server: &Server, token: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--server".to_owned(),
        server.url.clone(),
        "--token".to_owned(),
        token.to_owned(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

fn run_as(sandbox: &Sandbox, server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    let args = as_user(server, token, args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox.run(&args)
}

/// Succeeds, returns stdout.
fn ok_as(sandbox: &Sandbox, server: &Server, token: &str, args: &[&str]) -> String {
    let output = run_as(sandbox, server, token, args);
    assert!(
        output.status.success(),
        "sandpit {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_as(sandbox: &Sandbox, server: &Server, token: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let stdout = ok_as(sandbox, server, token, &with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stdout}"))
}

/// Fails with exit 1; returns stderr.
fn refused_as(sandbox: &Sandbox, server: &Server, token: &str, args: &[&str]) -> String {
    let output = run_as(sandbox, server, token, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "sandpit {args:?}:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A token's secret for `user` with `role`, made by the admin through the CLI.
fn token(sandbox: &Sandbox, server: &Server, admin: &str, user: &str, role: &str) -> String {
    let created = json_as(
        sandbox,
        server,
        admin,
        &["tokens", "create", user, "--role", role],
    );
    created["secret"].as_str().unwrap().to_owned()
}

#[test]
fn changes_through_a_server_are_made_as_the_tokens_user_and_only_as_its_role_allows() {
    let (mut sandbox, remote) = world();
    // The server logs all it can (debug), so that a secret in any log line would be caught;
    // the clients log nothing.
    sandbox
        .extra_env
        .push(("SANDPIT_LOG".into(), "debug".into()));
    let server = Server::start(&sandbox, &[]);
    sandbox.extra_env.pop();
    let admin = std::fs::read_to_string(sandbox.home.join("server/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let git = format!("file://{}", remote.display());
    let (status, registered) = post(
        &format!("{}/api/v1/projects", server.url),
        &admin,
        &json!({"name": "plane", "git": git, "branch": "main"}),
    );
    assert_eq!(status, 201, "{registered}");
    let alice = token(&sandbox, &server, &admin, "alice@example.com", "developer");
    let bob = token(&sandbox, &server, &admin, "bob@example.com", "developer");
    let dee = token(&sandbox, &server, &admin, "dee@example.com", "deployer");

    // Alice works on her branch: the biome is named after it, built at its pushed HEAD.
    sandbox.git(&["checkout", "-q", "-b", "alice"]);
    let pushed = sandbox.commit("alice's work");
    sandbox.git(&["push", "-q", "origin", "alice"]);
    sandbox.write("scratch.txt", "not committed\n");
    let output = run_as(&sandbox, &server, &alice, &["up", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "uncommitted change(s) are not part of {}",
            &pushed[..12]
        )),
        "{stderr}"
    );
    let up: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(up["biome"], "alice", "{up}");
    assert_eq!(up["sha"], pushed.as_str(), "{up}");
    assert_eq!(up["changed"], true, "{up}");
    assert!(up.get("events").is_none(), "progress goes to stderr: {up}");
    std::fs::remove_file(sandbox.repo.join("scratch.txt")).unwrap();

    // The local CLI over the server's home sees the same biome, healthy, and alice's.
    let status = sandbox.json(&["--local", "status", "alice"]);
    assert_eq!(status["state"], "healthy", "{status}");
    assert_eq!(status["sha"], pushed.as_str(), "{status}");
    let mut from_up = up.clone();
    for key in ["build", "changed", "timings"] {
        from_up.as_object_mut().unwrap().remove(key);
    }
    let mut shown = status.clone();
    // What only `status` tells: the models it is answered with, what it costs now.
    for key in ["models", "cost"] {
        shown.as_object_mut().unwrap().remove(key);
    }
    // `status` alone says when the biome expires.
    assert!(
        shown
            .as_object_mut()
            .unwrap()
            .remove("expires_at")
            .is_some(),
        "{status}"
    );
    assert_eq!(
        from_up, shown,
        "remote up and local status describe one biome"
    );
    let history = sandbox.json(&["--local", "history", "alice"]);
    assert_eq!(
        history["deployments"][0]["requested_by"], "alice@example.com",
        "{history}"
    );
    assert_eq!(history["deployments"][0]["kind"], "up", "{history}");

    // Again: nothing to do, said word for word as a local `up` says it.
    let again = ok_as(&sandbox, &server, &alice, &["up"]);
    assert!(
        again.starts_with(&format!(
            "biome `alice` is already up in `dev` at {pushed}, healthy; nothing changed"
        )),
        "{again}"
    );
    assert_eq!(again, sandbox.ok(&["--local", "up", "alice"]));
    // --overlay travels in the request body: the server's `up` looks at the base (which runs
    // nothing yet, so nothing is borrowed and nothing changes).
    let overlaid = run_as(&sandbox, &server, &alice, &["up", "--overlay"]);
    let said = String::from_utf8_lossy(&overlaid.stderr);
    assert!(overlaid.status.success(), "{said}");
    assert!(
        said.contains("overlay: `dev` runs nothing healthy with the same artifacts to share"),
        "{said}"
    );

    // --allow-dirty cannot travel, and an unpushed commit is not on the server.
    let dirty = refused_as(&sandbox, &server, &alice, &["up", "--allow-dirty"]);
    assert!(
        dirty.contains("only pushed commits") && dirty.contains("--local"),
        "{dirty}"
    );
    let unpushed = sandbox.commit("not pushed");
    let refused = refused_as(&sandbox, &server, &alice, &["up"]);
    assert!(
        refused.contains(&format!(
            "commit {} is not in {git}; push it first",
            &unpushed[..12]
        )),
        "{refused}"
    );
    let as_json = run_as(&sandbox, &server, &alice, &["up", "--json"]);
    let as_json: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(as_json["error"]["code"], "not_found", "{as_json}");
    sandbox.git(&["reset", "-q", "--hard", &pushed]);

    // Alice extends her biome through the server; bob may not.
    let extended = json_as(&sandbox, &server, &alice, &["extend", "alice", "2d"]);
    assert_eq!(extended["extended_by"], "alice@example.com", "{extended}");
    let listed = sandbox.json(&["--local", "ls"]);
    assert_eq!(
        listed["biomes"][0]["expires_at"], extended["expires_at"],
        "{listed}"
    );
    let text = ok_as(&sandbox, &server, &alice, &["extend", "alice", "1h"]);
    assert!(text.starts_with("biome `alice` expires in 9d"), "{text}");
    let refused = refused_as(&sandbox, &server, &bob, &["extend", "alice", "1d"]);
    assert!(refused.contains("needs the `deployer` role"), "{refused}");
    // The reaper reads a biome the server brought up from the server's mirror, at its commit.
    let reap = sandbox.json(&["--local", "reap", "--dry-run"]);
    assert_eq!(reap["verdicts"][0]["verdict"], "keep", "{reap}");
    assert!(
        reap["verdicts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("extended by alice@example.com"),
        "{reap}"
    );

    // Bob may not take alice's biome down; a deployer may.
    let refused = refused_as(&sandbox, &server, &bob, &["down", "alice"]);
    assert!(
        refused.contains("error: biome `alice` is alice@example.com's (they brought it up last): this needs the `deployer` role; your token has developer"),
        "{refused}"
    );
    let down = ok_as(&sandbox, &server, &dee, &["down", "alice"]);
    assert!(
        down.starts_with("biome `alice` is down (deployment #"),
        "{down}"
    );
    let ls = sandbox.json(&["--local", "ls"]);
    assert_eq!(ls["biomes"], json!([]), "{ls}");

    // Deploy, promote, roll back: as dee, on the server.
    sandbox.git(&["checkout", "-q", "main"]);
    let first = sandbox.git(&["rev-parse", "HEAD"]);
    let deployed = json_as(&sandbox, &server, &dee, &["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed}");
    assert_eq!(deployed["sha"], first.as_str(), "{deployed}");
    assert_eq!(deployed["requested_by"], "dee@example.com", "{deployed}");
    assert_eq!(deployed["status"]["state"], "healthy", "{deployed}");
    let first_id = deployed["id"].as_i64().unwrap();
    let promoted = ok_as(&sandbox, &server, &dee, &["promote", "dev", "test"]);
    assert!(
        promoted.starts_with("deployment #")
            && promoted.contains(" to test succeeded: healthy at "),
        "{promoted}"
    );
    let second = sandbox.commit("second");
    sandbox.git(&["push", "-q", "origin", "main"]);
    let redeployed = json_as(&sandbox, &server, &dee, &["deploy", "dev"]);
    assert_eq!(redeployed["sha"], second.as_str(), "{redeployed}");
    let rolled = json_as(&sandbox, &server, &dee, &["rollback", "dev"]);
    assert_eq!(rolled["kind"], "rollback", "{rolled}");
    assert_eq!(rolled["restores"], first_id, "{rolled}");
    assert_eq!(rolled["sha"], first.as_str(), "{rolled}");
    // The remote answer is the local documents: the deployment as `history` lists it, and
    // what runs as `status` shows it.
    let local = sandbox.json(&["--local", "history", "dev"]);
    assert_eq!(
        local["deployments"][0]["requested_by"], "dee@example.com",
        "{local}"
    );
    let mut record = rolled.clone();
    let rolled_status = record.as_object_mut().unwrap().remove("status").unwrap();
    assert_eq!(record, local["deployments"][0]);
    let mut status = sandbox.json(&["--local", "status", "dev"]);
    for key in ["models", "cost"] {
        status.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(rolled_status, status);

    // A secret set remotely, from stdin: in the request body only, never printed or logged.
    let secret = "hunter2-e2e-never-shown";
    let mut child = sandbox
        .command(&[
            "--server",
            &server.url,
            "--token",
            &dee,
            "config",
            "set",
            "dev",
            "API_KEY",
            "--secret",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let set = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&set.stdout).into_owned(),
        String::from_utf8_lossy(&set.stderr).into_owned(),
    );
    assert!(set.status.success(), "{stdout}\n{stderr}");
    let set: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(set["kind"], "config", "{set}");
    assert_eq!(set["state"], "succeeded", "{set}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "{stdout}\n{stderr}"
    );
    let listed = sandbox.ok(&["--local", "config", "dev"]);
    assert!(
        listed.contains("API_KEY") && !listed.contains(secret),
        "{listed}"
    );

    let (stopped, printed, logged) = server.stop();
    assert!(stopped, "{printed}\n{logged}");
    assert!(
        logged.contains("DEBUG") || logged.contains("INFO"),
        "the server logged: {logged}"
    );
    assert!(!printed.contains(secret), "{printed}");
    assert!(
        !logged.contains(secret),
        "the secret is in the server's log:\n{logged}"
    );
}
