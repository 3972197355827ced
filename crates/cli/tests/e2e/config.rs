//! Configuration variables and secrets end to end: set on an environment and on a biome,
//! injected into the components they name (restarting exactly those), inherited and overridden,
//! recorded as `config` deployments, approved in a protected environment, and secrets kept out
//! of every output, file and command line others could see.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{component, http_get, Sandbox};

const SERVER: &str = r#"import http.server, os, sys
if os.environ.get("CRASH"):
    print("crashing as configured", flush=True)
    sys.exit(3)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/env":
            body = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items()))
        elif self.path == "/runs":
            try:
                body = open(os.path.join(os.environ["SANDPIT_DATA_DIR"], "prepare-runs")).read()
            except OSError:
                body = ""
        else:
            body = "ok"
        self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A service that prints its environment on `/env`, and a job that counts its runs in the
/// biome's data directory (the service shows the count on `/runs`).
fn configurable() -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "tuned"

[environments.dev]
biomes = true
[environments.prod]
protected = true
approvals = 1

[jobs.prepare]
path = "prepare"
run = "echo ran >> \"$SANDPIT_DATA_DIR/prepare-runs\""

[services.web]
path = "web"
run = "python3 server.py"
health = "/health"
start_timeout = 5
depends_on = ["prepare"]
env = { GREETING = "from-toml", MODE = "toml" }
"#,
        ),
        ("prepare/README", "counts its runs\n"),
        ("web/server.py", SERVER),
    ])
}

fn web_url(sandbox: &Sandbox, target: &str) -> String {
    component(&sandbox.status(target), "web")["url"]
        .as_str()
        .unwrap_or_else(|| panic!("web of {target} has no url"))
        .to_owned()
}

/// The environment `target`'s web service runs with.
fn env_of(sandbox: &Sandbox, target: &str) -> BTreeMap<String, String> {
    let (code, body) = http_get(&format!("{}/env", web_url(sandbox, target)));
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn web_pid(sandbox: &Sandbox, target: &str) -> u64 {
    component(&sandbox.status(target), "web")["pid"]
        .as_u64()
        .unwrap()
}

/// How often the job ran in `target`.
fn job_runs(sandbox: &Sandbox, target: &str) -> usize {
    http_get(&format!("{}/runs", web_url(sandbox, target)))
        .1
        .lines()
        .count()
}

fn as_user(sandbox: &Sandbox, user: &str, args: &[&str]) -> Output {
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

/// Runs sandpit with `input` on its standard input.
fn with_stdin(sandbox: &Sandbox, args: &[&str], input: &[u8]) -> Output {
    let mut child = sandbox
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs sandpit insisting on success; returns (stdout, stderr).
fn ok_with_events(sandbox: &Sandbox, args: &[&str]) -> (String, String) {
    let output = sandbox.run(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "{args:?}:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn history(sandbox: &Sandbox, target: &str) -> Vec<Value> {
    sandbox.json(&["history", target])["deployments"]
        .as_array()
        .unwrap()
        .clone()
}

fn configured_step(deployment: &Value) -> String {
    deployment["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "configured")
        .unwrap_or_else(|| panic!("no configured step: {deployment:#}"))["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn variable<'a>(listing: &'a Value, key: &str, from: &str) -> &'a Value {
    listing["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key && v["from"] == from)
        .unwrap_or_else(|| panic!("no {key} from {from}: {listing:#}"))
}

#[test]
fn variables_restart_exactly_what_they_change_and_biomes_inherit_and_override_them() {
    let sandbox = configurable();
    sandbox.ok(&["deploy", "dev"]);
    let deployed = history(&sandbox, "dev")[0].clone();
    assert_eq!(env_of(&sandbox, "dev")["GREETING"], "from-toml");
    assert_eq!(job_runs(&sandbox, "dev"), 1);
    let first_pid = web_pid(&sandbox, "dev");

    // A variable for web only: web restarts with it, over sandpit.toml's value; the job, whose
    // variables did not change, is not run again.
    let (stdout, events) = ok_with_events(
        &sandbox,
        &[
            "config",
            "set",
            "dev",
            "GREETING=hello",
            "--component",
            "web",
        ],
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(
        events.contains("prepare: unchanged; already succeeded"),
        "{events}"
    );
    let env = env_of(&sandbox, "dev");
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["MODE"], "toml", "the rest of sandpit.toml's env stays");
    assert_ne!(web_pid(&sandbox, "dev"), first_pid, "web restarted");
    assert_eq!(job_runs(&sandbox, "dev"), 1, "the job was not run again");

    // A variable for every component reaches the job too, which runs again.
    let second_pid = web_pid(&sandbox, "dev");
    sandbox.ok(&["config", "set", "dev", "LEVEL=debug", "EMPTY="]);
    assert_eq!(job_runs(&sandbox, "dev"), 2);
    let env = env_of(&sandbox, "dev");
    assert_eq!(
        (env["LEVEL"].as_str(), env["EMPTY"].as_str()),
        ("debug", "")
    );
    assert_ne!(web_pid(&sandbox, "dev"), second_pid);
    // Setting what is already set changes no process.
    let third_pid = web_pid(&sandbox, "dev");
    sandbox.ok(&["config", "set", "dev", "LEVEL=debug"]);
    assert_eq!(web_pid(&sandbox, "dev"), third_pid);
    assert_eq!(job_runs(&sandbox, "dev"), 2);

    // Each change is a `config` deployment of what ran, naming the keys.
    let recorded = history(&sandbox, "dev");
    let kinds: Vec<&str> = recorded
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["config", "config", "config", "deploy"]);
    assert_eq!(configured_step(&recorded[2]), "set GREETING for web");
    assert_eq!(configured_step(&recorded[1]), "set LEVEL, EMPTY");
    for d in &recorded[..3] {
        assert_eq!(d["state"], "succeeded", "{d:#}");
        assert_eq!(d["sha"], deployed["sha"]);
        assert_eq!(d["components"], deployed["components"]);
        assert_eq!(d["requested_by"], "dev@example.com");
    }

    // A biome inherits the environment's variables, and overrides them.
    sandbox.ok(&["up", "alice"]);
    let env = env_of(&sandbox, "alice");
    assert_eq!(
        (env["GREETING"].as_str(), env["LEVEL"].as_str()),
        ("hello", "debug")
    );
    let alice_pid = web_pid(&sandbox, "alice");
    sandbox.ok(&["config", "set", "alice", "LEVEL=trace"]);
    assert_eq!(env_of(&sandbox, "alice")["LEVEL"], "trace");
    assert_ne!(web_pid(&sandbox, "alice"), alice_pid);
    assert_eq!(
        env_of(&sandbox, "dev")["LEVEL"],
        "debug",
        "dev keeps its own"
    );
    let listing = sandbox.json(&["config", "alice"]);
    assert_eq!(listing["target"], "dev/alice");
    assert_eq!(listing["up_to_date"], true, "{listing:#}");
    let inherited = variable(&listing, "LEVEL", "dev");
    assert_eq!(inherited["overridden"], true, "{listing:#}");
    let own = variable(&listing, "LEVEL", "dev/alice");
    assert_eq!(own["value"], "trace");
    assert_eq!(own["applies_to"], serde_json::json!(["prepare", "web"]));
    let greeting = variable(&listing, "GREETING", "dev");
    assert_eq!(greeting["component"], "web");
    assert_eq!(greeting["applies_to"], serde_json::json!(["web"]));
    let shown = sandbox.ok(&["config", "dev/alice"]);
    assert!(shown.contains("runs with these values"), "{shown}");
    assert!(shown.contains("(overridden)"), "{shown}");
    let alice = history(&sandbox, "dev/alice");
    assert_eq!(alice[0]["kind"], "config");
    assert_eq!(configured_step(&alice[0]), "set LEVEL");

    // An inherited variable cannot be unset on the biome, only overridden.
    let refused = sandbox.fails(&["config", "unset", "alice", "GREETING"], 1);
    assert!(
        refused.contains("`GREETING` is not set on `dev/alice`")
            && refused.contains("inherits it from `dev`")
            && refused.contains("hint: "),
        "{refused}"
    );

    // A change to the environment restarts its base, not the biomes running in it: alice
    // takes it at its next `up`, and says so meanwhile.
    sandbox.ok(&[
        "config",
        "set",
        "dev",
        "GREETING=changed",
        "--component",
        "web",
    ]);
    assert_eq!(env_of(&sandbox, "dev")["GREETING"], "changed");
    assert_eq!(env_of(&sandbox, "alice")["GREETING"], "hello");
    assert_eq!(sandbox.json(&["config", "alice"])["up_to_date"], false);
    let shown = sandbox.ok(&["config", "alice"]);
    assert!(
        shown.contains("`sandpit up alice` applies these"),
        "{shown}"
    );
    sandbox.ok(&["up", "alice"]);
    assert_eq!(env_of(&sandbox, "alice")["GREETING"], "changed");
    assert_eq!(sandbox.json(&["config", "alice"])["up_to_date"], true);

    // Unsetting the biome's own value brings the inherited one back; unsetting the
    // environment's brings back sandpit.toml's.
    sandbox.ok(&["config", "unset", "alice", "LEVEL"]);
    assert_eq!(env_of(&sandbox, "alice")["LEVEL"], "debug");
    sandbox.ok(&["config", "unset", "dev", "GREETING"]);
    assert_eq!(env_of(&sandbox, "dev")["GREETING"], "from-toml");
    let refused = sandbox.fails(&["config", "unset", "dev", "GREETING"], 1);
    assert!(refused.contains("nothing to unset"), "{refused}");

    // A target that does not run stores the change for its first `up`.
    let stored = sandbox.ok(&["config", "set", "dev/bob", "WHO=bob"]);
    assert!(
        stored.contains("stored for `dev/bob`") && stored.contains("next `sandpit up`"),
        "{stored}"
    );
    let none = sandbox.fails(&["history", "dev/bob"], 1);
    assert!(
        none.contains("nothing has ever been deployed"),
        "no deployment: {none}"
    );
    sandbox.ok(&["up", "bob"]);
    assert_eq!(env_of(&sandbox, "bob")["WHO"], "bob");
    assert!(!env_of(&sandbox, "alice").contains_key("WHO"));
}

#[test]
fn bad_names_and_values_are_refused_with_a_hint_and_change_nothing() {
    let sandbox = configurable();
    // (arguments, exit code, fragment of the message)
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["config", "set", "dev", "greeting=x"],
            2,
            "did you mean `GREETING`?",
        ),
        (
            &["config", "set", "dev", "PORT=1"],
            2,
            "`PORT` is set by sandpit itself",
        ),
        (
            &["config", "set", "dev", "DATABASE_URL=x"],
            2,
            "`DATABASE_URL` is set by sandpit itself",
        ),
        (
            &["config", "set", "dev", "SHARED_DATABASE_URL=x"],
            2,
            "is set by sandpit itself",
        ),
        (
            &["config", "set", "dev", "SANDPIT_ENV=prod"],
            2,
            "starting with `SANDPIT_` are sandpit's own",
        ),
        (&["config", "set", "dev", "1ST=x"], 2, "starts with a digit"),
        (&["config", "set", "dev", "A-B=x"], 2, "did you mean `A_B`?"),
        (
            &["config", "unset", "dev", "PORT"],
            2,
            "is set by sandpit itself",
        ),
        (&["config", "set", "dev", "A"], 1, "`A` has no value"),
        (
            &["config", "set", "dev", "A=1", "--component", "wbe"],
            1,
            "did you mean `web`?",
        ),
        (
            &["config", "set", "dev", "A=1", "A=2"],
            1,
            "`A` is given twice",
        ),
    ];
    for (args, code, fragment) in cases {
        let error = sandbox.fails(args, *code);
        assert!(
            error.contains(fragment) && error.contains("hint: "),
            "{args:?}: {error}"
        );
    }
    let refused = sandbox.fails(&["config", "set", "dev", "token=hunter2", "--secret"], 2);
    assert!(
        refused.contains("did you mean `TOKEN`?") && !refused.contains("hunter2"),
        "a refused argument's value is never echoed: {refused}"
    );
    let nul = with_stdin(
        &sandbox,
        &["config", "set", "dev", "TOKEN", "--secret"],
        b"hunter2\0rest",
    );
    assert_eq!(nul.status.code(), Some(1));
    let error = String::from_utf8_lossy(&nul.stderr);
    assert!(error.contains("`TOKEN` has a NUL byte"), "{error}");
    assert!(
        !error.contains("hunter2"),
        "the value is never echoed: {error}"
    );
    let listing = sandbox.json(&["config", "dev"]);
    assert_eq!(listing["variables"], serde_json::json!([]), "{listing:#}");
    assert!(history(&sandbox, "dev").is_empty());
}

/// Every regular file under `dir`.
fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), found);
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
}

/// The files of `paths` that uid 65534 can open.
fn readable_by_nobody(paths: &[PathBuf]) -> Vec<String> {
    let script = "import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p, 'rb').read(); print(p)\n    except OSError:\n        pass\n";
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "python3",
            "-c",
            script,
        ])
        .args(paths)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .output()
        .expect("setpriv runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_secret_reaches_its_component_only_and_shows_nowhere_else() {
    let sandbox = configurable();
    sandbox.ok(&["deploy", "dev"]);
    let secret = format!("s3cr3t-{}", std::process::id());
    // Read from standard input, so not even sandpit's own command line holds it.
    let set = with_stdin(
        &sandbox,
        &[
            "config",
            "set",
            "dev",
            "API_TOKEN",
            "--secret",
            "--component",
            "web",
            "--json",
        ],
        format!("{secret}\n").as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&set.stdout);
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert!(set.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(&secret) && !stderr.contains(&secret),
        "{stdout}\n{stderr}"
    );
    let env = env_of(&sandbox, "dev");
    assert_eq!(env["API_TOKEN"], secret, "one trailing newline is dropped");
    // An empty secret is a variable like any other.
    let blank = with_stdin(
        &sandbox,
        &["config", "set", "dev", "BLANK", "--secret"],
        b"",
    );
    assert!(
        blank.status.success(),
        "{}",
        String::from_utf8_lossy(&blank.stderr)
    );
    assert_eq!(env_of(&sandbox, "dev")["BLANK"], "");

    // Masked in the listing unless asked for.
    let shown = sandbox.ok(&["config", "dev"]);
    assert!(
        shown.contains("API_TOKEN") && !shown.contains(&secret),
        "{shown}"
    );
    let listing = sandbox.json(&["config", "dev"]);
    let token = variable(&listing, "API_TOKEN", "dev");
    assert_eq!(
        (token["secret"].as_bool(), token["value"].is_null()),
        (Some(true), true)
    );
    let revealed = sandbox.json(&["config", "dev", "--show-secrets"]);
    assert_eq!(
        variable(&revealed, "API_TOKEN", "dev")["value"],
        secret.as_str()
    );

    // Recorded by name only; in no output, state or log.
    let recorded = history(&sandbox, "dev");
    assert_eq!(
        configured_step(&recorded[1]),
        "set API_TOKEN (secret) for web"
    );
    let pid = web_pid(&sandbox, "dev");
    for (what, text) in [
        ("history --json", sandbox.ok(&["history", "dev", "--json"])),
        ("status --json", sandbox.ok(&["status", "dev", "--json"])),
        (
            "trace --json",
            sandbox.ok(&["trace", recorded[0]["sha"].as_str().unwrap(), "--json"]),
        ),
        (
            "state.json",
            fs::read_to_string(sandbox.home.join("runtime/state.json")).unwrap(),
        ),
        (
            "daemon.log",
            fs::read_to_string(sandbox.home.join("daemon.log")).unwrap(),
        ),
        (
            "state.db",
            String::from_utf8_lossy(&fs::read(sandbox.home.join("state.db")).unwrap()).into_owned(),
        ),
    ] {
        assert!(!text.contains(&secret), "{what} holds the secret");
    }
    assert!(
        fs::read_to_string(sandbox.home.join("runtime/state.json"))
            .unwrap()
            .contains("API_TOKEN"),
        "the daemon's state names the secret's file"
    );
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&secret),
            "the command line of {:?} holds the secret",
            entry.file_name()
        );
    }
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains(&format!("API_TOKEN={secret}")));

    // Only the stored value and the file the daemon reads hold it, and only their owner can
    // read them.
    let mut files = Vec::new();
    files_under(&sandbox.home, &mut files);
    let holding: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| String::from_utf8_lossy(&fs::read(f).unwrap_or_default()).contains(&secret))
        .collect();
    let config = sandbox.home.join("projects/tuned/config/dev");
    assert_eq!(holding.len(), 2, "{holding:?}");
    assert!(holding.contains(&config.join("vars.json")), "{holding:?}");
    assert!(
        holding
            .iter()
            .any(|f| f.starts_with(config.join("released/dev")) && f.ends_with("web/API_TOKEN")),
        "{holding:?}"
    );
    for file in &holding {
        let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let mut dir = config.join("released");
    while dir.starts_with(sandbox.home.join("projects/tuned/config")) {
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        dir.pop();
    }
    let mut probe = holding.clone();
    let control = sandbox.home.parent().unwrap().join("control");
    fs::write(&control, "x").unwrap();
    fs::set_permissions(&control, fs::Permissions::from_mode(0o644)).unwrap();
    probe.push(control.clone());
    assert_eq!(
        readable_by_nobody(&probe),
        [control.display().to_string()],
        "uid 65534 reads the control file and nothing holding the secret"
    );

    // A restarted daemon starts web with the same secret, read from the same file.
    sandbox.ok(&["daemon", "stop"]);
    sandbox.ok(&["daemon", "start"]);
    sandbox.wait_for_status("dev", std::time::Duration::from_secs(30), |s| {
        component(s, "web")["state"] == "healthy"
    });
    assert_ne!(web_pid(&sandbox, "dev"), pid);
    assert_eq!(env_of(&sandbox, "dev")["API_TOKEN"], secret);
}

#[test]
fn a_protected_environments_change_waits_for_someone_else_and_a_rejected_one_never_applies() {
    let sandbox = configurable();
    let pending = json_as(&sandbox, "alice@example.com", &["deploy", "prod"]);
    let id = pending["id"].to_string();
    json_as(&sandbox, "bob@example.com", &["approve", &id]);
    assert!(!env_of(&sandbox, "prod").contains_key("FEATURE"));

    // The change waits for an approval; nothing is stored or changed meanwhile.
    let requested = json_as(
        &sandbox,
        "alice@example.com",
        &["config", "set", "prod", "FEATURE=on"],
    );
    assert_eq!(requested["state"], "pending", "{requested:#}");
    assert_eq!(requested["kind"], "config");
    let change = requested["id"].to_string();
    let listing = sandbox.json(&["config", "prod"]);
    assert_eq!(listing["variables"], serde_json::json!([]), "{listing:#}");
    assert_eq!(
        listing["pending"][0]["change"], "set FEATURE",
        "{listing:#}"
    );
    assert_eq!(listing["pending"][0]["requested_by"], "alice@example.com");
    assert!(!env_of(&sandbox, "prod").contains_key("FEATURE"));

    let own = as_user(&sandbox, "alice@example.com", &["approve", &change]);
    assert!(!own.status.success());
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("cannot approve"),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let approved = json_as(&sandbox, "bob@example.com", &["approve", &change]);
    assert_eq!(approved["state"], "succeeded", "{approved:#}");
    assert_eq!(
        approved["approved_by"],
        serde_json::json!(["bob@example.com"])
    );
    assert_eq!(configured_step(&approved), "set FEATURE");
    assert_eq!(env_of(&sandbox, "prod")["FEATURE"], "on");
    let listing = sandbox.json(&["config", "prod"]);
    assert_eq!(variable(&listing, "FEATURE", "prod")["value"], "on");
    assert_eq!(listing["pending"], serde_json::json!([]));

    // A rejected change never takes effect: not now, not with the next deployment.
    let requested = json_as(
        &sandbox,
        "alice@example.com",
        &["config", "set", "prod", "FEATURE=off"],
    );
    let rejected = requested["id"].to_string();
    json_as(&sandbox, "bob@example.com", &["reject", &rejected]);
    let late = as_user(&sandbox, "carol@example.com", &["approve", &rejected]);
    assert!(
        !late.status.success(),
        "a rejected change cannot be approved"
    );
    let redeploy = json_as(&sandbox, "alice@example.com", &["deploy", "prod"]);
    json_as(
        &sandbox,
        "bob@example.com",
        &["approve", &redeploy["id"].to_string()],
    );
    assert_eq!(env_of(&sandbox, "prod")["FEATURE"], "on");
    let listing = sandbox.json(&["config", "prod"]);
    assert_eq!(variable(&listing, "FEATURE", "prod")["value"], "on");
    assert_eq!(listing["pending"], serde_json::json!([]));

    // A change approved after another deployment ran meanwhile was asked for what ran before:
    // it fails, changing nothing, and says to ask again.
    let stale = json_as(
        &sandbox,
        "alice@example.com",
        &["config", "set", "prod", "FEATURE=later"],
    );
    let redeploy = json_as(&sandbox, "alice@example.com", &["deploy", "prod"]);
    json_as(
        &sandbox,
        "bob@example.com",
        &["approve", &redeploy["id"].to_string()],
    );
    let late = as_user(
        &sandbox,
        "bob@example.com",
        &["approve", &stale["id"].to_string()],
    );
    let error = String::from_utf8_lossy(&late.stderr);
    assert_eq!(late.status.code(), Some(1), "{error}");
    assert!(
        error.contains("what runs in `prod` changed since deployment")
            && error.contains("was not made")
            && error.contains("hint: request it again"),
        "{error}"
    );
    assert_eq!(env_of(&sandbox, "prod")["FEATURE"], "on");
    let listing = sandbox.json(&["config", "prod"]);
    assert_eq!(variable(&listing, "FEATURE", "prod")["value"], "on");
    assert_eq!(listing["pending"], serde_json::json!([]));
}

#[test]
fn a_change_that_breaks_a_biome_is_rolled_back_and_never_stored() {
    let sandbox = configurable();
    sandbox.ok(&["up", "alice"]);
    sandbox.ok(&["config", "set", "alice", "LEVEL=debug"]);
    let error = sandbox.fails(
        &["config", "set", "alice", "CRASH=1", "--component", "web"],
        1,
    );
    assert!(
        error.contains("rolled back automatically")
            && error.contains("the change (set CRASH for web) was not kept"),
        "{error}"
    );
    let env = env_of(&sandbox, "alice");
    assert!(!env.contains_key("CRASH"), "the rollback runs without it");
    assert_eq!(env["LEVEL"], "debug", "and with what was stored before");
    let listing = sandbox.json(&["config", "alice"]);
    let keys: Vec<&str> = listing["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["LEVEL"], "{listing:#}");
    assert_eq!(listing["up_to_date"], true, "{listing:#}");
    let recorded = history(&sandbox, "dev/alice");
    let kinds: Vec<(&str, &str)> = recorded
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("rollback", "succeeded"),
            ("config", "rolled_back"),
            ("config", "succeeded"),
            ("up", "succeeded")
        ]
    );
    assert_eq!(recorded[0]["restores"], recorded[2]["id"]);
    // The next `up` does not bring the refused change back either.
    sandbox.ok(&["up", "alice"]);
    assert!(!env_of(&sandbox, "alice").contains_key("CRASH"));
}
