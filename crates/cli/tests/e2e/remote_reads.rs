//! The read verbs through a control plane: one `sandpit server`, the project pushed to a bare
//! repository and registered, a biome brought up on the server's machine (the same
//! `SANDPIT_HOME`) — then `status`, `history`, `trace`, `artifacts` and `logs` print the same
//! text and `--json` remotely as locally, a viewer's token suffices, no token is 401 with the
//! login hint, unknown names are 404 in the local wording, `logs -f` follows by polling, and
//! `exec` says it is local only.

use std::io::{BufRead as _, BufReader};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{component, Sandbox};
use crate::server::Server;

/// A service that says so in its log each time it answers a request (so its log only changes
/// when the test asks).
const PROJECT: &[(&str, &str)] = &[
    (
        "sandpit.toml",
        "[project]\nname = \"plane\"\n\n[environments.dev]\nbiomes = true\n\n[services.web]\npath = \"web\"\nrun = \"python3 -u server.py\"\n",
    ),
    (
        "web/server.py",
        r#"import http.server, os
print("web ready", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/":  # the supervisor's health checks would make the log move by itself
            print("served", self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    ),
];

fn post_as(token: &str, url: &str, body: &Value) -> (u16, Value) {
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

/// `text` of a read with what its biome costs taken out: CPU time and memory move between two
/// reads, so the local and the remote answer are compared without them (and checked apart).
fn steady(output: &Output) -> (Option<i32>, String, String) {
    let (code, stdout, stderr) = text(output);
    let stdout = match serde_json::from_str::<Value>(&stdout) {
        Ok(Value::Object(mut document)) => {
            document.remove("cost");
            serde_json::to_string_pretty(&document).unwrap()
        }
        _ => stdout
            .lines()
            .filter(|line| !line.starts_with("cost: "))
            .map(|line| format!("{line}\n"))
            .collect(),
    };
    (code, stdout, stderr)
}

fn text(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_read_verbs_answer_through_a_server_as_on_its_machine() {
    let sandbox = Sandbox::with_files(PROJECT);
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    let origin = sandbox.home.parent().unwrap().join("origin.git");
    let made = std::process::Command::new("git")
        .args(["init", "--bare", "-q"])
        .arg(&origin)
        .status()
        .unwrap();
    assert!(made.success());
    let origin_url = format!("file://{}", origin.display());
    sandbox.git(&["push", "-q", &origin_url, "main"]);

    let server = Server::start(&sandbox, &[]);
    let admin = std::fs::read_to_string(sandbox.home.join("server/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let (status, project) = post_as(
        &admin,
        &format!("{}/api/v1/projects", server.url),
        &json!({"name": "plane", "git": origin_url, "branch": "main"}),
    );
    assert_eq!(status, 201, "{project}");
    let created = sandbox.json(&[
        "--server",
        &server.url,
        "--token",
        &admin,
        "tokens",
        "create",
        "vera@example.com",
        "--role",
        "viewer",
    ]);
    let viewer = created["secret"].as_str().unwrap().to_owned();

    // Brought up on the server's machine, as this machine's checkout.
    let up = sandbox.json(&["--local", "up", "alice"]);
    assert_eq!(component(&up, "web")["state"], "healthy", "{up}");
    sandbox.ok(&["--local", "deploy", "dev"]);
    sandbox.ok(&["--local", "config", "set", "alice", "GREETING=hello"]);
    sandbox.ok(&[
        "--local",
        "config",
        "set",
        "dev",
        "--secret",
        "API_KEY=s3cr3t-value",
    ]);
    let up = sandbox.json(&["--local", "status", "alice"]);
    let web_url = component(&up, "web")["url"].as_str().unwrap().to_owned();
    let (answered, _) = crate::harness::http_get(&format!("{web_url}/first"));
    assert_eq!(answered, 200);

    let local = |args: &[&str]| {
        let mut all = vec!["--local"];
        all.extend_from_slice(args);
        sandbox.run(&all)
    };
    let remote_with = |token: &str, args: &[&str]| {
        let mut all = vec!["--server", server.url.as_str(), "--token", token];
        all.extend_from_slice(args);
        sandbox.run(&all)
    };
    let remote = |args: &[&str]| remote_with(&viewer, args);

    let short = &sha[..12];
    let artifact = up["components"][0]["artifact"].as_str().unwrap().to_owned();
    let reads: Vec<Vec<&str>> = vec![
        vec!["status", "alice"],
        vec!["status", "dev"],
        vec!["history", "alice"],
        vec!["history", "dev"],
        vec!["trace", short],
        vec!["trace", &artifact],
        vec!["artifacts"],
        vec!["artifacts", "--env", "dev"],
        vec!["logs", "alice"],
        vec!["logs", "alice", "web", "--tail", "1"],
        vec!["logs", "alice", "--since", "1h"],
        vec!["config", "alice"],
        vec!["config", "dev"],
    ];
    for read in &reads {
        for json in [false, true] {
            let mut args = read.clone();
            if json {
                args.push("--json");
            }
            let (here, there) = (steady(&local(&args)), steady(&remote(&args)));
            assert_eq!(here.0, Some(0), "local {args:?}: {here:?}");
            assert_eq!(there, here, "{args:?}: remote, then local");
        }
    }
    // What alice costs, through the server as here: its service and the service's log writer;
    // no database and no model endpoint, so those are unknown.
    let remote_json = |args: &[&str]| -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_slice(&remote(&args).stdout).unwrap()
    };
    let listing = remote_json(&["ls"]);
    let listed = listing["biomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "alice")
        .unwrap_or_else(|| panic!("{listing:#}"));
    for cost in [&listed["cost"], &remote_json(&["status", "alice"])["cost"]] {
        assert!(cost["processes"].as_u64().unwrap() >= 2, "{cost:#}");
        assert!(cost["rss_bytes"].as_u64().unwrap() > 0, "{cost:#}");
        assert_eq!(cost["database_bytes"], Value::Null, "{cost:#}");
        assert_eq!(cost["model_bytes"], Value::Null, "{cost:#}");
    }
    let table = text(&remote(&["ls"])).1;
    let row = table.lines().find(|l| l.starts_with("alice")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[cells.len() - 2..],
        ["-", "-"],
        "unknown sizes are `-`: {table}"
    );
    // They say something: what ran, where.
    let status = text(&remote(&["status", "alice"])).1;
    assert!(
        status.contains("biome alice") && status.contains("web"),
        "{status}"
    );
    let logs = text(&remote(&["logs", "alice"])).1;
    assert!(
        logs.contains("web ready") && logs.contains("served /first"),
        "{logs}"
    );
    let traced: Value =
        serde_json::from_str(&text(&remote(&["trace", short, "--json"])).1).unwrap();
    assert!(
        !traced["running"].as_array().unwrap().is_empty(),
        "{traced}"
    );

    // Unknown names: the local wording, as 404s.
    for (args, wording) in [
        (vec!["status", "alicia"], "did you mean `alice`?"),
        // The default biome is named by the CLI after the checkout's branch, as locally.
        (
            vec!["status"],
            "there is no biome `main` in project `plane`",
        ),
        (
            vec!["history", "nowhere"],
            "nothing has ever been deployed to `nowhere`",
        ),
        (
            vec!["logs", "alice", "db"],
            "biome `alice` has no component `db`",
        ),
    ] {
        let (here, there) = (text(&local(&args)), text(&remote(&args)));
        assert_eq!(there, here, "{args:?}: remote, then local");
        assert_eq!(there.0, Some(1));
        assert!(there.2.contains(wording), "{args:?}: {}", there.2);
        let mut as_json = args.clone();
        as_json.push("--json");
        let answer: Value = serde_json::from_slice(&remote(&as_json).stdout).unwrap();
        assert_eq!(answer["error"]["code"], "not_found", "{answer}");
    }
    let unknown_project = text(&remote(&["--project", "elsewhere", "status", "alice"]));
    assert_eq!(unknown_project.0, Some(1));
    assert!(
        unknown_project.2.contains("`elsewhere`"),
        "{}",
        unknown_project.2
    );

    // Without a token: 401, with how to log in.
    let anonymous = sandbox
        .command(&["--server", &server.url, "status", "alice"])
        .output()
        .unwrap();
    let anonymous = text(&anonymous);
    assert_eq!(anonymous.0, Some(1));
    assert!(
        anonymous.2.contains("hint: ") && anonymous.2.contains("sandpit login"),
        "{}",
        anonymous.2
    );
    let unknown_token = text(&remote_with(
        &format!("spt_{}", "Q".repeat(43)),
        &["history", "dev"],
    ));
    assert!(
        unknown_token.2.contains("invalid token"),
        "{}",
        unknown_token.2
    );
    assert!(
        unknown_token.2.contains("sandpit login --server"),
        "{}",
        unknown_token.2
    );

    // Secrets are never sent; exec runs here only.
    for args in [vec!["config", "dev"], vec!["config", "dev", "--json"]] {
        let listed = text(&remote(&args)).1;
        assert!(
            listed.contains("API_KEY") && !listed.contains("s3cr3t"),
            "{listed}"
        );
    }
    let secrets = text(&remote(&["config", "dev", "--show-secrets"]));
    assert_eq!(secrets.0, Some(1));
    assert!(secrets.2.contains("never sends secrets"), "{}", secrets.2);
    let secrets = text(&remote(&["status", "alice", "--show-secrets"]));
    assert_eq!(secrets.0, Some(1));
    assert!(secrets.2.contains("never sends secrets"), "{}", secrets.2);
    let exec = text(&remote(&["exec", "alice", "--", "true"]));
    assert_eq!(exec.0, Some(1));
    assert!(
        exec.2.contains("`sandpit exec`") && exec.2.contains("--local"),
        "{}",
        exec.2
    );
    assert_eq!(text(&local(&["exec", "alice", "--", "true"])).0, Some(0));

    // `logs -f` through the server: what is written after it started comes by polling.
    let mut follower = sandbox
        .command(&[
            "--server",
            &server.url,
            "--token",
            &viewer,
            "logs",
            "alice",
            "web",
            "-f",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut next = || {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line came; saw {seen:?}"));
        seen.push(line.clone());
        serde_json::from_str::<Value>(&line).unwrap()["line"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The backlog first (the last of it is the first request)…
    loop {
        if next() == "served /first" {
            break;
        }
    }
    // …then what comes later, once each.
    crate::harness::http_get(&format!("{web_url}/second"));
    assert_eq!(next(), "served /second");
    crate::harness::http_get(&format!("{web_url}/third"));
    assert_eq!(next(), "served /third");
    let _ = follower.kill();
    let _ = follower.wait();
    drop(server);
}
