//! Secrets are their owner's only: another local user (uid 65534, `nobody`) can read none of
//! the passwords sandpit keeps, wherever they are kept, and the daemon's saved state holds none,
//! yet a restarted daemon still gives every component its `DATABASE_URL`.
//!
//! Checked by trying, as that user, to read every file sandpit made (not by reading modes), with
//! components that print their secrets into their logs and a job that fails with its URL in the
//! error message sandpit records.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{component, http_get, sql, Sandbox};

const SLOW: Duration = Duration::from_secs(60);

/// A project whose components print the secrets they are given, and whose job fails in the
/// biome called `broken` (so its URL ends up in the recorded failure).
fn leaky_project() -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "vault"

[database]
migrations = "db/migrations"
shared = "db/shared.sql"

[jobs.leak]
path = "leak"
run = "echo \"job got $DATABASE_URL\"; test \"$SANDPIT_BIOME\" != broken"

[services.web]
path = "web"
run = "python3 server.py"
depends_on = ["leak"]
"#,
        ),
        (
            "db/migrations/001_notes.sql",
            "create table notes(id serial primary key, body text);\n",
        ),
        ("db/shared.sql", "create table codes(code text);\n"),
        ("leak/README", "prints its DATABASE_URL\n"),
        (
            "web/server.py",
            r#"import http.server, os
print("web got", os.environ["DATABASE_URL"], os.environ["SHARED_DATABASE_URL"], flush=True)
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

/// The password in `postgres://role:password@host:port/database`.
fn password_of(url: &str) -> String {
    let authority = url.split_once("://").unwrap().1.split_once('@').unwrap().0;
    authority.split_once(':').unwrap().1.to_owned()
}

fn database_url(sandbox: &Sandbox, biome: &str) -> String {
    let status = sandbox.json(&["status", biome, "--show-secrets"]);
    status["database"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no URL for {biome}: {status:#}"))
        .to_owned()
}

/// The embedded PostgreSQL's state directory, wherever sandpit put it (under `SANDPIT_HOME`, or
/// `/var/lib/sandpit/clusters/...`): the directory of the instance's log.
fn cluster_dir(sandbox: &Sandbox) -> PathBuf {
    let daemon = sandbox.json(&["daemon", "status"]);
    let log = daemon["instances"][0]["log"]
        .as_str()
        .unwrap_or_else(|| panic!("no database instance: {daemon:#}"));
    Path::new(log).parent().unwrap().to_owned()
}

/// Every regular file under `root`, as root sees them.
fn files_under(root: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), found);
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
}

/// What uid 65534 manages to do: `listed` are the entries it could see walking `roots` itself,
/// `read` the contents of every file (of `files`, and of what it listed) it could open.
struct AsNobody {
    listed: Vec<String>,
    read: BTreeMap<String, String>,
}

const NOBODY_READS: &str = r#"
import json, os, sys
roots, files = json.load(sys.stdin)
listed = []
for root in roots:
    for top, dirs, names in os.walk(root):
        listed += [os.path.join(top, n) for n in dirs + names]
read = {}
for path in files + listed:
    try:
        with open(path, "rb") as f:
            read[path] = f.read().decode("latin-1")
    except OSError:
        pass
print(json.dumps({"listed": listed, "read": read}))
"#;

fn as_nobody(roots: &[&Path], files: &[PathBuf]) -> AsNobody {
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "python3",
            "-c",
            NOBODY_READS,
        ])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv runs");
    let input = serde_json::json!([roots, files]).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "reading as uid 65534 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    AsNobody {
        listed: serde_json::from_value(answer["listed"].clone()).unwrap(),
        read: serde_json::from_value(answer["read"].clone()).unwrap(),
    }
}

/// Tries, as uid 65534, to list and read everything under `SANDPIT_HOME` and the cluster
/// directory; panics naming any file that shows it one of `secrets`.
fn nobody_reads_no_secret(sandbox: &Sandbox, cluster: &Path, secrets: &[(&str, &str)]) {
    let mut files = Vec::new();
    files_under(&sandbox.home, &mut files);
    if !cluster.starts_with(&sandbox.home) {
        files_under(cluster, &mut files);
    }
    assert!(
        files.len() > 20,
        "the walk found sandpit's files: {files:?}"
    );
    // A control: the same user does read a world-readable copy of a secret, so a clean result
    // below means the files were closed to it, not that reading failed altogether.
    let control = sandbox.home.parent().unwrap().join("control");
    fs::write(&control, secrets[0].1).unwrap();
    fs::set_permissions(&control, fs::Permissions::from_mode(0o644)).unwrap();
    files.push(control.clone());

    let nobody = as_nobody(&[&sandbox.home, cluster], &files);
    assert!(
        nobody
            .read
            .get(control.to_str().unwrap())
            .is_some_and(|c| c == secrets[0].1),
        "uid 65534 cannot even read the control file; the check proves nothing"
    );
    assert!(
        nobody.listed.is_empty(),
        "uid 65534 can list SANDPIT_HOME or the cluster directory: {:?}",
        nobody.listed
    );
    for (path, contents) in &nobody.read {
        if Path::new(path) == control {
            continue;
        }
        for (what, secret) in secrets {
            assert!(
                !contents.contains(secret),
                "uid 65534 can read {what} in {path}"
            );
        }
    }
    fs::remove_file(control).unwrap();
}

/// Gives group and others read access again, as an older sandpit left things.
fn open_up(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn web_pid(sandbox: &Sandbox) -> Value {
    component(&sandbox.status("alice"), "web")["pid"].clone()
}

#[test]
fn secrets_are_unreadable_by_other_users_and_never_in_the_daemon_state() {
    let sandbox = leaky_project();
    let alice = sandbox.json(&["up", "alice"]);
    assert!(
        alice["database"].get("url").is_none(),
        "no URL without --show-secrets: {alice:#}"
    );
    let refused = sandbox.fails(&["up", "broken"], 1);
    assert!(refused.contains("job `leak` failed"), "{refused}");

    let alice_url = database_url(&sandbox, "alice");
    let broken_url = database_url(&sandbox, "broken");
    let cluster = cluster_dir(&sandbox);
    let admin_password = fs::read_to_string(cluster.join("admin-password")).unwrap();
    let secrets = [
        ("alice's password", password_of(&alice_url)),
        ("broken's password", password_of(&broken_url)),
        ("the admin password", admin_password.trim().to_owned()),
    ];
    let secrets: Vec<(&str, &str)> = secrets.iter().map(|(w, s)| (*w, s.as_str())).collect();
    // The components really were given their URLs (and printed them into their logs).
    let (_, served) = http_get(&format!(
        "{}/",
        component(&alice, "web")["url"].as_str().unwrap()
    ));
    assert_eq!(served, alice_url);
    let web_log = fs::read_to_string(component(&alice, "web")["log"].as_str().unwrap()).unwrap();
    assert!(web_log.contains(&alice_url), "{web_log}");

    // Not even root finds a password in the daemon's saved state: it names files instead.
    let state = fs::read_to_string(sandbox.home.join("runtime/state.json")).unwrap();
    for (what, secret) in &secrets {
        assert!(!state.contains(secret), "state.json holds {what}");
    }
    assert!(!state.contains("postgres://"), "state.json holds a URL");
    assert!(state.contains("alice.database-url"), "{state}");

    nobody_reads_no_secret(&sandbox, &cluster, &secrets);

    // The daemon restarts alice's service from state.json with a working DATABASE_URL.
    let before = web_pid(&sandbox);
    sandbox.ok(&["daemon", "stop"]);
    // Meanwhile, leave things as open as an older sandpit did.
    let databases = sandbox.home.join("projects/vault/databases/dev");
    open_up(&sandbox.home, 0o755);
    open_up(&sandbox.home.join("runtime"), 0o755);
    open_up(&databases, 0o755);
    for file in fs::read_dir(&databases).unwrap().flatten() {
        open_up(&file.path(), 0o644);
    }
    open_up(&cluster.join("admin-password"), 0o644);
    open_up(&sandbox.home.join("state.db"), 0o644);
    open_up(&sandbox.home.join("daemon.log"), 0o644);
    open_up(
        Path::new(component(&alice, "web")["log"].as_str().unwrap()),
        0o644,
    );

    sandbox.ok(&["daemon", "start"]);
    let restarted =
        sandbox.wait_for_status("alice", SLOW, |s| component(s, "web")["state"] == "healthy");
    assert_ne!(component(&restarted, "web")["pid"], before);
    let (_, served) = http_get(&format!(
        "{}/",
        component(&restarted, "web")["url"].as_str().unwrap()
    ));
    assert_eq!(
        served, alice_url,
        "the restarted service got its DATABASE_URL"
    );
    sql(&served, "insert into notes(body) values ('still connects')").unwrap();

    // An unchanged secret does not restart anything; the `up` closes what was left open.
    let running = web_pid(&sandbox);
    sandbox.ok(&["up", "alice"]);
    assert_eq!(
        web_pid(&sandbox),
        running,
        "nothing changed, nothing restarts"
    );
    nobody_reads_no_secret(&sandbox, &cluster, &secrets);

    // A new password is a new DATABASE_URL: the service is restarted with it.
    fs::remove_file(databases.join("alice.password")).unwrap();
    sandbox.ok(&["up", "alice"]);
    let new_url = database_url(&sandbox, "alice");
    assert_ne!(new_url, alice_url);
    assert_ne!(web_pid(&sandbox), running, "a changed secret restarts");
    let (_, served) = http_get(&format!(
        "{}/",
        component(&sandbox.status("alice"), "web")["url"]
            .as_str()
            .unwrap()
    ));
    assert_eq!(served, new_url);
    assert_eq!(
        sql(&new_url, "select body from notes").unwrap()[0][0].as_deref(),
        Some("still connects")
    );
    sql(&alice_url, "select 1").expect_err("the old password no longer works");
}
