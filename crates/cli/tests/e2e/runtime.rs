//! The supervisor end to end: biomes up, crashes, daemon loss, idempotent updates, down.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::harness::{component, http_get, http_post_json, kill9, process_group, Sandbox};

const SLOW: Duration = Duration::from_secs(60);

fn healthy(status: &serde_json::Value, name: &str) -> bool {
    component(status, name)["state"] == "healthy"
}

#[test]
fn example_biome_serves_survives_crashes_and_daemon_loss_then_goes_down_cleanly() {
    let sandbox = Sandbox::with_example();
    let up = sandbox.json(&["up", "alice"]);
    assert_eq!(up["state"], "healthy", "{up:#}");
    assert_eq!(up["biome"], "alice");
    assert_eq!(up["env"], "dev");
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    assert_eq!(up["sha"], sha.as_str());

    // Every service answers real HTTP on its URL; the job ran first and succeeded.
    let status = sandbox.status("alice");
    assert_eq!(component(&status, "prepare-data")["state"], "succeeded");
    assert_eq!(status["database"]["name"], "orewise_alice");
    let ingest = component(&status, "assay-ingest")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let grade = component(&status, "grade-api")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in status["components"].as_array().unwrap() {
        assert!(c["digest"].as_str().unwrap().starts_with("sha256:"), "{c}");
        assert!(
            c["artifact"]
                .as_str()
                .unwrap()
                .ends_with(&format!("-{sha}.zip")),
            "{c}"
        );
    }
    let (code, body) = http_get(&format!("{ingest}/"));
    assert_eq!(code, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["biome"], "alice");
    assert_eq!(info["sha"], sha.as_str());
    let (code, _) = http_post_json(
        &format!("{ingest}/assays"),
        &json!({"sample_id": "DH-001-12.5", "ore_type": "oxide", "method": "fire-assay", "au_gpt": 1.82, "cu_pct": 0.41}),
    );
    assert_eq!(code, 201);
    // grade-api reaches assay-ingest through the injected SANDPIT_URL_ASSAY_INGEST.
    let (code, body) = http_get(&format!("{grade}/blend-summary"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("oxide"), "{body}");

    // grade-api asks the shared model endpoint; the answer matches ONNX Runtime run directly
    // from Python on the committed model file.
    let features = json!({"au_gpt": 1.8, "cu_pct": 0.4, "throughput_tph": 450, "bwi_kwh_t": 14, "sulphide_frac": 0.2});
    let (code, predicted) = http_post_json(&format!("{grade}/predict-ml"), &features);
    assert_eq!(code, 200, "{predicted:#}");
    let served = predicted["recovery_pct"].as_f64().unwrap();
    let expected = onnxruntime_prediction(
        &sandbox.repo.join("models/recovery/recovery.onnx"),
        [1.8, 0.4, 450.0, 14.0, 0.2],
    );
    assert!(
        (served - expected).abs() < 0.01,
        "endpoint {served} vs onnxruntime {expected}"
    );

    // kill -9 a service: it is restarted and healthy again, on the same URL.
    let old_pid = component(&status, "assay-ingest")["pid"].as_u64().unwrap() as u32;
    kill9(old_pid);
    let status = sandbox.wait_for_status("alice", SLOW, |s| {
        let c = component(s, "assay-ingest");
        c["state"] == "healthy" && c["pid"].as_u64() != Some(old_pid as u64) && c["restarts"] == 1
    });
    assert_eq!(
        component(&status, "assay-ingest")["url"].as_str().unwrap(),
        ingest
    );
    let (code, body) = http_get(&format!("{ingest}/assays/DH-001-12.5"));
    assert_eq!(
        code, 200,
        "data in SANDPIT_DATA_DIR survives a restart: {body}"
    );

    // kill -9 the daemon: the components keep running; the next daemon adopts them, and nothing
    // is left that it does not know about. Reads never start it; `daemon start` does.
    let pids_before: Vec<u64> = ["assay-ingest", "grade-api"]
        .iter()
        .map(|n| component(&status, n)["pid"].as_u64().unwrap())
        .collect();
    let daemon = sandbox.daemon_pid().expect("daemon pid file");
    kill9(daemon);
    let refused = sandbox.fails(&["status", "alice"], 1);
    assert!(refused.contains("sandpit daemon start"), "{refused}");
    sandbox.ok(&["daemon", "start"]);
    let status = sandbox.wait_for_status("alice", SLOW, |s| {
        healthy(s, "assay-ingest") && healthy(s, "grade-api")
    });
    assert_ne!(sandbox.daemon_pid(), Some(daemon), "a new daemon took over");
    let pids_after: Vec<u64> = ["assay-ingest", "grade-api"]
        .iter()
        .map(|n| component(&status, n)["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        pids_before, pids_after,
        "running services are adopted, not restarted"
    );
    let (code, _) = http_get(&format!("{grade}/healthz"));
    assert_eq!(code, 200);
    let known: Vec<u32> = pids_after.iter().map(|p| *p as u32).collect();
    for pid in sandbox.component_processes() {
        let group = process_group(pid);
        assert!(
            known.contains(&pid) || group.is_some_and(|g| known.contains(&g)),
            "process {pid} ({}) runs under SANDPIT_HOME but belongs to no component: an orphan; daemon: {}",
            fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " "),
            sandbox.json(&["daemon", "status"])
        );
    }
    // An adopted service is still supervised: kill -9 it and it comes back.
    kill9(pids_after[0] as u32);
    sandbox.wait_for_status("alice", SLOW, |s| {
        let c = component(s, "assay-ingest");
        c["state"] == "healthy" && c["pid"].as_u64() != Some(pids_after[0])
    });

    // down: nothing left running, nothing left on disk.
    let down = sandbox.json(&["down", "alice"]);
    assert_eq!(down["state"], "stopped");
    assert!(
        sandbox.component_processes().is_empty(),
        "processes left: {:?}",
        sandbox.component_processes()
    );
    let ls = sandbox.json(&["ls"]);
    assert_eq!(ls["biomes"], json!([]));
    assert!(!sandbox.home.join("runtime/orewise/alice").exists());
    let databases = sandbox.admin_column("orewise", "select datname from pg_database");
    assert!(
        !databases.contains(&"orewise_alice".to_owned()),
        "{databases:?}"
    );
    let error = sandbox.fails(&["status", "alice"], 1);
    assert!(error.contains("there is no biome `alice`"), "{error}");
}

#[test]
fn up_is_idempotent_and_replaces_only_what_changed() {
    let sandbox = Sandbox::with_example();
    sandbox.git(&["checkout", "-q", "-b", "feature/Faster_Recovery"]);
    // No name: the biome is named after the branch.
    let first = sandbox.json(&["up"]);
    assert_eq!(first["biome"], "feature-faster-recovery");
    let pid = |s: &serde_json::Value, n: &str| component(s, n)["pid"].as_u64().unwrap();

    let again = sandbox.json(&["up"]);
    for name in ["assay-ingest", "grade-api"] {
        assert_eq!(
            pid(&first, name),
            pid(&again, name),
            "same commit: {name} untouched"
        );
    }
    assert!(again["build"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["outcome"] == "reused"));
    // A real `up` reports every phase; the same commit again is a no-op that records nothing
    // and never touches the database or the model endpoint.
    assert_eq!(first["changed"], true);
    let phases = |s: &serde_json::Value| -> Vec<String> {
        s["timings"].as_object().unwrap().keys().cloned().collect()
    };
    for phase in [
        "spec",
        "plan",
        "record",
        "database",
        "models",
        "daemon",
        "health_wait",
    ] {
        assert!(
            phases(&first).iter().any(|p| p == phase),
            "{phase} in {first:#}"
        );
    }
    assert_eq!(again["changed"], false, "{again:#}");
    assert!(
        !phases(&again)
            .iter()
            .any(|p| p == "database" || p == "models"),
        "{again:#}"
    );
    let target = "dev/feature-faster-recovery";
    let recorded = || {
        sandbox.json(&["history", target])["deployments"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(recorded(), 1, "a no-op records no deployment");
    let text = sandbox.ok(&["up"]);
    assert!(
        text.contains("is already up in `dev`") && text.contains("nothing changed"),
        "{text}"
    );
    // What must do the work still does it: a reset of the database, and a daemon that is not
    // running (a no-op never starts one; the real `up` brings the biome back).
    let reset = sandbox.json(&["up", "--reset-db"]);
    assert_eq!(reset["changed"], true);
    assert_eq!(recorded(), 2);
    sandbox.ok(&["daemon", "stop"]);
    let restored = sandbox.json(&["up"]);
    assert_eq!(restored["changed"], true, "{restored:#}");
    assert_eq!(recorded(), 3);
    assert_eq!(restored["state"], "healthy");
    let again = sandbox.json(&["up"]);
    assert_eq!(again["changed"], false);
    let first = restored;

    // Change only grade-api: only it is rebuilt and restarted.
    let server = sandbox.repo.join("services/grade-api/server.py");
    let mut text = fs::read_to_string(&server).unwrap();
    text.push_str("\n# a change that only touches grade-api\n");
    fs::write(&server, text).unwrap();
    let new_sha = sandbox.commit("tweak grade-api");
    let third = sandbox.json(&["up", "feature-faster-recovery"]);
    assert_eq!(third["sha"], new_sha.as_str());
    let outcomes: Vec<(String, String)> = third["build"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("grade-api".into(), "built".into())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("assay-ingest".into(), "reused".into())),
        "{outcomes:?}"
    );
    assert_eq!(pid(&first, "assay-ingest"), pid(&third, "assay-ingest"));
    assert_ne!(pid(&first, "grade-api"), pid(&third, "grade-api"));
    assert_eq!(component(&third, "grade-api")["state"], "healthy");
    assert_eq!(
        component(&third, "assay-ingest")["digest"],
        component(&first, "assay-ingest")["digest"],
        "reused bytes keep their digest"
    );
    let (code, body) = http_get(&format!(
        "{}/",
        component(&third, "grade-api")["url"].as_str().unwrap()
    ));
    assert_eq!(code, 200);
    assert!(
        body.contains(&new_sha),
        "the new grade-api runs at the new commit: {body}"
    );
}

/// A small project whose pieces misbehave on purpose.
fn misbehaving_project(job_exit: i32) -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            &format!(
                r#"
[project]
name = "misfits"

[jobs.migrate]
path = "migrate"
run = "echo migrating; echo 'relation missing' >&2; exit {job_exit}"

[services.web]
path = "web"
run = "python3 server.py"
health = "/ready"
start_timeout = 3
depends_on = ["migrate"]
"#
            ),
        ),
        ("migrate/README", "a job\n"),
        (
            "web/server.py",
            r#"import http.server, os, sys
print("web starting; secret is", os.environ.get("LEAKED_SECRET", "absent"), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/env" else 500
        body = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())).encode()
        self.send_response(code); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ])
}

#[test]
fn a_failing_job_stops_up_and_shows_its_log_tail() {
    let sandbox = misbehaving_project(3);
    let error = sandbox.fails(&["up", "bob"], 1);
    assert!(
        error.contains("job `migrate` failed: exited with status 3"),
        "{error}"
    );
    assert!(
        error.contains("relation missing"),
        "the log tail is shown: {error}"
    );
    let status = sandbox.status("bob");
    assert_eq!(component(&status, "migrate")["state"], "failed");
    assert_eq!(
        component(&status, "web")["state"],
        "stopped",
        "services after a failed job never start"
    );
    sandbox.ok(&["down", "bob"]);
}

#[test]
fn a_service_that_never_gets_healthy_fails_up_with_its_log_and_scrubbed_environment() {
    let mut sandbox = misbehaving_project(0);
    sandbox
        .extra_env
        .push(("LEAKED_SECRET".into(), "hunter2".into()));
    let error = sandbox.fails(&["up", "carol"], 1);
    assert!(
        error.contains("service `web` did not become healthy"),
        "{error}"
    );
    assert!(
        error.contains("500"),
        "the last probe result is explained: {error}"
    );
    assert!(
        error.contains("web starting; secret is absent"),
        "log tail, and no leaked variable: {error}"
    );
    let status = sandbox.status("carol");
    let web = component(&status, "web");
    assert_eq!(web["state"], "unhealthy");
    assert_eq!(component(&status, "migrate")["state"], "succeeded");
    // The injected environment is exactly what the contract promises.
    let (_, env) = http_get(&format!("{}/env", web["url"].as_str().unwrap()));
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    for expected in [
        format!(
            "PORT={}",
            web["url"].as_str().unwrap().rsplit(':').next().unwrap()
        ),
        "SANDPIT_ENV=dev".to_owned(),
        "SANDPIT_BIOME=carol".to_owned(),
        format!("SANDPIT_SHA={sha}"),
        "SANDPIT_COMPONENT=web".to_owned(),
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "missing {expected} in:\n{env}"
        );
    }
    assert!(!env.contains("LEAKED_SECRET"), "{env}");
    sandbox.ok(&["down", "carol"]);
    assert!(sandbox.processes_under_home().is_empty());
}

#[test]
fn sibling_urls_logs_and_log_caps() {
    let mut sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "chatty"

[services.talker]
path = "talker"
run = "python3 -u talk.py"

[services.listener]
path = "listener"
run = "python3 -u talk.py"
"#,
        ),
        (
            "talker/talk.py",
            r#"import http.server, os, threading, time
def spam():
    i = 0
    while True:
        print("line", i, "x" * 200, flush=True); i += 1; time.sleep(0.001)
threading.Thread(target=spam, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "\n".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("SANDPIT_URL_")).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
        (
            "listener/talk.py",
            r#"import http.server, os
print("listener ready", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "\n".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("SANDPIT_URL_")).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ]);
    sandbox
        .extra_env
        .push(("SANDPIT_LOG_MAX_BYTES".into(), "20000".into()));
    let status = sandbox.json(&["up", "dan"]);
    let talker = component(&status, "talker");
    let listener = component(&status, "listener");
    let (_, talker_env) = http_get(&format!("{}/", talker["url"].as_str().unwrap()));
    assert_eq!(
        talker_env.trim(),
        format!("SANDPIT_URL_LISTENER={}", listener["url"].as_str().unwrap())
    );
    let (_, listener_env) = http_get(&format!("{}/", listener["url"].as_str().unwrap()));
    assert_eq!(
        listener_env.trim(),
        format!("SANDPIT_URL_TALKER={}", talker["url"].as_str().unwrap())
    );

    let logs = sandbox.ok(&["logs", "dan", "listener"]);
    assert!(logs.contains("listener ready"), "{logs}");
    let tail = sandbox.ok(&["logs", "dan", "talker", "--tail", "3"]);
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("line ")), "{tail}");

    // The talker writes ~200 KB/s; its log stays under the cap (current + one rotated generation).
    let log = std::path::PathBuf::from(talker["log"].as_str().unwrap());
    let mut rotated_seen = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(200));
        let current = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let rotated = fs::metadata(format!("{}.1", log.display()))
            .map(|m| m.len())
            .unwrap_or(0);
        rotated_seen |= rotated > 0;
        assert!(rotated <= 20_000, "rotated generation is capped: {rotated}");
        // Between two checks (1 s apart) the writer adds ~200 KB at most.
        assert!(
            current <= 20_000 + 400_000,
            "current log grows without bound: {current}"
        );
    }
    assert!(rotated_seen, "the log was rotated");
    let error = sandbox.fails(&["logs", "dan", "nobody"], 1);
    assert!(error.contains("has no component `nobody`"), "{error}");
}

#[test]
fn daemon_socket_is_private_and_daemon_stop_restores_biomes_on_next_start() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = misbehaving_project(0);
    // Make web healthy by pointing its health path at /env.
    let toml = fs::read_to_string(sandbox.repo.join("sandpit.toml"))
        .unwrap()
        .replace("/ready", "/env");
    sandbox.write("sandpit.toml", &toml);
    sandbox.commit("health at /env");
    sandbox.ok(&["up", "erin"]);
    let socket = sandbox.home.join("run/daemon.sock");
    assert_eq!(
        fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(sandbox.home.join("run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let before = sandbox.status("erin");
    sandbox.ok(&["daemon", "stop"]);
    assert!(
        sandbox.processes_under_home().is_empty(),
        "daemon stop stops every component"
    );
    assert!(!socket.exists());
    // The next daemon brings the biome back to its desired state.
    sandbox.ok(&["daemon", "start"]);
    let after = sandbox.wait_for_status("erin", SLOW, |s| healthy(s, "web"));
    assert_ne!(
        component(&before, "web")["pid"],
        component(&after, "web")["pid"]
    );
    assert_eq!(
        component(&after, "web")["url"],
        component(&before, "web")["url"],
        "ports are kept"
    );
    assert_eq!(
        component(&after, "migrate")["state"],
        "succeeded",
        "a succeeded job is not rerun"
    );
}

/// A project with one healthy service whose shell ignores SIGTERM when `stubborn`.
fn one_service_project(stubborn: bool) -> Sandbox {
    let trap = if stubborn { "trap '' TERM; " } else { "" };
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            &format!(
                r#"
[project]
name = "solo"

[services.web]
path = "web"
run = "{trap}python3 server.py"
"#
            ),
        ),
        (
            "web/server.py",
            r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ])
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_the_grace_period() {
    let sandbox = one_service_project(true);
    sandbox.ok(&["up", "frank"]);
    assert!(!sandbox.processes_under_home().is_empty());
    let started = std::time::Instant::now();
    sandbox.ok(&["down", "frank"]);
    // The harness sets a 3 s grace period; SIGTERM is ignored, so only SIGKILL ends it.
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "stopped before the grace period"
    );
    assert!(
        sandbox.processes_under_home().is_empty(),
        "SIGKILL followed SIGTERM"
    );
}

#[test]
fn a_service_that_died_while_the_daemon_was_down_is_restarted_by_the_next_daemon() {
    let sandbox = one_service_project(false);
    let status = sandbox.json(&["up", "gina"]);
    let pid = component(&status, "web")["pid"].as_u64().unwrap() as u32;
    kill9(sandbox.daemon_pid().unwrap());
    kill9(pid);
    sandbox.ok(&["daemon", "start"]);
    let status = sandbox.wait_for_status("gina", SLOW, |s| healthy(s, "web"));
    let new_pid = component(&status, "web")["pid"].as_u64().unwrap() as u32;
    assert_ne!(new_pid, pid);
    let (code, body) = http_get(&format!(
        "{}/",
        component(&status, "web")["url"].as_str().unwrap()
    ));
    assert_eq!((code, body.as_str()), (200, "ok"));
    let leftovers = sandbox.processes_under_home();
    assert!(
        leftovers
            .iter()
            .all(|pid| process_group(*pid) == Some(new_pid)),
        "only the new process group runs: {leftovers:?}"
    );
}

/// What ONNX Runtime, run directly from the test suite's Python environment, predicts.
fn onnxruntime_prediction(model: &std::path::Path, row: [f32; 5]) -> f64 {
    #[allow(clippy::disallowed_methods)]
    let python = std::env::var("SANDPIT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = "import sys, json, numpy as np, onnxruntime as ort\n\
s = ort.InferenceSession(sys.argv[1])\n\
x = np.array([json.loads(sys.argv[2])], dtype=np.float32)\n\
print(float(s.run(None, {s.get_inputs()[0].name: x})[0].ravel()[0]))";
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .arg(model)
        .arg(serde_json::to_string(&row).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "onnxruntime: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn concurrent_first_calls_share_one_daemon() {
    let sandbox = one_service_project(false);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            sandbox
                .command(&["daemon", "start", "--json"])
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for call in calls {
        let output = call.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let daemons = || {
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|entry| {
                let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
                let home = format!("SANDPIT_HOME={}", sandbox.home.display());
                let state = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                let zombie = state
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'));
                !zombie
                    && cmdline.split(|b| *b == 0).any(|arg| arg == b"daemon")
                    && environ.split(|b| *b == 0).any(|var| var == home.as_bytes())
            })
            .count()
    };
    // A daemon that lost the race for the lock exits by itself; give it the moment it takes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while daemons() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(daemons(), 1, "exactly one daemon serves the home");
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's `runtime/state.json`, parsed.
fn state_json(sandbox: &Sandbox) -> serde_json::Value {
    let text = fs::read_to_string(sandbox.home.join("runtime/state.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("state.json: {e}\n{text}"))
}

fn saved_biome<'a>(state: &'a serde_json::Value, biome: &str) -> Option<&'a serde_json::Value> {
    state["biomes"]
        .as_array()?
        .iter()
        .find(|b| b["spec"]["biome"] == biome)
}

#[test]
fn a_squatter_on_a_crashed_services_port_is_named_and_its_answers_never_count_as_health() {
    let sandbox = one_service_project(false);
    let status = sandbox.json(&["up", "hank"]);
    let web = component(&status, "web");
    let url = web["url"].as_str().unwrap().to_owned();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let pid = web["pid"].as_u64().unwrap() as u32;

    // Another user's process waits for the port to come free and answers everything with 200.
    let script = r#"
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"squatter")
    def log_message(self, *a): pass
while True:
    try:
        server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
        break
    except OSError:
        time.sleep(0.002)
print("bound", flush=True)
server.serve_forever()
"#;
    // The system's interpreter: one under root's home (pyenv) is out of nobody's reach.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("python3");
    let mut squatter = KillOnDrop(
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                python,
                "-c",
                script,
                &port.to_string(),
            ])
            .current_dir("/")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("setpriv runs"),
    );
    let squatter_pid = squatter.0.id();
    let stdout = squatter.0.stdout.take().unwrap();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = bound_tx.send(line);
    });
    // The squatter polls every 2 ms; the supervisor waits its backoff (250 ms) before restarting.
    kill9(pid);
    let line = bound_rx
        .recv_timeout(SLOW)
        .expect("the squatter took the port");
    assert_eq!(line.trim(), "bound");

    let expected =
        format!("port {port} is held by pid {squatter_pid} (user nobody), not by this service");
    let deadline = std::time::Instant::now() + SLOW;
    let status = loop {
        let status = sandbox.status("hank");
        let web = component(&status, "web");
        // Healthy only as a stale report about the killed process, never about the squatter.
        assert!(
            web["state"] != "healthy" || web["pid"].as_u64() == Some(pid as u64),
            "the squatter's answers counted as health: {status:#}"
        );
        if web["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&expected))
        {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never named the squatter ({expected}); last:\n{status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "degraded", "{status:#}");
    let (_, body) = http_get(&format!("{url}/"));
    assert_eq!(body, "squatter", "the squatter really answers on the port");

    // Once the port is free again the service comes back on it, healthy and really itself.
    drop(squatter);
    let status = sandbox.wait_for_status("hank", SLOW, |s| healthy(s, "web"));
    assert_eq!(component(&status, "web")["url"].as_str().unwrap(), url);
    let (code, body) = http_get(&format!("{url}/"));
    assert_eq!((code, body.as_str()), (200, "ok"));
}

#[test]
fn an_edited_file_in_a_working_directory_never_runs_after_a_restart() {
    let sandbox = one_service_project(false);
    let status = sandbox.json(&["up", "ivy"]);
    let url = component(&status, "web")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let data_dir = std::path::PathBuf::from(status["data_dir"].as_str().unwrap());
    fs::write(data_dir.join("kept.txt"), "data").unwrap();
    let components = sandbox.home.join("runtime/solo/ivy/components/web");
    let server_py = || -> std::path::PathBuf {
        let dirs: Vec<_> = fs::read_dir(&components).unwrap().flatten().collect();
        assert_eq!(dirs.len(), 1, "one extracted version: {dirs:?}");
        dirs[0].path().join("server.py")
    };
    let original = fs::read_to_string(server_py()).unwrap();
    let tamper = || {
        let path = server_py();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("b\"ok\""), "{text}");
        fs::write(&path, text.replace("b\"ok\"", "b\"tampered\"")).unwrap();
        // Files a previous run added do not survive either.
        fs::write(
            path.with_file_name("sitecustomize.py"),
            "raise SystemExit(3)\n",
        )
        .unwrap();
    };
    let pid_of = |s: &serde_json::Value| component(s, "web")["pid"].as_u64().unwrap();

    // A crash restart runs the verified bytes, not the edited ones.
    tamper();
    let old_pid = pid_of(&status);
    kill9(old_pid as u32);
    let status =
        sandbox.wait_for_status("ivy", SLOW, |s| healthy(s, "web") && pid_of(s) != old_pid);
    let (code, body) = http_get(&format!("{url}/"));
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert_eq!(fs::read_to_string(server_py()).unwrap(), original);
    assert!(!server_py().with_file_name("sitecustomize.py").exists());

    // So does a restart by the next daemon.
    tamper();
    let old_pid = pid_of(&status);
    kill9(sandbox.daemon_pid().unwrap());
    kill9(old_pid as u32);
    sandbox.ok(&["daemon", "start"]);
    sandbox.wait_for_status("ivy", SLOW, |s| healthy(s, "web") && pid_of(s) != old_pid);
    let (code, body) = http_get(&format!("{url}/"));
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert_eq!(fs::read_to_string(server_py()).unwrap(), original);
    assert_eq!(
        fs::read_to_string(data_dir.join("kept.txt")).unwrap(),
        "data",
        "SANDPIT_DATA_DIR is kept"
    );
}

/// A small tmpfs mounted for one test (the suite runs as root), lazily unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs on {}", path.display());
        Tmpfs(path.to_owned())
    }

    /// Writes `filler` until the file system is full (to the last page).
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for chunk in [1 << 20, 1 << 16, 1 << 12, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_fails_up_and_down_with_the_reason_and_keeps_the_saved_state() {
    let sandbox = one_service_project(false);
    let runtime = sandbox.home.join("runtime");
    let disk = Tmpfs::mount(&runtime, "8m");
    let status = sandbox.json(&["up", "frank"]);
    let web_pid = component(&status, "web")["pid"].clone();
    let url = component(&status, "web")["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // Room for the state file, not for a 2 MiB artifact: the extraction names the full disk.
    let filler = disk.fill();
    let size = fs::metadata(&filler).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(size - 512 * 1024)
        .unwrap();
    let toml = fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    sandbox.write(
        "sandpit.toml",
        &format!("{toml}\n[jobs.bulk]\npath = \"bulk\"\nrun = \"true\"\n"),
    );
    sandbox.write("bulk/data.bin", &"\0".repeat(2 << 20));
    sandbox.commit("a job with a large artifact");
    let error = sandbox.fails(&["up", "frank"], 1);
    assert!(
        error.contains("no space left on device writing") && error.contains("components/bulk/"),
        "{error}"
    );
    assert!(!error.contains("not a readable zip archive"), "{error}");
    assert!(
        !error.contains("os error 28"),
        "said once, in words: {error}"
    );

    // A full disk: `down` cannot record the removal, so it stops nothing and says why.
    disk.fill();
    let error = sandbox.fails(&["down", "frank"], 1);
    let expected = format!(
        "no space left on device writing {}",
        runtime.join("state.json").display()
    );
    assert_eq!(error.matches(&expected).count(), 1, "{error}");
    assert!(!error.contains("os error 28"), "{error}");
    assert!(error.contains("nothing was stopped"), "{error}");
    assert!(
        error.contains(&format!(
            "hint: free some space on the file system holding {}",
            runtime.display()
        )),
        "{error}"
    );
    let saved = state_json(&sandbox);
    let frank = saved_biome(&saved, "frank").expect("the saved state still holds frank");
    assert_eq!(frank["removing"], false, "{frank:#}");
    assert!(
        !runtime.join("state.json.tmp").exists(),
        "no temporary file left"
    );
    let status = sandbox.status("frank");
    assert!(healthy(&status, "web"), "{status:#}");
    assert_eq!(
        component(&status, "web")["pid"],
        web_pid,
        "nothing was stopped"
    );
    let (code, _) = http_get(&format!("{url}/"));
    assert_eq!(code, 200);

    // With space again, the same `down` finishes.
    fs::remove_file(&filler).unwrap();
    sandbox.ok(&["down", "frank"]);
    assert_eq!(sandbox.json(&["ls"])["biomes"], json!([]));
    assert!(saved_biome(&state_json(&sandbox), "frank").is_none());
    assert!(sandbox.component_processes().is_empty());
    sandbox.ok(&["daemon", "stop"]);
    drop(disk);
}

#[test]
fn a_daemon_killed_during_down_does_not_bring_the_biome_back() {
    let sandbox = one_service_project(true);
    sandbox.ok(&["up", "jay"]);
    // The service ignores SIGTERM: the daemon spends its 3 s grace period inside `down`.
    let down = sandbox
        .command(&["down", "jay"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + SLOW;
    while !saved_biome(&state_json(&sandbox), "jay").is_some_and(|b| b["removing"] == true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the removal was never saved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sandbox.processes_under_home().is_empty(), "still stopping");
    kill9(sandbox.daemon_pid().unwrap());
    let output = down.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "a down cut short fails: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    // The next daemon finishes the removal before it answers anyone.
    sandbox.ok(&["daemon", "start"]);
    assert!(
        sandbox.processes_under_home().is_empty(),
        "the biome's processes were stopped: {:?}",
        sandbox.processes_under_home()
    );
    assert_eq!(sandbox.json(&["ls"])["biomes"], json!([]));
    assert!(saved_biome(&state_json(&sandbox), "jay").is_none());
    assert!(!sandbox.home.join("runtime/solo/jay").exists());
    let error = sandbox.fails(&["status", "jay"], 1);
    assert!(error.contains("there is no biome `jay`"), "{error}");
    // The recorded, unfinished down is finished by a second one.
    sandbox.ok(&["down", "jay"]);
    assert!(sandbox.processes_under_home().is_empty());
}

/// A project with a database and one service that answers with its DATABASE_URL.
fn database_project() -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "store"

[database]
migrations = "db/migrations"

[services.web]
path = "web"
run = "python3 server.py"
"#,
        ),
        (
            "db/migrations/001_samples.sql",
            "create table samples(id serial primary key, label text not null);\n",
        ),
        (
            "web/server.py",
            r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
        self.wfile.write(os.environ["DATABASE_URL"].encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ])
}

/// Postmasters serving `port` (their children show other command lines).
fn postmasters_on(port: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_postgres = args.first()?.ends_with(b"/postgres");
            let on_port = args
                .windows(2)
                .any(|pair| pair[0] == b"-p" && pair[1] == port.as_bytes());
            (is_postgres && on_port).then_some(pid)
        })
        .collect()
}

#[test]
fn a_corrupt_state_file_is_kept_and_the_old_instances_are_stopped_before_new_ones_start() {
    let sandbox = database_project();
    let up = sandbox.json(&["up", "kim"]);
    assert!(healthy(&up, "web"), "{up:#}");
    let port = fs::read_to_string(sandbox.home.join("projects/store/postgres/dev/port")).unwrap();
    let port = port.trim();
    let old_postmaster = postmasters_on(port);
    assert_eq!(old_postmaster.len(), 1, "{old_postmaster:?}");

    kill9(sandbox.daemon_pid().unwrap());
    let state_path = sandbox.home.join("runtime/state.json");
    fs::write(&state_path, "{ \"biomes\": [ this is not json").unwrap();
    sandbox.ok(&["daemon", "start"]);

    // The corrupt file is kept, and the daemon says so.
    let kept: Vec<_> = fs::read_dir(sandbox.home.join("runtime"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        fs::read_to_string(kept[0].path()).unwrap(),
        "{ \"biomes\": [ this is not json"
    );
    let daemon = sandbox.json(&["daemon", "status"]);
    let notices = daemon["notices"].to_string();
    assert!(
        notices.contains("was corrupt") && notices.contains("state.json.corrupt-"),
        "{daemon:#}"
    );
    let text = sandbox.ok(&["daemon", "status"]);
    assert!(text.contains("note: the supervisor state"), "{text}");
    // Whatever the lost state described was stopped by its marker, the old postmaster with it.
    assert!(
        postmasters_on(port).is_empty(),
        "{:?}",
        postmasters_on(port)
    );
    assert!(sandbox.processes_under_home().is_empty());

    // The biome comes back with exactly one postmaster for the cluster, and works.
    let up = sandbox.json(&["up", "kim"]);
    assert!(healthy(&up, "web"), "{up:#}");
    let postmasters = postmasters_on(port);
    assert_eq!(postmasters.len(), 1, "{postmasters:?}");
    let daemon = sandbox.json(&["daemon", "status"]);
    assert_eq!(
        daemon["instances"][0]["pid"].as_u64(),
        Some(postmasters[0] as u64),
        "{daemon:#}"
    );
    let status = sandbox.json(&["status", "kim", "--show-secrets"]);
    let url = status["database"]["url"].as_str().unwrap();
    let rows = crate::harness::sql(url, "select count(*) from samples").unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    let (code, body) = http_get(&format!(
        "{}/",
        component(&status, "web")["url"].as_str().unwrap()
    ));
    assert_eq!((code, body.as_str()), (200, url));
}

/// Two services (`web` depends on `api`) after a job that counts its runs in the data dir; each
/// service writes the environment it was started with to `$SANDPIT_DATA_DIR/<name>.env` and
/// answers `/` with its name.
fn pair_project() -> Sandbox {
    let server = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["SANDPIT_COMPONENT"] + " ok"
        self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "pair"

[jobs.prep]
path = "prep"
run = "echo ran >> \"$SANDPIT_DATA_DIR/prep-runs\""

[services.api]
path = "api"
run = 'env -0 > "$SANDPIT_DATA_DIR/$SANDPIT_COMPONENT.env" && exec python3 server.py'
env = { GREETING = "hello" }

[services.web]
path = "web"
run = 'env -0 > "$SANDPIT_DATA_DIR/$SANDPIT_COMPONENT.env" && exec python3 server.py'
depends_on = ["api", "prep"]
"#,
        ),
        ("prep/README", "counts its runs\n"),
        ("api/server.py", server),
        ("web/server.py", server),
    ])
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn exec_runs_a_command_with_exactly_a_components_environment_and_its_exit_code() {
    let sandbox = pair_project();
    let status = sandbox.json(&["up", "alice"]);
    let api = component(&status, "api");
    let api_port = api["url"].as_str().unwrap().rsplit(':').next().unwrap();

    // The default component is the first service in start order (not the job before it); the
    // command sees its config variables and PORT, and its exit code is sandpit's.
    let output = sandbox.run(&[
        "exec",
        "alice",
        "--",
        "sh",
        "-c",
        "echo \"$SANDPIT_COMPONENT $PORT $GREETING ${SANDPIT_SUPERVISOR:-unmarked}\"; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        format!("api {api_port} hello unmarked")
    );
    // Killed by a signal: 128 + the signal, as shells report it.
    let output = sandbox.run(&["exec", "alice", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(output.status.code(), Some(137), "{}", stderr(&output));
    // It runs in the user's directory, not the component's extracted artifact.
    let pwd = sandbox.ok(&["exec", "alice", "--", "pwd"]);
    assert_eq!(
        std::path::PathBuf::from(pwd.trim()),
        fs::canonicalize(&sandbox.repo).unwrap()
    );

    // Another component's environment reaches its sibling through SANDPIT_URL_<SVC>.
    let fetch = "import os, urllib.request; print(urllib.request.urlopen(os.environ['SANDPIT_URL_API']).read().decode())";
    let answer = sandbox.ok(&["exec", "alice", "-c", "web", "--", "python3", "-c", fetch]);
    assert_eq!(answer.trim(), "api ok");

    // `env` gives what the running process was started with, the supervisor's marker aside.
    let shown = sandbox.json(&["env", "alice", "--component", "web"]);
    assert_eq!(shown["biome"], "alice");
    assert_eq!(shown["component"], "web");
    assert_eq!(shown["secret"], json!([]));
    let started_with = fs::read(sandbox.home.join("runtime/pair/alice/data/web.env")).unwrap();
    let mut running: serde_json::Map<String, serde_json::Value> = started_with
        .split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, value) = std::str::from_utf8(entry).unwrap().split_once('=').unwrap();
            (name.to_owned(), json!(value))
        })
        .collect();
    assert!(running.remove("SANDPIT_SUPERVISOR").is_some());
    // `sh -c` exports its working directory itself.
    running.remove("PWD");
    assert_eq!(serde_json::Value::Object(running), shown["vars"]);
    // The text form: NAME=value lines, sorted.
    let text = sandbox.ok(&["env", "alice"]);
    let names: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(text.contains("GREETING=hello\n"), "{text}");

    // Mistakes get a did-you-mean; a project without a database has nothing for psql.
    let error = sandbox.fails(&["exec", "alice", "-c", "wbe", "--", "true"], 1);
    assert!(
        error.contains("has no component `wbe`") && error.contains("did you mean `web`?"),
        "{error}"
    );
    let error = sandbox.fails(&["exec", "alcie", "--", "true"], 1);
    assert!(
        error.contains("no biome `alcie`") && error.contains("did you mean `alice`?"),
        "{error}"
    );
    let error = sandbox.fails(&["env", "alice", "-c", "ap"], 1);
    assert!(error.contains("did you mean `api`?"), "{error}");
    let error = sandbox.fails(&["exec", "alice", "--", "no-such-program-here"], 1);
    assert!(error.contains("is not on PATH"), "{error}");
    let error = sandbox.fails(&["psql", "alice"], 1);
    assert!(error.contains("biome `alice` has no database"), "{error}");
}

#[test]
fn restart_gives_a_service_a_new_process_on_the_same_port_and_restarts_all_in_order() {
    let sandbox = pair_project();
    let before = sandbox.json(&["up", "bob"]);
    let pid = |status: &serde_json::Value, name: &str| component(status, name)["pid"].as_u64();
    let url = |status: &serde_json::Value, name: &str| component(status, name)["url"].clone();

    let after = sandbox.json(&["restart", "bob", "web"]);
    assert!(healthy(&after, "web"), "{after:#}");
    assert_ne!(pid(&after, "web"), pid(&before, "web"));
    assert_eq!(url(&after, "web"), url(&before, "web"), "the port is kept");
    assert_eq!(
        pid(&after, "api"),
        pid(&before, "api"),
        "only web restarted"
    );
    let (code, body) = http_get(&format!("{}/", url(&after, "web").as_str().unwrap()));
    assert_eq!((code, body.as_str()), (200, "web ok"));

    // No component: every service, dependants stopped first and started after what they need.
    let output = sandbox.run(&["restart", "bob"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let progress = stderr(&output);
    let at = |line: &str| {
        progress
            .find(line)
            .unwrap_or_else(|| panic!("no `{line}` in:\n{progress}"))
    };
    assert!(at("web: stopping") < at("api: stopping"), "{progress}");
    assert!(at("api: stopping") < at("api: healthy"), "{progress}");
    assert!(at("api: healthy") < at("web: starting"), "{progress}");
    assert!(
        stdout(&output).contains("healthy"),
        "the new state is printed"
    );
    let all = sandbox.status("bob");
    for name in ["api", "web"] {
        assert!(healthy(&all, name), "{all:#}");
        assert_ne!(pid(&all, name), pid(&after, name), "{name} restarted");
        assert_eq!(url(&all, name), url(&before, name), "{name} keeps its port");
    }

    // Jobs run again only when named.
    let runs = sandbox.home.join("runtime/pair/bob/data/prep-runs");
    assert_eq!(fs::read_to_string(&runs).unwrap().lines().count(), 1);
    sandbox.ok(&["restart", "bob", "prep"]);
    assert_eq!(fs::read_to_string(&runs).unwrap().lines().count(), 2);

    let error = sandbox.fails(&["restart", "bob", "wbe"], 1);
    assert!(error.contains("did you mean `web`?"), "{error}");
    let error = sandbox.fails(&["restart", "bbo"], 1);
    assert!(error.contains("did you mean `bob`?"), "{error}");
}

#[test]
fn commands_without_a_biome_use_the_current_branchs_biome_named_as_up_names_it() {
    let sandbox = pair_project();
    sandbox.git(&["checkout", "-q", "-b", "feature/Better_Model"]);
    let up = sandbox.json(&["up"]);
    assert_eq!(up["biome"], "feature-better-model");
    assert_eq!(sandbox.json(&["status"])["biome"], "feature-better-model");
    // The branch name itself names the biome too.
    assert_eq!(
        sandbox.json(&["status", "feature/Better_Model"])["biome"],
        "feature-better-model"
    );
    let biome = sandbox.ok(&["exec", "--", "sh", "-c", "echo $SANDPIT_BIOME"]);
    assert_eq!(biome.trim(), "feature-better-model");
    assert_eq!(sandbox.json(&["env"])["biome"], "feature-better-model");
    let restarted = sandbox.json(&["restart"]);
    assert_eq!(restarted["biome"], "feature-better-model");
    assert!(healthy(&restarted, "web"), "{restarted:#}");
    // `restart web` means the biome `web`; the error says how to name the component.
    let error = sandbox.fails(&["restart", "web"], 1);
    assert!(
        error.contains("`sandpit restart feature-better-model web`"),
        "{error}"
    );
}

// ----- logs: records with times and streams, a whole biome interleaved, marks, following -----

/// A service that prints what it is asked to, on the stream it is asked to, before it answers:
/// so the test decides when each line is written.
const CHORUS_SERVER: &str = r#"import http.server, os, sys, urllib.parse
name = os.environ["SANDPIT_COMPONENT"]
print(f"{name} ready", flush=True)
print(f"{name} warming up", file=sys.stderr, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/say":
            stream = sys.stdout if q["stream"] == "stdout" else sys.stderr
            stream.write(q["text"] + "\n"); stream.flush()
        elif url.path == "/partial":
            sys.stdout.write(q["text"]); sys.stdout.flush()
        elif url.path == "/binary":
            sys.stdout.buffer.write(b"bin\xff\xfe\x00 end\n"); sys.stdout.buffer.flush()
        elif url.path == "/long":
            sys.stdout.write("L" * int(q["n"]) + "\n"); sys.stdout.flush()
        elif url.path == "/spam":
            for i in range(int(q["count"])):
                sys.stdout.write(f"spam {i:04} " + "x" * 90 + "\n")
            sys.stdout.flush()
        elif url.path == "/close-stdout":
            sys.stdout.flush(); os.close(1)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const CHORUS_TOML: &str = r#"
[project]
name = "chorus"

[services.alpha]
path = "alpha"
run = "python3 -u server.py"

[services.beta]
path = "beta"
run = "python3 -u server.py"
"#;

fn chorus() -> Sandbox {
    Sandbox::with_files(&[
        ("sandpit.toml", CHORUS_TOML),
        ("alpha/server.py", CHORUS_SERVER),
        ("beta/server.py", CHORUS_SERVER),
    ])
}

fn url_of(status: &serde_json::Value, name: &str) -> String {
    component(status, name)["url"].as_str().unwrap().to_owned()
}

fn log_of(status: &serde_json::Value, name: &str) -> std::path::PathBuf {
    component(status, name)["log"].as_str().unwrap().into()
}

/// Asks a chorus service to print `text` (URL-safe) on `stream`.
fn say(url: &str, stream: &str, text: &str) {
    let (code, _) = http_get(&format!("{url}/say?stream={stream}&text={text}"));
    assert_eq!(code, 200);
}

/// Waits until a log file holds `text`: the writer has read it, so whatever is said next is
/// written later.
fn wait_logged(log: &std::path::Path, text: &str) {
    let deadline = std::time::Instant::now() + SLOW;
    while !fs::read_to_string(log).unwrap_or_default().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "{text} never reached {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The `logs --json` lines of `component` on `stream` saying exactly `line`.
fn find_line<'a>(
    lines: &'a [serde_json::Value],
    component: &str,
    stream: &str,
    line: &str,
) -> Option<&'a serde_json::Value> {
    lines
        .iter()
        .find(|l| l["component"] == component && l["stream"] == stream && l["line"] == line)
}

/// Polls `logs ARGS --json` until a line satisfies `accept`; returns all the lines then.
fn wait_for_logs(
    sandbox: &Sandbox,
    args: &[&str],
    what: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + SLOW;
    loop {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let lines = json_lines(&sandbox.ok(&with_json));
        if lines.iter().any(&accept) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {what} in `logs {args:?}`:\n{lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn logs_of_a_biome_interleave_its_components_in_time_with_prefixes_streams_and_marks() {
    let sandbox = chorus();
    let up = sandbox.json(&["up", "lena"]);
    let (alpha, beta) = (url_of(&up, "alpha"), url_of(&up, "beta"));
    let (alpha_log, beta_log) = (log_of(&up, "alpha"), log_of(&up, "beta"));
    // Each line is in its log before the next one is asked for, so their order in time is known.
    for (url, log, stream, text) in [
        (&alpha, &alpha_log, "stdout", "one"),
        (&beta, &beta_log, "stderr", "two"),
        (&alpha, &alpha_log, "stderr", "three"),
        (&beta, &beta_log, "stdout", "four"),
    ] {
        say(url, stream, text);
        wait_logged(log, text);
    }

    // Text: every component, in time order, each line prefixed with its name (aligned).
    let text = sandbox.ok(&["logs", "lena"]);
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["one", "two", "three", "four"]
                .iter()
                .any(|w| l.ends_with(&format!("| {w}")))
        })
        .collect();
    assert_eq!(
        ours,
        [
            "alpha | one",
            "beta  | two",
            "alpha | three",
            "beta  | four"
        ],
        "{text}"
    );
    assert!(
        text.contains("alpha | sandpit: starting alpha: python3 -u server.py"),
        "{text}"
    );
    assert!(text.contains("beta  | beta warming up"), "{text}");
    // One component: its lines as it wrote them, no prefix.
    let alone = sandbox.ok(&["logs", "lena", "beta"]);
    assert!(alone.lines().any(|l| l == "two"), "{alone}");
    assert!(!alone.contains("one") && !alone.contains("| "), "{alone}");

    // JSON lines: ts, component, stream, line; stdout and stderr apart; the start marks.
    let lines = json_lines(&sandbox.ok(&["logs", "lena", "--json"]));
    for line in &lines {
        let ts = line["ts"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(ts.ends_with('Z') && ts.contains('T'), "{line}");
        assert!(
            ["stdout", "stderr", "sandpit"].contains(&line["stream"].as_str().unwrap()),
            "{line}"
        );
        assert!(
            line["line"].is_string() && line["component"].is_string(),
            "{line}"
        );
    }
    let said: Vec<&serde_json::Value> = [
        ("alpha", "stdout", "one"),
        ("beta", "stderr", "two"),
        ("alpha", "stderr", "three"),
        ("beta", "stdout", "four"),
    ]
    .iter()
    .map(|(c, s, l)| {
        find_line(&lines, c, s, l).unwrap_or_else(|| panic!("{c} {s} {l}: {lines:#?}"))
    })
    .collect();
    let times: Vec<&str> = said.iter().map(|l| l["ts"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(find_line(&lines, "alpha", "stdout", "alpha ready").is_some());
    assert!(find_line(&lines, "alpha", "stderr", "alpha warming up").is_some());
    for name in ["alpha", "beta"] {
        assert!(
            lines.iter().any(|l| l["component"] == name
                && l["stream"] == "sandpit"
                && l["line"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("starting {name}: "))),
            "no start mark for {name}: {lines:#?}"
        );
    }

    // --since a time: what was written from then on, and nothing before.
    let two_at = said[1]["ts"].as_str().unwrap();
    let since = json_lines(&sandbox.ok(&["logs", "lena", "--since", two_at, "--json"]));
    assert!(
        find_line(&since, "alpha", "stdout", "one").is_none(),
        "{since:#?}"
    );
    for (c, s, l) in [
        ("beta", "stderr", "two"),
        ("alpha", "stderr", "three"),
        ("beta", "stdout", "four"),
    ] {
        assert!(find_line(&since, c, s, l).is_some(), "{l}: {since:#?}");
    }
    assert!(
        since.iter().all(|l| l["ts"].as_str().unwrap() >= two_at),
        "{since:#?}"
    );
    // --since a duration.
    let hour = json_lines(&sandbox.ok(&["logs", "lena", "--since", "1h", "--json"]));
    assert!(
        find_line(&hour, "alpha", "stdout", "one").is_some(),
        "{hour:#?}"
    );
    let refused = sandbox.fails(&["logs", "lena", "--since", "yesterday"], 2);
    assert!(refused.contains("hint:"), "{refused}");

    // kill -9 a service: its restart is marked with the signal that ended it, then a new start.
    let pid = component(&up, "alpha")["pid"].as_u64().unwrap();
    kill9(pid as u32);
    sandbox.wait_for_status("lena", SLOW, |s| {
        let c = component(s, "alpha");
        c["state"] == "healthy" && c["pid"].as_u64() != Some(pid) && c["restarts"] == 1
    });
    let alpha_lines = wait_for_logs(
        &sandbox,
        &["logs", "lena", "alpha"],
        "a second start",
        |l| {
            l["stream"] == "sandpit"
                && l["line"].as_str().unwrap().starts_with("starting alpha")
                && l["ts"].as_str().unwrap() > times[2]
        },
    );
    let restart = alpha_lines
        .iter()
        .position(|l| {
            l["stream"] == "sandpit"
                && l["line"]
                    .as_str()
                    .unwrap()
                    .starts_with("restarting alpha (killed by SIGKILL) in ")
        })
        .unwrap_or_else(|| panic!("no restart mark: {alpha_lines:#?}"));
    let three = alpha_lines
        .iter()
        .position(|l| l["line"] == "three")
        .unwrap();
    assert!(three < restart, "{alpha_lines:#?}");

    // --tail N: the last N lines over the whole biome.
    let all = sandbox.ok(&["logs", "lena", "--tail", "1000"]);
    let last3 = sandbox.ok(&["logs", "lena", "--tail", "3"]);
    let expected: Vec<&str> = all.lines().skip(all.lines().count() - 3).collect();
    assert_eq!(last3.lines().collect::<Vec<_>>(), expected, "{all}");
    assert_eq!(sandbox.ok(&["logs", "lena", "--tail", "0"]), "");
}

/// A running `sandpit logs … -f --json`, its lines read as they come.
struct Following {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Following {
    fn start(sandbox: &Sandbox, args: &[&str]) -> Following {
        let mut child = sandbox
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        Following {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `accept` (at most SLOW).
    fn wait_for(&mut self, what: &str, accept: impl Fn(&serde_json::Value) -> bool) {
        if self.seen.iter().any(&accept) {
            return;
        }
        let deadline = std::time::Instant::now() + SLOW;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = accept(&line);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "`logs -f` never showed {what}; it showed:\n{:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn says(component: &'static str, text: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |l| l["component"] == component && l["line"] == text
}

#[test]
fn logs_follow_a_whole_biome_across_rotations_and_components_added_later() {
    let mut sandbox = chorus();
    sandbox
        .extra_env
        .push(("SANDPIT_LOG_MAX_BYTES".into(), "20000".into()));
    let up = sandbox.json(&["up", "mia"]);
    let (alpha, beta) = (url_of(&up, "alpha"), url_of(&up, "beta"));
    let mut follow = Following::start(&sandbox, &["logs", "mia", "-f", "--json"]);
    follow.wait_for("what was there before", says("alpha", "alpha ready"));

    // A line written after `logs -f` started.
    say(&beta, "stdout", "after-follow");
    follow.wait_for(
        "a line written while following",
        says("beta", "after-follow"),
    );

    // The log outgrows its cap and is rotated; following goes on in the new file.
    let (code, _) = http_get(&format!("{alpha}/spam?count=200"));
    assert_eq!(code, 200);
    let rotated = format!("{}.1", log_of(&up, "alpha").display());
    let deadline = std::time::Instant::now() + SLOW;
    while fs::metadata(&rotated).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "alpha's log never rotated"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    say(&alpha, "stderr", "after-rotation");
    follow.wait_for("the last line before the rotation settled", |l| {
        l["component"] == "alpha" && l["line"].as_str().unwrap().starts_with("spam 0199 ")
    });
    follow.wait_for(
        "a line written after the rotation",
        says("alpha", "after-rotation"),
    );

    // A component added by a later `up` is followed too; the services it replaces are marked
    // stopping and starting (their SANDPIT_URL_* changed).
    let toml = format!(
        "{CHORUS_TOML}\n[services.gamma]\npath = \"gamma\"\nrun = \"python3 -u server.py\"\n"
    );
    sandbox.write("sandpit.toml", &toml);
    sandbox.write("gamma/server.py", CHORUS_SERVER);
    sandbox.commit("gamma joins");
    sandbox.ok(&["up", "mia"]);
    follow.wait_for("the new component", says("gamma", "gamma ready"));
    follow.wait_for("alpha's stop mark", |l| {
        l["component"] == "alpha"
            && l["stream"] == "sandpit"
            && l["line"]
                .as_str()
                .unwrap()
                .starts_with("stopping alpha (pid ")
    });
    drop(follow);
    sandbox.ok(&["down", "mia"]);
}

/// The process of `group` running `sandpit log-writer`.
fn log_writer_of(group: u32) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        let is_writer = cmdline.split(|b| *b == 0).nth(1) == Some(b"log-writer".as_slice());
        (is_writer && process_group(pid) == Some(group)).then_some(pid)
    })
}

#[test]
fn logs_keep_their_times_while_the_daemon_is_down_and_the_next_daemon_adopts_the_writer() {
    let sandbox = chorus();
    let up = sandbox.json(&["up", "nora"]);
    let alpha = url_of(&up, "alpha");
    let alpha_log = log_of(&up, "alpha");
    let pid = component(&up, "alpha")["pid"].as_u64().unwrap() as u32;
    let writer = log_writer_of(pid).expect("alpha's log writer runs in its process group");

    kill9(sandbox.daemon_pid().unwrap());
    say(&alpha, "stdout", "while-the-daemon-is-down");
    wait_logged(&alpha_log, "while-the-daemon-is-down");
    let log = fs::read_to_string(&alpha_log).unwrap();
    let record = log
        .lines()
        .find(|l| l.ends_with(" while-the-daemon-is-down"))
        .unwrap();
    let fields: Vec<&str> = record.splitn(3, ' ').collect();
    assert!(
        fields[0].contains('T') && fields[0].ends_with('Z'),
        "{record}"
    );
    assert_eq!(fields[1], "stdout", "{record}");

    sandbox.ok(&["daemon", "start"]);
    let status =
        sandbox.wait_for_status("nora", SLOW, |s| healthy(s, "alpha") && healthy(s, "beta"));
    assert_eq!(
        component(&status, "alpha")["pid"].as_u64(),
        Some(pid as u64),
        "adopted"
    );
    assert_eq!(
        log_writer_of(pid),
        Some(writer),
        "the writer was adopted with it, not stopped"
    );
    let lines = wait_for_logs(
        &sandbox,
        &["logs", "nora", "alpha"],
        "the adoption mark",
        |l| {
            l["stream"] == "sandpit"
                && l["line"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("adopted alpha (pid {pid})"))
        },
    );
    assert!(find_line(&lines, "alpha", "stdout", "while-the-daemon-is-down").is_some());
    say(&alpha, "stderr", "after-adoption");
    wait_for_logs(
        &sandbox,
        &["logs", "nora"],
        "a line after the adoption",
        |l| l["component"] == "alpha" && l["stream"] == "stderr" && l["line"] == "after-adoption",
    );
    sandbox.ok(&["down", "nora"]);
    assert!(
        sandbox.processes_under_home().is_empty(),
        "writers stop with their components: {:?}",
        sandbox.processes_under_home()
    );
}

#[test]
fn partial_long_and_binary_lines_and_a_closed_stdout_do_not_break_a_log() {
    let sandbox = chorus();
    let up = sandbox.json(&["up", "olga"]);
    let alpha = url_of(&up, "alpha");
    let logs = ["logs", "olga", "alpha"];

    // A line without its newline is written once the component pauses.
    let (code, _) = http_get(&format!("{alpha}/partial?text=prompt-without-newline"));
    assert_eq!(code, 200);
    wait_for_logs(
        &sandbox,
        &logs,
        "the partial line",
        says("alpha", "prompt-without-newline"),
    );

    // Bytes that are not UTF-8 are shown replaced; the line is kept.
    let (code, _) = http_get(&format!("{alpha}/binary"));
    assert_eq!(code, 200);
    wait_for_logs(
        &sandbox,
        &logs,
        "the binary line",
        says("alpha", "bin\u{fffd}\u{fffd}\0 end"),
    );

    // A 40 000-byte line arrives whole, cut into records of at most 16 KiB.
    let (code, _) = http_get(&format!("{alpha}/long?n=40000"));
    assert_eq!(code, 200);
    let lines = wait_for_logs(&sandbox, &logs, "the end of the long line", |l| {
        l["line"]
            .as_str()
            .is_some_and(|t| t.len() == 40000 - 2 * 16384 && t.bytes().all(|b| b == b'L'))
    });
    let long: Vec<usize> = lines
        .iter()
        .filter_map(|l| l["line"].as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b == b'L'))
        .map(str::len)
        .collect();
    assert_eq!(long, [16384, 16384, 40000 - 2 * 16384]);

    // A component that closes its stdout keeps logging on stderr, and keeps running.
    let (code, _) = http_get(&format!("{alpha}/close-stdout"));
    assert_eq!(code, 200);
    say(&alpha, "stderr", "still-logging");
    wait_for_logs(&sandbox, &logs, "stderr after stdout closed", |l| {
        l["stream"] == "stderr" && l["line"] == "still-logging"
    });
    assert!(healthy(&sandbox.status("olga"), "alpha"));
    let text = sandbox.ok(&["logs", "olga"]);
    assert!(text.contains("alpha | still-logging"), "{text}");
    sandbox.ok(&["down", "olga"]);
}
