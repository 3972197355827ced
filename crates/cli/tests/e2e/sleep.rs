//! Biomes that cost nothing while idle: the gateway routes `<service>.<biome>.<project>.localhost`
//! to a biome's service, an idle biome sleeps (no process left), and a request through the
//! gateway wakes it and is answered once it is healthy; `sandpit sleep` / `wake` by hand.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{component, Sandbox};

/// A job that counts its runs in the data directory, a service that depends on it and answers
/// with the count, and a second service it calls through `SANDPIT_URL_API`. The web service
/// refuses to start while `$SANDPIT_DATA_DIR/broken` exists (a biome that cannot wake).
fn napper(idle_timeout: &str) -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            &format!(
                r#"
[project]
name = "napper"

[biomes]
idle_timeout = "{idle_timeout}"

[jobs.prepare]
path = "prepare"
run = "echo run >> \"$SANDPIT_DATA_DIR/prepare-runs\""

[services.api]
path = "api"
run = "python3 -u api.py"
health = "/health"

[services.web]
path = "web"
run = "python3 -u web.py"
health = "/health"
start_timeout = 3
depends_on = ["prepare", "api"]
"#
            ),
        ),
        ("prepare/README", "the job's only file\n"),
        (
            "api/api.py",
            r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"api says hi"
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
        (
            "web/web.py",
            r#"import http.server, os, sys, urllib.request
data = os.environ["SANDPIT_DATA_DIR"]
if os.path.exists(os.path.join(data, "broken")):
    print("refusing to start: broken", flush=True); sys.exit(3)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/api":
            body = urllib.request.urlopen(os.environ["SANDPIT_URL_API"] + "/").read()
        else:
            runs = open(os.path.join(data, "prepare-runs")).read().count("run")
            body = ("web %s runs=%d public=%s fwd=%s" % (os.environ["SANDPIT_BIOME"], runs,
                    os.environ.get("SANDPIT_PUBLIC_URL_WEB"), self.headers.get("X-Forwarded-Host"))).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ])
}

/// The gateway's port, from a public URL (`http://web.alice.napper.localhost:41234`).
fn gateway_port(public_url: &str) -> u16 {
    public_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {public_url}"))
}

/// GET `path` through the gateway with `host` as the Host header (resolved to loopback, as a
/// browser resolves `*.localhost`); (status, body). Long timeout: the request may be held while
/// the biome wakes.
fn through_gateway(host: &str, port: u16, path: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("http://{host}:{port}{path}");
    let response = client
        .get(&url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

fn is_sleeping(status: &Value) -> bool {
    status["state"] == "sleeping"
}

#[test]
fn an_idle_biome_sleeps_with_no_process_and_a_request_through_the_gateway_wakes_it() {
    let sandbox = napper("1s");
    let up = sandbox.json(&["up", "alice"]);
    let public = component(&up, "web")["public_url"]
        .as_str()
        .unwrap_or_else(|| panic!("web has a public URL: {up:#}"))
        .to_owned();
    assert!(
        public.starts_with("http://web.alice.napper.localhost:"),
        "{public}"
    );
    let port = gateway_port(&public);
    let (code, body) = through_gateway("web.alice.napper.localhost", port, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("web alice runs=1"), "{body}");
    assert!(body.contains(&format!("public={public}")), "{body}");
    assert!(
        body.contains(&format!("fwd=web.alice.napper.localhost:{port}")),
        "{body}"
    );

    // Idle for its timeout: asleep, and nothing of it runs.
    let asleep = sandbox.wait_for_status("alice", Duration::from_secs(30), is_sleeping);
    assert!(asleep["sleeping_since"].is_string(), "{asleep:#}");
    assert_eq!(sandbox.component_processes(), Vec::<u32>::new());
    let listed = sandbox.json(&["ls"]);
    assert_eq!(listed["biomes"][0]["state"], "sleeping", "{listed:#}");

    // The next request is held until the biome is healthy again, then answered; the job that
    // succeeded at this commit did not run again.
    let (code, body) = through_gateway("web.alice.napper.localhost", port, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("web alice runs=1"), "{body}");
    let awake = sandbox.status("alice");
    assert_eq!(awake["state"], "healthy", "{awake:#}");
    assert!(awake["sleeping_since"].is_null(), "{awake:#}");
    // A sibling reached through SANDPIT_URL_* was woken with it.
    let (code, body) = through_gateway("web.alice.napper.localhost", port, "/api");
    assert_eq!((code, body.as_str()), (200, "api says hi"));
    let (code, body) = through_gateway("api.alice.napper.localhost", port, "/");
    assert_eq!((code, body.as_str()), (200, "api says hi"));

    // Unknown hosts get a 404 that lists the valid ones.
    let (code, body) = through_gateway("db.alice.napper.localhost", port, "/");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("has no service `db`"), "{body}");
    assert!(body.contains("web.alice.napper.localhost"), "{body}");
    assert!(body.contains("api.alice.napper.localhost"), "{body}");
    let (code, body) = through_gateway("web.bob.napper.localhost", port, "/");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no biome or environment `bob`"), "{body}");

    // A biome that cannot wake answers 503 with the reason.
    let asleep = sandbox.wait_for_status("alice", Duration::from_secs(30), is_sleeping);
    let data_dir = asleep["data_dir"].as_str().unwrap();
    fs::write(format!("{data_dir}/broken"), "yes").unwrap();
    let (code, body) = through_gateway("web.alice.napper.localhost", port, "/");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("could not wake"), "{body}");
    assert!(body.contains("web"), "names the component: {body}");
}

#[test]
fn sleep_and_wake_by_hand_and_bases_never_sleep_unless_they_opt_in() {
    let sandbox = napper("1h");
    sandbox.json(&["up", "alice"]);
    let asleep = sandbox.json(&["sleep", "alice"]);
    assert_eq!(asleep["state"], "sleeping", "{asleep:#}");
    assert_eq!(sandbox.component_processes(), Vec::<u32>::new());
    let text = sandbox.ok(&["status", "alice"]);
    assert!(text.contains("sleeping since"), "{text}");
    assert!(text.contains("sleeps after 1h"), "{text}");
    // Asleep twice is still asleep.
    sandbox.json(&["sleep", "alice"]);
    let awake = sandbox.json(&["wake", "alice"]);
    assert_eq!(awake["state"], "healthy", "{awake:#}");
    assert!(!sandbox.component_processes().is_empty());
    let runs = fs::read_to_string(format!(
        "{}/prepare-runs",
        awake["data_dir"].as_str().unwrap()
    ))
    .unwrap();
    assert_eq!(runs.lines().count(), 1, "the job ran once: {runs}");
    // `up` of a sleeping biome wakes it too.
    sandbox.json(&["sleep", "alice"]);
    let up = sandbox.json(&["up", "alice"]);
    assert_eq!(up["state"], "healthy", "{up:#}");

    sandbox.json(&["deploy", "dev"]);
    let refused = sandbox.fails(&["sleep", "dev"], 1);
    assert!(refused.contains("never sleeps"), "{refused}");
    assert!(refused.contains("idle_timeout"), "{refused}");
    assert_eq!(sandbox.status("dev")["state"], "healthy");
}
