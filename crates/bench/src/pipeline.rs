//! A pipeline's start: a real `sandpit server` over a fresh home, a small project pushed to a
//! bare repository and registered, then `POST /api/v1/projects/bench/pipelines` timed to the
//! pipeline's `started` event (`started_at`, same machine clock), with the part spent answering
//! the POST (the request fetches the mirror and checks the commit's `sandpit.toml`) apart.
//! Baseline: the bare `git fetch` into the server's mirror that the request performs.
//!
//! Then webhooks: [`HOOK_RUNS`] GitLab push deliveries (`POST /hooks/gitlab/bench`, each its
//! own event UUID), each timed from sending to its pipeline's `started` event, median and p99
//! against the goal of 100 ms, with the part spent answering the delivery apart. Each pipeline
//! finishes before the next delivery, so the figure is the path, not a queue.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::{git, median, run, RUNS};

const DEFINITION: &str = r#"[project]
name = "bench"

[environments.dev]

[services.web]
path = "web"
run = "python3 server.py"
health = "/"
start_timeout = 10
"#;

const SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// How long one pipeline may take to run to its end before the benchmark gives up.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run_all(sandpit: &Path, scratch: &Path) -> anyhow::Result<()> {
    let scratch = scratch.join("pipeline");
    let home = scratch.join("home");
    let repo = scratch.join("repo");
    let remote = scratch.join("remote.git");
    std::fs::create_dir_all(repo.join("web"))?;
    std::fs::write(repo.join("sandpit.toml"), DEFINITION)?;
    std::fs::write(repo.join("web/server.py"), SERVER)?;
    git(&repo, &["-c", "init.defaultBranch=main", "init", "-q"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "bench"])?;
    git(&scratch, &["init", "-q", "--bare", "remote.git"])?;
    git(
        &repo,
        &["push", "-q", remote.to_str().unwrap_or_default(), "main"],
    )?;

    let mut server = Command::new(sandpit)
        .args(["server", "--listen", "127.0.0.1:0"])
        .env("SANDPIT_HOME", &home)
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .env("SANDPIT_STOP_GRACE_MS", "2000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `sandpit server`")?;
    let result = measure(&mut server, &home, &remote);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
    let stopped = run(Command::new(sandpit)
        .args(["daemon", "stop"])
        .env("SANDPIT_HOME", &home));
    let report = result?;
    stopped?;
    report.print();
    Ok(())
}

/// How many webhook deliveries are timed.
const HOOK_RUNS: usize = 100;
/// What a delivery → started p99 should stay under.
const HOOK_GOAL: Duration = Duration::from_millis(100);
const HOOK_SECRET: &str = "bench-webhook-secret-0123456789";

struct Report {
    started: Vec<Duration>,
    answered: Vec<Duration>,
    fetch: Vec<Duration>,
    hook_started: Vec<Duration>,
    hook_answered: Vec<Duration>,
}

/// The `share` quantile of `samples` (nearest rank).
fn quantile(mut samples: Vec<Duration>, share: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64) * share).ceil() as usize;
    samples
        .get(rank.saturating_sub(1).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

impl Report {
    fn print(self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let started = median(self.started);
        let answered = median(self.answered);
        let fetch = median(self.fetch);
        println!("pipeline: request → `started` ({RUNS} runs, median):");
        println!(
            "  POST → pipeline started                {:>8.1} ms",
            ms(started)
        );
        println!(
            "    of which the POST's answer           {:>8.1} ms   (fetch, resolve, check sandpit.toml, record)",
            ms(answered)
        );
        println!(
            "    then the queue's worker picks it up  {:>8.1} ms",
            ms(started.saturating_sub(answered))
        );
        println!(
            "  baseline: bare `git fetch` of the mirror {:>6.1} ms   (ratio {:.1}×)",
            ms(fetch),
            started.as_secs_f64() / fetch.as_secs_f64().max(1e-9)
        );
        let p50 = quantile(self.hook_started.clone(), 0.5);
        let p99 = quantile(self.hook_started, 0.99);
        println!("webhook: GitLab push delivery → pipeline `started` ({HOOK_RUNS} deliveries):");
        println!(
            "  median {:>8.1} ms   p99 {:>8.1} ms   goal ≤ {} ms: {}",
            ms(p50),
            ms(p99),
            HOOK_GOAL.as_millis(),
            if p99 <= HOOK_GOAL { "met" } else { "NOT met" }
        );
        println!(
            "    of which the delivery's answer: median {:>6.1} ms   p99 {:>6.1} ms",
            ms(quantile(self.hook_answered.clone(), 0.5)),
            ms(quantile(self.hook_answered, 0.99))
        );
        println!(
            "  baseline: `POST …/pipelines` → started (median above) {:>6.1} ms   (ratio {:.2}×)",
            ms(started),
            p50.as_secs_f64() / started.as_secs_f64().max(1e-9)
        );
    }
}

fn measure(server: &mut Child, home: &Path, remote: &Path) -> anyhow::Result<Report> {
    let url = listening_on(server)?;
    let token = std::fs::read_to_string(home.join("server/admin-token"))
        .context("the server wrote no admin token")?
        .trim()
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    let api = Api { client, url, token };
    let git_url = format!("file://{}", remote.display());
    runtime
        .block_on(async {
            let project = api
                .post(
                    "/api/v1/projects",
                    &json!({"name": "bench", "git": git_url, "webhook_secret": HOOK_SECRET}),
                )
                .await?;
            let head = project["head"]
                .as_str()
                .context("a project without a head")?
                .to_owned();
            let mut started = Vec::new();
            let mut answered = Vec::new();
            for _ in 0..RUNS {
                let sent_at = SystemTime::now();
                let sent = Instant::now();
                let queued = api
                    .post("/api/v1/projects/bench/pipelines", &json!({}))
                    .await?;
                answered.push(sent.elapsed());
                let id = queued["id"].as_i64().context("a pipeline without an id")?;
                let finished = api.wait_until_finished(id).await?;
                let at = finished["started_at"]
                    .as_str()
                    .context("a finished pipeline that never started")?;
                let at = humantime::parse_rfc3339_weak(at)?;
                started.push(at.duration_since(sent_at).unwrap_or_default());
            }
            let push = sandpit_ops::forge::samples::gitlab_push("main", &head);
            let mut hook_started = Vec::new();
            let mut hook_answered = Vec::new();
            for run in 0..HOOK_RUNS {
                let sent_at = SystemTime::now();
                let sent = Instant::now();
                let response = api
                    .client
                    .post(format!("{}/hooks/gitlab/bench", api.url))
                    .header("content-type", "application/json")
                    .header("X-Gitlab-Token", HOOK_SECRET)
                    .header("X-Gitlab-Event", "Push Hook")
                    .header("X-Gitlab-Event-UUID", format!("bench-{run}"))
                    .body(push.clone())
                    .send()
                    .await?;
                let status = response.status();
                let answer: Value = serde_json::from_slice(&response.bytes().await?)?;
                hook_answered.push(sent.elapsed());
                if status.as_u16() != 202 {
                    bail!("a delivery was answered {status}: {answer}");
                }
                let id = answer["pipeline"]
                    .as_i64()
                    .context("a delivery that started nothing")?;
                let finished = api.wait_until_finished(id).await?;
                let at = finished["started_at"]
                    .as_str()
                    .context("a finished pipeline that never started")?;
                let at = humantime::parse_rfc3339_weak(at)?;
                hook_started.push(at.duration_since(sent_at).unwrap_or_default());
            }
            anyhow::Ok((started, answered, hook_started, hook_answered))
        })
        .map(
            |(started, answered, hook_started, hook_answered)| -> anyhow::Result<Report> {
                let mirror = home.join("server/mirrors/bench.git");
                let mut fetch = Vec::new();
                for _ in 0..RUNS {
                    let start = Instant::now();
                    run(Command::new("git").arg("--git-dir").arg(&mirror).args([
                        "fetch",
                        "-q",
                        "--prune",
                        &git_url,
                        "+refs/heads/*:refs/heads/*",
                    ]))?;
                    fetch.push(start.elapsed());
                }
                Ok(Report {
                    started,
                    answered,
                    fetch,
                    hook_started,
                    hook_answered,
                })
            },
        )?
}

/// The URL the server prints once it is ready.
fn listening_on(server: &mut Child) -> anyhow::Result<String> {
    let stdout = server.stdout.take().context("the server's stdout")?;
    for line in BufReader::new(stdout).lines() {
        if let Some(url) = line?.strip_prefix("listening on ") {
            return Ok(url.trim().to_owned());
        }
    }
    bail!("the server exited without saying where it listens")
}

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(request).await
    }

    /// Polls pipeline `id` until it is neither queued nor running.
    async fn wait_until_finished(&self, id: i64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + PIPELINE_TIMEOUT;
        loop {
            let request = self
                .client
                .get(format!("{}/api/v1/pipelines/{id}", self.url));
            let pipeline = self.send(request).await?;
            if !matches!(pipeline["state"].as_str(), Some("queued" | "running")) {
                return Ok(pipeline);
            }
            if Instant::now() > deadline {
                bail!("pipeline #{id} did not finish: {pipeline}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
