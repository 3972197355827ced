//! A control plane's pipelines end to end: a project pushed to a bare repository and
//! registered with `sandpit projects add`, `sandpit pipeline run` building it and deploying it
//! to dev, promoting it to test and stopping at protected prod, an approver (never the
//! requester) approving it through the server so prod runs the same bytes as dev; commits that
//! are not pushed or whose sandpit.toml is invalid refused; and a server killed while a
//! pipeline builds failing it on its next start, `sandpit pipeline retry` running it again,
//! and a rejection through the server ending the pipeline that waited for it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Sandbox;
use crate::server::Server;

pub(crate) const SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// How long a pipeline may take to reach where a test waits for it.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(240);

/// The definition, its web service built by `build` (none: packaged as it is).
fn definition(build: Option<&str>) -> String {
    let build = build
        .map(|b| format!("build = {b:?}\n"))
        .unwrap_or_default();
    format!(
        r#"[project]
name = "flow"

[environments.dev]
[environments.test]
promote_from = "dev"
auto_promote = true
[environments.prod]
promote_from = "test"
auto_promote = true
protected = true
approvals = 1

[services.web]
path = "web"
{build}run = "python3 server.py"
health = "/health"
start_timeout = 10
"#
    )
}

/// The project, its bare remote, and the config directories of each person.
pub(crate) struct Team {
    pub(crate) sandbox: Sandbox,
    pub(crate) remote: PathBuf,
    /// Where nobody logged in: commands here work locally unless told of a server.
    pub(crate) no_config: PathBuf,
}

impl Team {
    fn new() -> Team {
        Team::with_files(&[
            ("sandpit.toml", &definition(None)),
            ("web/server.py", SERVER),
        ])
    }

    /// A team whose project is `files`, committed and pushed to `main` of a bare remote.
    pub(crate) fn with_files(files: &[(&str, &str)]) -> Team {
        let sandbox = Sandbox::with_files(files);
        let root = sandbox.home.parent().unwrap().to_path_buf();
        let remote = root.join("remote.git");
        let output = std::process::Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&remote)
            .output()
            .unwrap();
        assert!(output.status.success());
        let no_config = root.join("no-config");
        std::fs::create_dir_all(&no_config).unwrap();
        let team = Team {
            sandbox,
            remote,
            no_config,
        };
        team.push("main");
        team
    }

    pub(crate) fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    pub(crate) fn push(&self, branch: &str) {
        let remote = self.remote.display().to_string();
        self.sandbox.git(&["push", "-q", "-f", &remote, branch]);
    }

    /// `sandpit ARGS` with `config` as XDG_CONFIG_HOME and, when given, `server` and `token`.
    pub(crate) fn run(
        &self,
        config: &Path,
        remote: Option<(&Server, &str)>,
        args: &[&str],
    ) -> Output {
        let mut command = self.sandbox.command(args);
        command.env("XDG_CONFIG_HOME", config);
        if let Some((server, token)) = remote {
            command
                .env("SANDPIT_SERVER", &server.url)
                .env("SANDPIT_TOKEN", token);
        }
        command.output().unwrap()
    }

    /// `sandpit ARGS` with `token`, expected to succeed; its stdout.
    pub(crate) fn ok(&self, server: &Server, token: &str, args: &[&str]) -> String {
        let output = self.run(&self.no_config, Some((server, token)), args);
        assert!(
            output.status.success(),
            "sandpit {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `sandpit ARGS --json` with `token`, expected to succeed.
    pub(crate) fn json(&self, server: &Server, token: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(server, token, &args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// `sandpit ARGS` with `token`, expected to exit 1; its stderr.
    pub(crate) fn fails(&self, server: &Server, token: &str, args: &[&str]) -> String {
        let output = self.run(&self.no_config, Some((server, token)), args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "sandpit {args:?} should fail:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Polls pipeline `id` until its state is one of `states`; panics with it after the deadline.
    pub(crate) fn wait_for(&self, server: &Server, token: &str, id: i64, states: &[&str]) -> Value {
        let deadline = Instant::now() + PIPELINE_TIMEOUT;
        loop {
            let pipeline = self.json(server, token, &["pipeline", &id.to_string()]);
            if states.iter().any(|s| pipeline["state"] == *s) {
                return pipeline;
            }
            assert!(
                Instant::now() < deadline,
                "pipeline #{id} never became {states:?}; last:\n{pipeline:#}\nlog:\n{}",
                self.ok(server, token, &["pipeline", &id.to_string(), "--logs"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Each stage as `kind[ env] state`.
pub(crate) fn stages(pipeline: &Value) -> Vec<String> {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let label = match s["env"].as_str() {
                Some(env) => format!("{} {env}", s["kind"].as_str().unwrap()),
                None => s["kind"].as_str().unwrap().to_owned(),
            };
            format!("{label} {}", s["state"].as_str().unwrap())
        })
        .collect()
}

/// The deployment a stage made.
fn stage_deployment(pipeline: &Value, label: &str) -> i64 {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            format!(
                "{} {}",
                s["kind"].as_str().unwrap(),
                s["env"].as_str().unwrap_or_default()
            ) == label
        })
        .and_then(|s| s["deployment"].as_i64())
        .unwrap_or_else(|| panic!("no deployment for `{label}` in {pipeline:#}"))
}

fn digests(deployment: &Value) -> Vec<(String, String)> {
    deployment["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_pipeline_deploys_promotes_waits_for_approval_and_survives_a_killed_server() {
    let team = Team::new();
    let sandbox = &team.sandbox;
    let server = Server::start(sandbox, &[]);

    // The admin logs in (credentials of their own) and registers the project.
    let admin_config = sandbox.home.parent().unwrap().join("admin-config");
    let token_file = sandbox
        .home
        .join("server/admin-token")
        .display()
        .to_string();
    let login = team.run(
        &admin_config,
        None,
        &[
            "login",
            "--server",
            &server.url,
            "--token-file",
            &token_file,
        ],
    );
    assert!(login.status.success(), "{login:?}");
    let admin = |args: &[&str]| {
        let output = team.run(&admin_config, None, args);
        assert!(
            output.status.success(),
            "admin: sandpit {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let added = admin(&["projects", "add", "flow", "--git", &team.url()]);
    assert!(added.contains("added project flow"), "{added}");
    let listed: Value = serde_json::from_str(&admin(&["projects", "list", "--json"])).unwrap();
    assert_eq!(listed["projects"][0]["name"], "flow", "{listed:#}");
    let token = |user: &str, role: &str| {
        admin(&["tokens", "create", user, "--role", role])
            .trim()
            .to_owned()
    };
    // Dora may approve too, only never her own deployments.
    let dora = token("dora@example.com", "deployer,approver");
    let ann = token("ann@example.com", "approver");

    // Without a server, the team verbs say how to find one.
    let lost = team.run(&team.no_config, None, &["pipelines"]);
    assert_eq!(lost.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&lost.stderr).contains("sandpit login --server URL"),
        "{lost:?}"
    );

    // The project is the one of sandpit.toml here; the head of its branch is built.
    let head = sandbox.git(&["rev-parse", "HEAD"]);
    let queued = team.json(&server, &dora, &["pipeline", "run"]);
    assert_eq!(queued["project"], "flow");
    assert_eq!(queued["sha"], head.as_str());
    let id = queued["id"].as_i64().unwrap();
    let pending = team.wait_for(&server, &dora, id, &["pending", "failed", "succeeded"]);
    assert_eq!(
        stages(&pending),
        [
            "fetch succeeded",
            "build succeeded",
            "deploy dev succeeded",
            "promote test succeeded",
            "promote prod pending",
        ],
        "{pending:#}"
    );
    assert_eq!(pending["requested_by"], "dora@example.com");
    let dev_status = sandbox.json(&["status", "dev"]);
    assert_eq!(dev_status["state"], "healthy", "{dev_status:#}");
    let table = team.ok(&server, &dora, &["pipelines"]);
    assert!(
        table.contains(&format!("main@{}", &head[..12])) && table.contains("pending"),
        "{table}"
    );
    let shown = team.ok(&server, &dora, &["pipeline", &id.to_string()]);
    assert!(
        shown.contains("promote prod") && shown.contains("pending"),
        "{shown}"
    );

    // The requester cannot approve their own deployment, even through the server.
    let prod = stage_deployment(&pending, "promote prod").to_string();
    let own = team.fails(&server, &dora, &["approve", &prod]);
    assert!(own.contains("cannot approve"), "{own}");
    let approved = team.json(&server, &ann, &["approve", &prod]);
    assert_eq!(approved["state"], "succeeded", "{approved:#}");
    assert_eq!(
        approved["approved_by"],
        serde_json::json!(["ann@example.com"])
    );
    assert_eq!(approved["status"]["state"], "healthy", "{approved:#}");
    let finished = team.json(&server, &dora, &["pipeline", &id.to_string()]);
    assert_eq!(finished["state"], "succeeded", "{finished:#}");
    assert_eq!(stages(&finished)[4], "promote prod succeeded");
    // The same bytes in prod as in dev.
    let dev_id = stage_deployment(&finished, "deploy dev");
    let history = sandbox.json(&["history", "dev"]);
    let dev = history["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == dev_id)
        .unwrap_or_else(|| panic!("deployment #{dev_id} in {history:#}"));
    assert_eq!(digests(&approved), digests(dev));
    assert!(!digests(dev).is_empty());

    // A commit that was never pushed is refused, and so is a branch whose sandpit.toml broke.
    let unpushed = sandbox.commit("not pushed");
    let refused = team.fails(&server, &dora, &["pipeline", "run", "--sha", &unpushed]);
    assert!(refused.contains("push it first"), "{refused}");
    sandbox.git(&["checkout", "-q", "-b", "broken"]);
    sandbox.write(
        "sandpit.toml",
        "[project]\nname = \"flow\"\n[servces.web]\n",
    );
    sandbox.commit("typo");
    team.push("broken");
    let refused = team.fails(
        &server,
        &dora,
        &["pipeline", "run", "--project", "flow", "--branch", "broken"],
    );
    assert!(refused.contains("servces"), "{refused}");
    assert!(refused.contains("invalid"), "{refused}");

    // A build that waits for the test: the server is killed while it runs.
    let gate = Gate::on_branch(&team, "slow");
    let slow_id = gate.run(&team, &server, &dora);
    server.kill();

    let server = Server::start(sandbox, &[]);
    let failed = team.json(&server, &dora, &["pipeline", &slow_id.to_string()]);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("server stopped"),
        "{failed:#}"
    );
    assert_eq!(stages(&failed)[1], "build failed", "{failed:#}");

    gate.open();
    let retried = team.json(&server, &dora, &["pipeline", "retry", &slow_id.to_string()]);
    assert_eq!(retried["retry_of"], slow_id);
    let retry_id = retried["id"].as_i64().unwrap();
    let done = team.wait_for(
        &server,
        &dora,
        retry_id,
        &["pending", "failed", "succeeded"],
    );
    assert_eq!(done["state"], "pending", "{done:#}");
    assert_eq!(stages(&done)[3], "promote test succeeded", "{done:#}");
    // Its log, read in chunks by `-f` until the pipeline stopped at prod.
    let log = team.ok(&server, &dora, &["pipeline", &retry_id.to_string(), "-f"]);
    assert!(log.contains("promote test: succeeded"), "{log}");
    assert!(
        log.contains(&format!("pipeline #{retry_id}: pending")),
        "{log}"
    );

    // Rejected through the server: the pipeline that waited for it ends failed.
    let waiting = stage_deployment(&done, "promote prod").to_string();
    let rejected = team.ok(
        &server,
        &ann,
        &["reject", &waiting, "--reason", "not today"],
    );
    assert!(rejected.contains("is rejected"), "{rejected}");
    let ended = team.json(&server, &dora, &["pipeline", &retry_id.to_string()]);
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(
        ended["message"].as_str().unwrap().contains("rejected"),
        "{ended:#}"
    );

    // Stopping the server never waits for the build its queue runs; the next start fails it.
    let gate = Gate::on_branch(&team, "slower");
    let stopped_id = gate.run(&team, &server, &dora);
    assert!(
        server.stop_within(Duration::from_secs(30)),
        "SIGTERM stops the server while a pipeline builds"
    );
    let server = Server::start(sandbox, &[]);
    let failed = team.json(&server, &dora, &["pipeline", &stopped_id.to_string()]);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    gate.open();
}

/// A branch whose build says it started, then waits until the test opens the gate.
struct Gate {
    building: PathBuf,
    release: PathBuf,
    branch: &'static str,
}

impl Gate {
    /// Commits the waiting build on a new `branch` from main, and pushes it.
    fn on_branch(team: &Team, branch: &'static str) -> Gate {
        let dir = team
            .sandbox
            .home
            .parent()
            .unwrap()
            .join(format!("gate-{branch}"));
        std::fs::create_dir_all(&dir).unwrap();
        let gate = Gate {
            building: dir.join("building"),
            release: dir.join("release"),
            branch,
        };
        let build = format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
            gate.building.display(),
            gate.release.display()
        );
        team.sandbox.git(&["checkout", "-q", "main"]);
        team.sandbox.git(&["checkout", "-q", "-b", branch]);
        team.sandbox
            .write("sandpit.toml", &definition(Some(&build)));
        team.sandbox.commit("a build that waits");
        team.push(branch);
        gate
    }

    /// Runs the branch's pipeline; returns its id once its build waits at the gate.
    fn run(&self, team: &Team, server: &Server, token: &str) -> i64 {
        let queued = team.json(
            server,
            token,
            &[
                "pipeline",
                "run",
                "--project",
                "flow",
                "--branch",
                self.branch,
            ],
        );
        let deadline = Instant::now() + PIPELINE_TIMEOUT;
        while !self.building.exists() {
            assert!(
                Instant::now() < deadline,
                "the {} build never started",
                self.branch
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        queued["id"].as_i64().unwrap()
    }

    fn open(&self) {
        std::fs::write(&self.release, "").unwrap();
    }
}
