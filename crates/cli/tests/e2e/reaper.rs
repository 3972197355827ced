//! TTL, `extend` and the reaper with its fail-safe, against real biomes (processes, a real
//! PostgreSQL database) and a local HTTP server standing in for GitLab's merge request API:
//! an expired biome is listed by `reap --dry-run` and removed by `reap` (its `down` in
//! `history` saying why, its database gone); `extend` moves the expiry `ls` shows; a merge
//! request's biome stays while GitLab says open and goes once merged; a GitLab that cannot be
//! reached stops the run; the share guard stops a run that would remove 3 of 4 and `--force`
//! goes on; the daemon's own reaper removes an expired biome by itself.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gitlab_reports::{read_call, Call};
use crate::harness::Sandbox;

const TOKEN: &str = "glpat-reaper-0123456789";

const WEB: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// `sandpit.toml` of project `demo` (dev hosts biomes, one web service) with `more` appended.
fn definition(more: &str) -> String {
    format!(
        r#"[project]
name = "demo"

[environments.dev]
biomes = true

[services.web]
path = "web"
run = "python3 server.py"
health = "/"
start_timeout = 10
{more}"#
    )
}

fn project(more: &str) -> Sandbox {
    Sandbox::with_files(&[("sandpit.toml", &definition(more)), ("web/server.py", WEB)])
}

/// The biomes `ls --json` lists, by name.
fn listed(sandbox: &Sandbox) -> BTreeMap<String, Value> {
    sandbox.json(&["ls"])["biomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap().to_owned(), b.clone()))
        .collect()
}

/// `reap ARGS --json`: its exit code, its report and its stderr.
fn reap(sandbox: &Sandbox, args: &[&str]) -> (i32, Value, String) {
    let mut with_json = vec!["reap"];
    with_json.extend_from_slice(args);
    with_json.push("--json");
    let output = sandbox.run(&with_json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("reap {args:?} --json: {e}\n{stdout}"));
    (
        output.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `biome`'s verdict in a reap report: (`remove`|`keep`, why).
fn verdict(report: &Value, biome: &str) -> (String, String) {
    let found = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["biome"] == biome)
        .unwrap_or_else(|| panic!("no verdict for {biome}: {report:#}"));
    (
        found["verdict"].as_str().unwrap().to_owned(),
        found["reason"].as_str().unwrap().to_owned(),
    )
}

/// Polls `reap --dry-run` until every one of `biomes` is past its expiry.
fn wait_until_expired(sandbox: &Sandbox, biomes: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, report, _) = reap(sandbox, &["--dry-run"]);
        let expired =
            biomes.iter().all(|biome| {
                report["verdicts"].as_array().unwrap().iter().any(|v| {
                    v["biome"] == *biome && v["reason"].as_str().unwrap().contains("expired")
                })
            });
        if expired {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "{biomes:?} never expired: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The newest deployment `history TARGET` lists.
fn newest_deployment(sandbox: &Sandbox, target: &str) -> Value {
    sandbox.json(&["history", target])["deployments"][0].clone()
}

#[test]
fn an_expired_biome_is_listed_by_a_dry_run_then_reaped_with_its_database_and_extend_moves_an_expiry(
) {
    let sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            &definition(
                "\n[database]\nmigrations = \"db/migrations\"\n\n[biomes]\nttl = \"1s\"\nreap_max_percent = 100\n",
            ),
        ),
        ("web/server.py", WEB),
        (
            "db/migrations/001_samples.sql",
            "create table samples(id serial primary key);\n",
        ),
    ]);
    sandbox.ok(&["up", "alice"]);
    sandbox.ok(&["up", "bob"]);
    let before = listed(&sandbox)["bob"]["expires_at"]
        .as_str()
        .expect("ls shows bob's expiry")
        .to_owned();
    let status = sandbox.status("alice");
    assert!(status["expires_at"].is_string(), "{status:#}");
    let environments = sandbox.json(&["ls"])["environments"].clone();
    assert!(
        environments
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["expires_at"].is_null()),
        "{environments:#}"
    );

    // `extend` moves bob's expiry an hour on (counted from now: a second's ttl has passed).
    let extended = sandbox.json(&["extend", "bob", "1h"]);
    assert_eq!(extended["biome"], "bob");
    assert_eq!(extended["previous_expires_at"], before.as_str());
    let after = extended["expires_at"].as_str().unwrap().to_owned();
    assert!(after > before, "{before} → {after}");
    assert_eq!(listed(&sandbox)["bob"]["expires_at"], after.as_str());
    // alice's one-second ttl runs from its `up`, which may have been less than a second ago.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = sandbox.ok(&["ls"]);
        if text.contains("expired ") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("EXPIRES")
            && (text.contains("in 59m") || text.contains("in 1h"))
            && text.contains("expired "),
        "{text}"
    );
    // A span that is not one is a usage error before anything runs; a base never expires;
    // an unknown biome gets a did-you-mean.
    let refused = sandbox.fails(&["extend", "bob", "3 days"], 2);
    assert!(refused.contains("not a span of time"), "{refused}");
    let refused = sandbox.fails(&["extend", "dev", "3d"], 1);
    assert!(refused.contains("does not expire"), "{refused}");
    let refused = sandbox.fails(&["extend", "bobb", "3d"], 1);
    assert!(refused.contains("did you mean `bob`"), "{refused}");

    // A dry run lists alice with why, and removes nothing.
    let report = wait_until_expired(&sandbox, &["alice"]);
    let (action, why) = verdict(&report, "alice");
    assert_eq!(action, "remove", "{report:#}");
    assert!(why.contains("ttl 1s after the up of"), "{why}");
    assert_eq!(verdict(&report, "bob").0, "keep");
    assert!(
        verdict(&report, "bob").1.contains("extended by"),
        "{report:#}"
    );
    assert_eq!(report["dry_run"], true);
    assert!(report["removed"].as_array().unwrap().is_empty());
    let text = sandbox.ok(&["reap", "--dry-run"]);
    assert!(text.contains("would be removed, nothing was"), "{text}");
    assert_eq!(sandbox.status("alice")["biome"], "alice");
    assert_eq!(newest_deployment(&sandbox, "alice")["kind"], "up");

    // The real run removes alice through `down`: recorded by the reaper with why, database gone.
    let (code, report, stderr) = reap(&sandbox, &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["removed"][0]["biome"], "alice", "{report:#}");
    let down = newest_deployment(&sandbox, "alice");
    assert_eq!(
        (&down["kind"], &down["state"], &down["requested_by"]),
        (&"down".into(), &"succeeded".into(), &"reaper".into()),
        "{down:#}"
    );
    let message = down["message"].as_str().unwrap();
    assert!(
        message.starts_with("expired ") && message.contains("(ttl 1s after the up of "),
        "{message}"
    );
    assert_eq!(down["id"], report["removed"][0]["deployment"]);
    let history = sandbox.ok(&["history", "alice"]);
    assert!(history.contains("why: expired"), "{history}");
    let databases = sandbox.admin_column("demo", "select datname from pg_database");
    assert!(
        !databases.contains(&"demo_alice".to_owned()),
        "{databases:?}"
    );
    assert!(databases.contains(&"demo_bob".to_owned()), "{databases:?}");
    let biomes = listed(&sandbox);
    assert!(
        !biomes.contains_key("alice") && biomes.contains_key("bob"),
        "{biomes:?}"
    );
    // Nothing is left to remove: bob is kept, alice is no longer a biome.
    let (code, report, _) = reap(&sandbox, &[]);
    assert_eq!(code, 0);
    assert!(
        report["removed"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(
        report["verdicts"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
}

/// A stand-in for GitLab's merge request API: answers `GET …/merge_requests/<iid>` with the
/// state set for that iid (404 for others) and records every call.
struct FakeGitlab {
    api_url: String,
    states: Arc<Mutex<BTreeMap<u64, &'static str>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeGitlab {
    fn start() -> FakeGitlab {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let api_url = format!("http://{}/api/v4", listener.local_addr().unwrap());
        let states: Arc<Mutex<BTreeMap<u64, &'static str>>> = Arc::default();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let (answers, recorded) = (Arc::clone(&states), Arc::clone(&calls));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(call) = read_call(&stream) else {
                    continue;
                };
                let iid = call
                    .path
                    .strip_prefix("/api/v4/projects/group%2Fdemo/merge_requests/")
                    .and_then(|iid| iid.parse::<u64>().ok());
                let state = iid.and_then(|iid| answers.lock().unwrap().get(&iid).copied());
                let (status, body) = match (iid, state) {
                    (Some(iid), Some(state)) => {
                        (200, format!(r#"{{"iid": {iid}, "state": "{state}"}}"#))
                    }
                    _ => (404, r#"{"message": "404 Not found"}"#.to_owned()),
                };
                recorded.lock().unwrap().push(call);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status} Answered\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeGitlab {
            api_url,
            states,
            calls,
        }
    }

    fn set(&self, iid: u64, state: &'static str) {
        self.states.lock().unwrap().insert(iid, state);
    }
}

/// `[gitlab]` pointing at `api_url`, and the biomes' ttl.
fn with_gitlab(api_url: &str, ttl: &str) -> String {
    definition(&format!(
        "\n[biomes]\nttl = \"{ttl}\"\nreap_max_percent = 100\n\n[gitlab]\napi_url = \"{api_url}\"\nproject = \"group/demo\"\n"
    ))
}

#[test]
fn merge_request_biomes_go_only_once_gitlab_confirms_and_an_unreachable_gitlab_removes_nothing() {
    let gitlab = FakeGitlab::start();
    gitlab.set(1, "opened");
    gitlab.set(2, "merged");
    let mut sandbox = Sandbox::with_files(&[
        ("sandpit.toml", &with_gitlab(&gitlab.api_url, "1s")),
        ("web/server.py", WEB),
    ]);
    sandbox
        .extra_env
        .push(("SANDPIT_GIT_HOST_TIMEOUT_MS".to_owned(), "2000".to_owned()));
    sandbox.ok(&[
        "config",
        "set",
        "dev",
        "--secret",
        &format!("GITLAB_TOKEN={TOKEN}"),
    ]);
    for biome in ["mr-1", "mr-2", "pr-3"] {
        sandbox.ok(&["up", biome]);
    }
    wait_until_expired(&sandbox, &["mr-1"]);

    // Open stays however old; merged goes; a pull request is never the reaper's to remove.
    let (code, report, stderr) = reap(&sandbox, &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let (action, why) = verdict(&report, "mr-1");
    assert_eq!(action, "keep");
    assert!(
        why.starts_with("merge request !1 is open, though it expired"),
        "{why}"
    );
    assert_eq!(
        verdict(&report, "mr-2"),
        ("remove".to_owned(), "merge request !2 is merged".to_owned())
    );
    let (action, why) = verdict(&report, "pr-3");
    assert_eq!(action, "keep");
    assert!(why.contains("no GitHub API"), "{why}");
    let down = newest_deployment(&sandbox, "mr-2");
    assert_eq!(
        (&down["kind"], &down["requested_by"], &down["message"]),
        (
            &"down".into(),
            &"reaper".into(),
            &"merge request !2 is merged".into()
        ),
        "{down:#}"
    );
    let biomes = listed(&sandbox);
    assert!(
        biomes.contains_key("mr-1") && biomes.contains_key("pr-3") && !biomes.contains_key("mr-2"),
        "{biomes:?}"
    );
    // GitLab was asked with the token, about the project as one path segment.
    let calls = gitlab.calls.lock().unwrap().clone();
    let asked: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert!(
        asked.contains(&"/api/v4/projects/group%2Fdemo/merge_requests/1")
            && asked.contains(&"/api/v4/projects/group%2Fdemo/merge_requests/2"),
        "{asked:?}"
    );
    assert!(calls
        .iter()
        .all(|c| c.method == "GET" && c.header("private-token") == Some(TOKEN)));

    // GitLab down (its port closed): an expired plain biome stays too, and the run says why.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/v4", listener.local_addr().unwrap())
    };
    sandbox.write("sandpit.toml", &with_gitlab(&closed, "1s"));
    sandbox.commit("GitLab moved");
    sandbox.ok(&["up", "mr-1"]);
    sandbox.ok(&["up", "alice"]);
    let report = wait_until_expired(&sandbox, &["alice"]);
    assert_eq!(verdict(&report, "alice").0, "remove");
    for args in [&[][..], &["--force"][..]] {
        let (code, report, stderr) = reap(&sandbox, args);
        assert_eq!(code, 1, "reap {args:?}: {report:#}");
        let stopped = report["stopped"].as_str().unwrap();
        assert!(
            stopped.starts_with("nothing was removed: the git host could not tell whether the merge request of `mr-1` is closed (cannot connect"),
            "{stopped}"
        );
        assert!(stderr.contains(stopped), "{stderr}");
        assert!(report["removed"].as_array().unwrap().is_empty());
    }
    let output = sandbox.run(&["reap"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing was removed"));
    let biomes = listed(&sandbox);
    assert!(
        biomes.contains_key("alice") && biomes.contains_key("mr-1"),
        "{biomes:?}"
    );
    assert_eq!(newest_deployment(&sandbox, "alice")["kind"], "up");
}

#[test]
fn the_share_guard_stops_a_run_that_would_remove_3_of_4_biomes_and_force_proceeds() {
    let sandbox = project("\n[biomes]\nttl = \"1s\"\n");
    for biome in ["a", "b", "c", "d"] {
        sandbox.ok(&["up", biome]);
    }
    sandbox.ok(&["extend", "d", "1h"]);
    wait_until_expired(&sandbox, &["a", "b", "c"]);
    let (code, report, _) = reap(&sandbox, &[]);
    assert_eq!(code, 1, "{report:#}");
    let stopped = report["stopped"].as_str().unwrap();
    assert!(
        stopped.contains(
            "would remove 3 of the project's 4 biomes, more than [biomes] reap_max_percent = 50%"
        ) && stopped.contains("--force"),
        "{stopped}"
    );
    assert_eq!(listed(&sandbox).len(), 4);
    assert_eq!(newest_deployment(&sandbox, "a")["kind"], "up");

    let (code, report, stderr) = reap(&sandbox, &["--force"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["biome"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["a", "b", "c"]);
    let left: Vec<String> = listed(&sandbox).into_keys().collect();
    assert_eq!(left, ["d"]);
}

#[test]
fn the_daemons_reaper_removes_an_expired_biome_by_itself() {
    let mut sandbox = project("\n[biomes]\nttl = \"1s\"\n");
    sandbox
        .extra_env
        .push(("SANDPIT_REAP_INTERVAL".to_owned(), "1s".to_owned()));
    sandbox.ok(&["up", "alice"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let down = loop {
        let newest = newest_deployment(&sandbox, "alice");
        if newest["kind"] == "down" && newest["state"] == "succeeded" {
            break newest;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never reaped alice: {newest:#}\n{}",
            std::fs::read_to_string(sandbox.home.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(down["requested_by"], "reaper");
    assert!(
        down["message"].as_str().unwrap().starts_with("expired "),
        "{down:#}"
    );
    assert!(listed(&sandbox).is_empty());
    assert!(sandbox.component_processes().is_empty());
    let log = std::fs::read_to_string(sandbox.home.join("daemon.log")).unwrap();
    assert!(
        log.contains(&format!(
            "reaper, project demo: removed alice (deployment #{})",
            down["id"]
        )),
        "{log}"
    );
}

#[test]
fn a_state_store_that_cannot_be_read_removes_nothing() {
    let sandbox = project("");
    std::fs::create_dir_all(&sandbox.home).unwrap();
    std::fs::write(
        sandbox.home.join("state.db"),
        "not a database, not empty either\n",
    )
    .unwrap();
    let (code, report, stderr) = reap(&sandbox, &[]);
    assert_eq!(code, 1, "{report:#}");
    let stopped = report["stopped"].as_str().unwrap();
    assert!(
        stopped.starts_with("nothing was removed: the state store cannot be read ("),
        "{stopped}"
    );
    assert!(stderr.contains(stopped), "{stderr}");
}
