//! Reporting back to GitLab, against a recorder: a local HTTP server started by the test that
//! keeps every call (method, path, headers, body) and answers as scripted (GitLab itself cannot
//! run here). A pipeline's commit statuses arrive pending → running → success with the link to
//! the pipeline and the token; a failing pipeline's end failed; a forge that fails twice gets
//! the status on the third attempt and the pipeline never notices; an unreachable forge never
//! fails a pipeline, nor a missing token (the log says what to set); a merge request's biome
//! keeps one note, created once and edited in place.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pipelines::Team;
use crate::server::Server;

/// What the forge's token is in these tests; it must never show up in a log.
const TOKEN: &str = "glpat-test-secret-0123456789";

/// How long reports may take to arrive once their pipeline ended.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

const WEB: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// One call the recorder received.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Call {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A stand-in for GitLab's API: records every call, answers the scripted statuses first, then
/// 201 (with `{"id": N}`, a new N per created note).
pub(crate) struct Recorder {
    pub(crate) api_url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub(crate) fn start(script: &[u16]) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let api_url = format!("http://{}/api/v4", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let recorded = Arc::clone(&calls);
        std::thread::spawn(move || {
            let mut next_note = 9000;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(call) = read_call(&stream) else {
                    continue;
                };
                let status = script.lock().unwrap().pop_front().unwrap_or(201);
                let body = if call.method == "POST" && call.path.ends_with("/notes") {
                    next_note += 1;
                    format!(r#"{{"id": {next_note}, "body": "…"}}"#)
                } else {
                    r#"{"id": 1}"#.to_owned()
                };
                recorded.lock().unwrap().push(call);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder { api_url, calls }
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Polls until `done` holds of the calls so far; panics with them after the deadline.
    pub(crate) fn wait_until(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + REPORT_TIMEOUT;
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "the recorder never saw {what}; it saw {calls:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn read_call(stream: &TcpStream) -> Option<Call> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Call {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `sandpit.toml` of project `demo`: dev only, one web service (whose build is `build`), and
/// `[gitlab]` pointing at `api_url`.
pub(crate) fn definition(api_url: &str, build: Option<&str>) -> String {
    let build = build
        .map(|b| format!("build = {b:?}\n"))
        .unwrap_or_default();
    format!(
        r#"[project]
name = "demo"

[environments.dev]
biomes = true

[services.web]
path = "web"
{build}run = "python3 server.py"
health = "/health"
start_timeout = 10

[gitlab]
api_url = "{api_url}"
project = "group/demo"
"#
    )
}

/// A team whose project reports to `api_url`, its server (retries after milliseconds, logging
/// at info level), the token set as dev's secret, and the admin token.
pub(crate) fn reporting_team(api_url: &str) -> (Team, Server, String) {
    reporting_team_with(api_url, Some(TOKEN))
}

/// [`reporting_team`], with `token` (none: no secret set).
fn reporting_team_with(api_url: &str, token: Option<&str>) -> (Team, Server, String) {
    let mut team = Team::with_files(&[
        ("sandpit.toml", &definition(api_url, None)),
        ("web/server.py", WEB),
    ]);
    team.sandbox
        .extra_env
        .push(("SANDPIT_REPORT_BACKOFF_MS".to_owned(), "20".to_owned()));
    team.sandbox
        .extra_env
        .push(("SANDPIT_LOG".to_owned(), "info".to_owned()));
    // The token is a secret of dev's base, set before anything runs there.
    if let Some(token) = token {
        team.sandbox.ok(&[
            "config",
            "set",
            "dev",
            "--secret",
            &format!("GITLAB_TOKEN={token}"),
        ]);
    }
    let server = Server::start(&team.sandbox, &[]);
    let admin = std::fs::read_to_string(team.sandbox.home.join("server/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    team.ok(
        &server,
        &admin,
        &["projects", "add", "demo", "--git", &team.url()],
    );
    (team, server, admin)
}

/// Runs a pipeline of the project's branch head and waits for it to end; returns it.
fn run_pipeline(team: &Team, server: &Server, token: &str) -> Value {
    let queued = team.json(server, token, &["pipeline", "run"]);
    let id = queued["id"].as_i64().unwrap();
    team.wait_for(server, token, id, &["succeeded", "failed"])
}

/// The commit statuses among `calls`, for commit `sha`: each call's body.
fn statuses(calls: &[Call], sha: &str) -> Vec<Value> {
    let path = format!("/api/v4/projects/group%2Fdemo/statuses/{sha}");
    calls
        .iter()
        .filter(|c| c.path == path)
        .map(Call::json)
        .collect()
}

fn states(statuses: &[Value]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_pipeline_reports_pending_running_success_and_a_failing_one_failed() {
    let recorder = Recorder::start(&[]);
    let (team, server, admin) = reporting_team(&recorder.api_url);
    let sha = team.sandbox.git(&["rev-parse", "HEAD"]);

    let pipeline = run_pipeline(&team, &server, &admin);
    assert_eq!(pipeline["state"], "succeeded", "{pipeline:#}");
    let id = pipeline["id"].as_i64().unwrap();
    let calls = recorder.wait_until("three statuses", |calls| statuses(calls, &sha).len() >= 3);
    let sent = statuses(&calls, &sha);
    assert_eq!(
        states(&sent),
        ["pending", "running", "success"],
        "{sent:#?}"
    );
    for (call, status) in calls.iter().zip(&sent) {
        assert_eq!(call.method, "POST");
        assert_eq!(call.header("private-token"), Some(TOKEN), "{call:#?}");
        assert_eq!(call.header("content-type"), Some("application/json"));
        assert_eq!(status["name"], "sandpit");
        assert_eq!(status["ref"], "main");
        assert_eq!(
            status["target_url"],
            format!("{}/api/v1/pipelines/{id}", server.url),
            "{status:#}"
        );
        assert!(status["description"].is_string(), "{status:#}");
    }

    // A commit whose build fails: its status ends `failed`, saying why.
    team.sandbox.write(
        "sandpit.toml",
        &definition(&recorder.api_url, Some("echo broken >&2; exit 3")),
    );
    let broken = team.sandbox.commit("a build that fails");
    team.push("main");
    let failed = run_pipeline(&team, &server, &admin);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let calls = recorder.wait_until("the failed status", |calls| {
        statuses(calls, &broken).len() >= 3
    });
    let sent = statuses(&calls, &broken);
    assert_eq!(states(&sent), ["pending", "running", "failed"], "{sent:#?}");
    assert!(
        sent[2]["description"]
            .as_str()
            .unwrap()
            .starts_with("failed: stage `build` failed"),
        "{:#}",
        sent[2]
    );
    let log = team.ok(
        &server,
        &admin,
        &["pipeline", &failed["id"].to_string(), "--logs"],
    );
    assert!(
        log.contains("reported to GitLab: commit status failed"),
        "{log}"
    );

    // The token travelled in its header only: not in the server's output, nor in a log.
    let (_, stdout, stderr) = server.stop();
    assert!(stderr.contains("reported to GitLab"), "{stderr}");
    for text in [&stdout, &stderr, &log] {
        assert!(!text.contains(TOKEN), "the token was printed:\n{text}");
    }
}

#[test]
fn a_forge_that_fails_twice_gets_the_status_after_retries_and_the_pipeline_never_notices() {
    // The first call answers 500, the second 429 (rate limited), then every one 201.
    let recorder = Recorder::start(&[500, 429]);
    let (team, server, admin) = reporting_team(&recorder.api_url);
    let sha = team.sandbox.git(&["rev-parse", "HEAD"]);

    let pipeline = run_pipeline(&team, &server, &admin);
    assert_eq!(pipeline["state"], "succeeded", "{pipeline:#}");
    let calls = recorder.wait_until("five statuses", |calls| statuses(calls, &sha).len() >= 5);
    assert_eq!(
        states(&statuses(&calls, &sha)),
        ["pending", "pending", "pending", "running", "success"],
        "pending is sent again until it is taken, and only then running"
    );
    // Three statuses delivered, none given up; the answers were recorded after they came.
    let id = pipeline["id"].to_string();
    let deadline = Instant::now() + REPORT_TIMEOUT;
    loop {
        let shown = team.json(&server, &admin, &["pipeline", &id]);
        assert_eq!(shown["reports"]["failed"], 0, "{shown:#}");
        if shown["reports"]["delivered"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = team.ok(
        &server,
        &admin,
        &["pipeline", &pipeline["id"].to_string(), "--logs"],
    );
    assert!(
        log.contains("commit status pending of")
            && log.contains("not delivered (GitLab answered 500); trying again in")
            && log.contains("not delivered (GitLab answered 429)"),
        "{log}"
    );
}

#[test]
fn an_unreachable_forge_never_fails_a_pipeline() {
    // A port nobody listens on: bound, then let go.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let api_url = format!("http://{}/api/v4", closed.local_addr().unwrap());
    drop(closed);
    let (team, server, admin) = reporting_team(&api_url);

    let pipeline = run_pipeline(&team, &server, &admin);
    assert_eq!(pipeline["state"], "succeeded", "{pipeline:#}");
    let id = pipeline["id"].to_string();
    let deadline = Instant::now() + REPORT_TIMEOUT;
    loop {
        let log = team.ok(&server, &admin, &["pipeline", &id, "--logs"]);
        if log.contains("not delivered (cannot connect") {
            assert!(log.contains(&format!("pipeline #{id}: succeeded")), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pipeline says how its reports stand.
    let shown = team.json(&server, &admin, &["pipeline", &id]);
    let reports = &shown["reports"];
    assert_eq!(reports["delivered"], 0, "{shown:#}");
    assert!(
        reports["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{shown:#}"
    );
    let table = team.ok(&server, &admin, &["pipeline", &id]);
    assert!(table.contains("reports to GitLab: 0 delivered"), "{table}");
}

/// The calls to merge request `iid`'s notes.
fn note_calls(calls: &[Call], iid: u64) -> Vec<Call> {
    let notes = format!("/api/v4/projects/group%2Fdemo/merge_requests/{iid}/notes");
    calls
        .iter()
        .filter(|c| c.path.starts_with(&notes))
        .cloned()
        .collect()
}

#[test]
fn a_merge_request_biome_keeps_one_note_updated_in_place() {
    let recorder = Recorder::start(&[]);
    let (team, server, admin) = reporting_team(&recorder.api_url);
    let first = team.sandbox.git(&["rev-parse", "HEAD"]);
    let run_biome = |extra: &[&str]| {
        let mut args = vec!["pipeline", "run", "--biome", "mr-3"];
        args.extend_from_slice(extra);
        let queued = team.json(&server, &admin, &args);
        let id = queued["id"].as_i64().unwrap();
        let done = team.wait_for(&server, &admin, id, &["succeeded", "failed"]);
        assert_eq!(done["state"], "succeeded", "{done:#}");
        id
    };

    // The biome comes up: one note is created, with its URL and what it runs.
    let up = run_biome(&[]);
    let calls = recorder.wait_until("the note", |calls| !note_calls(calls, 3).is_empty());
    let created = &note_calls(&calls, 3)[0];
    assert_eq!(created.method, "POST");
    assert_eq!(
        created.path,
        "/api/v4/projects/group%2Fdemo/merge_requests/3/notes"
    );
    assert_eq!(created.header("private-token"), Some(TOKEN));
    let note = created.json()["body"].as_str().unwrap().to_owned();
    let status = team.sandbox.status("mr-3");
    let web_url = crate::harness::component(&status, "web")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let web_digest = crate::harness::component(&status, "web")["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    for expected in [
        "### sandpit: biome `mr-3` in `dev` is up".to_owned(),
        format!("Commit `{}`", &first[..12]),
        format!("[pipeline #{up}]({}/api/v1/pipelines/{up})", server.url),
        format!("| web | {web_url} |"),
        format!("| web | `web-{first}.zip` | `{web_digest}` |"),
    ] {
        assert!(note.contains(&expected), "{expected:?} not in\n{note}");
    }
    // Its commit status has a name of its own, beside the environments' `sandpit`.
    let calls = recorder.wait_until("the biome's success", |calls| {
        statuses(calls, &first)
            .iter()
            .any(|s| s["name"] == "sandpit/mr-3" && s["state"] == "success")
    });
    assert!(statuses(&calls, &first)
        .iter()
        .all(|s| s["name"] == "sandpit/mr-3"));

    // The next commit of the merge request: the same note is edited, never a second one made.
    team.sandbox
        .write("web/server.py", &format!("{WEB}# the second commit\n"));
    let second = team.sandbox.commit("second commit");
    team.push("main");
    run_biome(&[]);
    let calls = recorder.wait_until("the note edited", |calls| note_calls(calls, 3).len() >= 2);
    let edited = &note_calls(&calls, 3)[1];
    assert_eq!(edited.method, "PUT");
    assert_eq!(
        edited.path, "/api/v4/projects/group%2Fdemo/merge_requests/3/notes/9001",
        "the id the recorder gave the created note"
    );
    let note = edited.json()["body"].as_str().unwrap().to_owned();
    assert!(
        note.contains(&format!("Commit `{}`", &second[..12])),
        "{note}"
    );

    // Taken down (the merge request closed): the note says so, in place.
    run_biome(&["--down"]);
    let calls = recorder.wait_until("the note saying the biome is gone", |calls| {
        note_calls(calls, 3).len() >= 3
    });
    let notes = note_calls(&calls, 3);
    assert_eq!(
        notes.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
        ["POST", "PUT", "PUT"],
        "one note for the merge request"
    );
    assert!(notes[2].path.ends_with("/notes/9001"));
    let note = notes[2].json()["body"].as_str().unwrap().to_owned();
    assert!(note.contains("was removed"), "{note}");
}

#[test]
fn without_its_token_nothing_is_sent_and_the_log_says_what_to_set() {
    let recorder = Recorder::start(&[]);
    let (team, server, admin) = reporting_team_with(&recorder.api_url, None);
    let pipeline = run_pipeline(&team, &server, &admin);
    assert_eq!(pipeline["state"], "succeeded", "{pipeline:#}");
    let id = pipeline["id"].to_string();
    let deadline = Instant::now() + REPORT_TIMEOUT;
    loop {
        let log = team.ok(&server, &admin, &["pipeline", &id, "--logs"]);
        if log.contains("not delivered (the configuration secret GITLAB_TOKEN is not set in `dev`; set it with `sandpit config set dev --secret GITLAB_TOKEN=TOKEN`)") {
            break;
        }
        assert!(Instant::now() < deadline, "no missing token logged:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recorder.calls().is_empty(), "{:#?}", recorder.calls());
}
