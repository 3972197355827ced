//! `sandpit server` as a real process: it says where it listens once it is ready, writes the
//! first admin token to a private file and never prints it; `sandpit login` and `sandpit
//! tokens` talk to it; a revoked token is refused on its next request; https with a
//! certificate made by rcgen; SIGTERM stops it gracefully.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::Sandbox;

/// How long the server may take to say it listens (it starts the daemon first).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `sandpit server`, stopped (SIGTERM, then waited for) when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    /// Every line it printed on stdout, as they come.
    stdout: mpsc::Receiver<String>,
    printed: Vec<String>,
}

impl Server {
    pub(crate) fn start(sandbox: &Sandbox, extra: &[&str]) -> Server {
        let mut args = vec!["server", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = sandbox
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sandpit server starts");
        let (send, stdout) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            stdout,
            printed: Vec::new(),
        };
        // Readiness is the line saying where it listens; nothing sleeps.
        loop {
            let line = match server.stdout.recv_timeout(READY_TIMEOUT) {
                Ok(line) => line,
                Err(_) => {
                    let output = server.child.take().unwrap().wait_with_output().unwrap();
                    panic!(
                        "the server never said where it listens; printed {:?}; stderr:\n{}",
                        server.printed,
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            };
            server.printed.push(line.clone());
            if let Some(url) = line.strip_prefix("listening on ") {
                server.url = url.trim().to_owned();
                return server;
            }
        }
    }

    /// SIGKILL, as a crash or an OOM kill would stop it; waits until it is gone.
    pub(crate) fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; whether it exited 0 within `limit` (killed otherwise, so a test never hangs).
    pub(crate) fn stop_within(mut self, limit: Duration) -> bool {
        let mut child = self.child.take().unwrap();
        terminate(&child);
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; returns whether it exited 0, and everything it printed (stdout, stderr).
    pub(crate) fn stop(mut self) -> (bool, String, String) {
        let child = self.child.take().unwrap();
        terminate(&child);
        let output = child.wait_with_output().unwrap();
        self.printed.extend(self.stdout.try_iter());
        (
            output.status.success(),
            self.printed.join("\n"),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn terminate(child: &Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let _ = child.wait();
        }
    }
}

/// A sandbox whose `sandpit login` keeps credentials inside it, with a project of one job.
fn sandbox() -> (Sandbox, PathBuf) {
    let mut sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            "[project]\nname = \"plane\"\n\n[jobs.hello]\npath = \"hello\"\nrun = \"echo hello\"\n",
        ),
        ("hello/README", "a job\n"),
    ]);
    let config = sandbox.home.parent().unwrap().join("config");
    sandbox
        .extra_env
        .push(("XDG_CONFIG_HOME".into(), config.display().to_string()));
    (sandbox, config.join("sandpit/credentials.json"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `sandpit ARGS` (which include `--json`), expected to succeed; its JSON.
fn json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let stdout = sandbox.ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn login_and_tokens_through_a_running_server_and_a_revoked_token_is_refused() {
    let (sandbox, credentials) = sandbox();
    let server = Server::start(&sandbox, &[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let admin_token = sandbox.home.join("server/admin-token");
    assert_eq!(mode(&admin_token), 0o600);
    assert_eq!(mode(admin_token.parent().unwrap()), 0o700);
    let admin_secret = std::fs::read_to_string(&admin_token)
        .unwrap()
        .trim()
        .to_owned();
    assert!(admin_secret.starts_with("spt_"), "{admin_secret}");
    assert!(
        server
            .printed
            .iter()
            .any(|l| l.contains(&*admin_token.to_string_lossy())),
        "the path is printed: {:?}",
        server.printed
    );

    // Logging in checks the token and stores it for the user only.
    let token_file = admin_token.display().to_string();
    let login = sandbox.ok(&[
        "login",
        "--server",
        &server.url,
        "--token-file",
        &token_file,
    ]);
    assert!(login.contains("as admin (admin)"), "{login}");
    assert_eq!(mode(&credentials), 0o600);
    assert_eq!(mode(credentials.parent().unwrap()), 0o700);
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["server"], server.url.as_str());

    // A token from stdin that the server does not know is refused, and nothing is stored over
    // the good one.
    let mut bad = sandbox
        .command(&["login", "--server", &server.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    bad.stdin
        .take()
        .unwrap()
        .write_all(format!("spt_{}\n", "Q".repeat(43)).as_bytes())
        .unwrap();
    let bad = bad.wait_with_output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid token") && stderr.contains("hint: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&"Q".repeat(43)),
        "the token is never echoed: {stderr}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&credentials).unwrap()).unwrap(),
        stored
    );

    // Tokens through the CLI, with the stored credentials.
    let created = json(
        &sandbox,
        &[
            "tokens",
            "create",
            "bob@example.com",
            "--role",
            "viewer,deployer",
            "--expires",
            "30d",
            "--json",
        ],
    );
    let bob_secret = created["secret"].as_str().unwrap().to_owned();
    let bob_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["roles"], serde_json::json!(["viewer", "deployer"]));
    let listed = json(&sandbox, &["tokens", "list", "--json"]);
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{listed}");
    assert!(!listed.to_string().contains(&bob_secret));
    let table = sandbox.ok(&["tokens", "list"]);
    assert!(
        table.contains(&bob_id) && table.contains("viewer,deployer"),
        "{table}"
    );

    // Bob is not an admin: the refusal names the role, as a local error would be printed.
    let refused = sandbox.fails(&["--token", &bob_secret, "tokens", "list"], 1);
    assert!(
        refused.contains("error: this needs the `admin` role; your token has viewer, deployer"),
        "{refused}"
    );
    let as_json = sandbox.run(&["--token", &bob_secret, "tokens", "list", "--json"]);
    let as_json: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(as_json["error"]["code"], "forbidden");

    let revoked = sandbox.ok(&["tokens", "revoke", &bob_id]);
    assert!(revoked.contains(&format!("revoked {bob_id}")), "{revoked}");
    let after = sandbox.fails(&["--token", &bob_secret, "tokens", "list"], 1);
    assert!(after.contains("revoked token"), "{after}");
    assert!(
        after.contains("hint: log in again with `sandpit login"),
        "{after}"
    );
    let twice = sandbox.fails(&["tokens", "revoke", &bob_id], 1);
    assert!(twice.contains("already revoked"), "{twice}");

    // The metrics count requests by route, and the biomes of the daemon the server started.
    sandbox.ok(&["up", "alice"]);
    let (status, metrics) = crate::harness::http_get(&format!("{}/metrics", server.url));
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sandpit_biomes{state=") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("sandpit_server_requests_total{route=\"/api/v1/tokens/{id}\",method=\"DELETE\",status=\"200\"} 1"),
        "{metrics}"
    );

    // The port in use is refused; so is an address that is not one.
    let port_taken = sandbox.fails(
        &[
            "server",
            "--listen",
            server.url.trim_start_matches("http://"),
        ],
        1,
    );
    assert!(
        port_taken.contains("cannot listen on") && port_taken.contains("hint: "),
        "{port_taken}"
    );
    let malformed = sandbox.fails(&["server", "--listen", "localhost"], 2);
    assert!(malformed.contains("--listen"), "{malformed}");

    let (clean, stdout, stderr) = server.stop();
    assert!(clean, "SIGTERM stops it gracefully; stderr:\n{stderr}");
    for secret in [&admin_secret, &bob_secret] {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret was printed"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&admin_token).unwrap().trim(),
        admin_secret
    );

    // The next start keeps the admin token and says so.
    let again = Server::start(&sandbox, &[]);
    assert!(
        again
            .printed
            .iter()
            .any(|l| l.contains("from an earlier start")),
        "{:?}",
        again.printed
    );
    assert_eq!(
        std::fs::read_to_string(&admin_token).unwrap().trim(),
        admin_secret
    );
}

#[test]
fn https_with_a_certificate_clients_are_told_to_trust() {
    let (mut sandbox, _credentials) = sandbox();
    let dir = sandbox.home.parent().unwrap().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let server = Server::start(
        &sandbox,
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let token_file = sandbox
        .home
        .join("server/admin-token")
        .display()
        .to_string();

    // Without the authority the certificate is not trusted.
    let untrusted = sandbox.fails(
        &[
            "login",
            "--server",
            &server.url,
            "--token-file",
            &token_file,
        ],
        1,
    );
    assert!(
        untrusted.contains("cannot reach the control plane"),
        "{untrusted}"
    );

    sandbox
        .extra_env
        .push(("SANDPIT_CA_CERT".into(), cert.display().to_string()));
    let login = sandbox.ok(&[
        "login",
        "--server",
        &server.url,
        "--token-file",
        &token_file,
    ]);
    assert!(login.contains("as admin"), "{login}");
    let listed = json(&sandbox, &["tokens", "list", "--json"]);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);

    // Plain HTTP to the https port gets no answer.
    let plain = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let http_url = server.url.replacen("https://", "http://", 1);
    assert!(plain.get(format!("{http_url}/healthz")).send().is_err());
    // A client trusting the certificate gets its answer with a request id.
    let trusting = reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = trusting
        .get(format!("{}/healthz", server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));

    let (clean, _, stderr) = server.stop();
    assert!(clean, "{stderr}");
}
