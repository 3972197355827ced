//! The control plane's API under load: p50/p99 of `GET …/status/{biome}` and `GET …/biomes`
//! (`ls`) from 50 concurrent clients, against `/healthz` under the same load as the baseline;
//! then `ls` of a project with many biomes (1,000 by default), timed by the server itself (its
//! request-duration histogram's sum and count over sequential requests), against a goal of
//! 50 ms.
//!
//! The biomes are the cheapest the daemon accepts: a project of one job (`true`), brought up
//! again and again under new names, a few at a time.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Concurrent clients of the load test.
const CLIENTS: usize = 50;
/// Requests each client sends per route.
const REQUESTS_PER_CLIENT: usize = 40;
/// Sequential `ls` requests the server-side time is averaged over.
const SEQUENTIAL: usize = 20;
/// What a listing of 1,000 biomes should take on the server.
const LS_GOAL: Duration = Duration::from_millis(50);
/// `up`s run at once while making biomes.
const PARALLEL_UPS: usize = 4;

const PROJECT: &str = "fleet";

/// A running `sandpit server`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

pub fn run(sandpit: &Path, scratch: &Path, biomes: usize) -> anyhow::Result<()> {
    println!("\n== server: the API under {CLIENTS} concurrent clients, and ls of {biomes} biomes");
    let root = scratch.join("server");
    let repo = root.join("repo");
    let home = root.join("home");
    std::fs::create_dir_all(repo.join("hello"))?;
    std::fs::write(
        repo.join("sandpit.toml"),
        format!("[project]\nname = \"{PROJECT}\"\n\n[environments.dev]\nbiomes = true\n\n[jobs.hello]\npath = \"hello\"\nrun = \"true\"\n"),
    )?;
    std::fs::write(repo.join("hello/README"), "a job\n")?;
    crate::git(&repo, &["-c", "init.defaultBranch=main", "init", "-q"])?;
    crate::git(&repo, &["add", "-A"])?;
    crate::git(&repo, &["commit", "-q", "-m", "fleet"])?;
    let origin = root.join("origin.git");
    crate::run(
        Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(&origin),
    )?;
    let origin_url = format!("file://{}", origin.display());
    crate::git(&repo, &["push", "-q", &origin_url, "main"])?;

    let sandpit_cmd = |args: &[&str]| {
        let mut command = Command::new(sandpit);
        command
            .args(args)
            .current_dir(&repo)
            .env("SANDPIT_HOME", &home)
            .env_remove("SANDPIT_SERVER")
            .env_remove("SANDPIT_TOKEN");
        command
    };
    let server = start(sandpit_cmd(&["server", "--listen", "127.0.0.1:0"]))?;
    let admin = std::fs::read_to_string(home.join("server/admin-token"))?
        .trim()
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    runtime.block_on(register(&client, &server.url, &admin, &origin_url))?;

    let started = Instant::now();
    bring_up(&sandpit_cmd, 1, 1)?;
    let base = format!("{}/api/v1/projects/{PROJECT}", server.url);
    let routes = [
        ("GET /healthz (baseline)", format!("{}/healthz", server.url)),
        ("GET …/status/b0001", format!("{base}/status/b0001")),
        ("GET …/biomes (ls, 1 biome)", format!("{base}/biomes")),
    ];
    let loads = runtime.block_on(load_all(&client, &admin, &routes))?;
    print_loads(&loads);

    bring_up(&sandpit_cmd, 2, biomes)?;
    println!(
        "made {biomes} biomes (a one-job project brought up under new names) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let ls = format!("{base}/biomes");
    let (client_side, server_side, listed) =
        runtime.block_on(sequential_ls(&client, &server.url, &admin, &ls))?;
    println!(
        "ls of {listed} biomes, {SEQUENTIAL} sequential requests: server-side mean {:.1} ms (goal <= {} ms: {}), client-side p50 {:.1} ms",
        ms(server_side),
        LS_GOAL.as_millis(),
        if server_side <= LS_GOAL { "met" } else { "MISSED" },
        ms(client_side),
    );
    let loads = runtime.block_on(load_all(
        &client,
        &admin,
        &[
            routes[0].clone(),
            ("GET …/biomes (ls, all biomes)", format!("{base}/biomes")),
        ],
    ))?;
    print_loads(&loads);
    drop(server);
    let _ = sandpit_cmd(&["daemon", "stop"]).output();
    Ok(())
}

/// Starts the server and waits for the line saying where it listens.
fn start(mut command: Command) -> anyhow::Result<Server> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start sandpit server")?;
    let stdout = child.stdout.take().expect("piped");
    let mut server = Server {
        child,
        url: String::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("listening on ") {
            server.url = url.trim().to_owned();
            return Ok(server);
        }
    }
    bail!("sandpit server ended without saying where it listens")
}

async fn register(
    client: &reqwest::Client,
    server: &str,
    admin: &str,
    origin: &str,
) -> anyhow::Result<()> {
    let body = serde_json::json!({"name": PROJECT, "git": origin, "branch": "main"});
    let response = client
        .post(format!("{server}/api/v1/projects"))
        .bearer_auth(admin)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "registering the project answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// `up b<from>` … `up b<to>` on this machine, a few at a time.
fn bring_up(
    sandpit_cmd: &(dyn Fn(&[&str]) -> Command + Sync),
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let names: Vec<String> = (from..=to).map(|i| format!("b{i:04}")).collect();
    std::thread::scope(|scope| {
        let chunks: Vec<&[String]> = names
            .chunks(names.len().div_ceil(PARALLEL_UPS).max(1))
            .collect();
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for name in chunk {
                        crate::run(&mut sandpit_cmd(&["--local", "up", name]))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("an up worker panicked")?;
        }
        Ok(())
    })
}

/// Latencies of one route under load.
struct Load {
    route: &'static str,
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

async fn load_all(
    client: &reqwest::Client,
    token: &str,
    routes: &[(&'static str, String)],
) -> anyhow::Result<Vec<Load>> {
    let mut loads = Vec::new();
    for (route, url) in routes {
        loads.push(load(client, token, route, url).await?);
    }
    Ok(loads)
}

/// `CLIENTS` tasks, each sending `REQUESTS_PER_CLIENT` requests one after the other.
async fn load(
    client: &reqwest::Client,
    token: &str,
    route: &'static str,
    url: &str,
) -> anyhow::Result<Load> {
    let url: Arc<str> = Arc::from(url);
    let token: Arc<str> = Arc::from(token);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token) = (client.clone(), Arc::clone(&url), Arc::clone(&token));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
            for _ in 0..REQUESTS_PER_CLIENT {
                let sent = Instant::now();
                let response = client.get(&*url).bearer_auth(&*token).send().await?;
                let status = response.status();
                response.bytes().await?;
                if !status.is_success() {
                    anyhow::bail!("{url} answered {status}");
                }
                latencies.push(sent.elapsed());
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Load {
        route,
        p50: at(0.50),
        p99: at(0.99),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
    })
}

fn print_loads(loads: &[Load]) {
    let baseline = &loads[0];
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10}",
        "route", "p50 ms", "p99 ms", "req/s", "p50 ratio"
    );
    for load in loads {
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.0} {:>9.1}x",
            load.route,
            ms(load.p50),
            ms(load.p99),
            load.per_second,
            load.p50.as_secs_f64() / baseline.p50.as_secs_f64()
        );
    }
}

/// `SEQUENTIAL` requests to `url`: the client's median, the server's own mean (from its
/// histogram's sum and count before and after), and how many biomes the listing had.
async fn sequential_ls(
    client: &reqwest::Client,
    server: &str,
    token: &str,
    url: &str,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let route = "/api/v1/projects/{project}/biomes";
    let before = histogram(client, server, route).await?;
    let mut latencies = Vec::new();
    let mut listed = 0;
    for _ in 0..SEQUENTIAL {
        let sent = Instant::now();
        let text = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        latencies.push(sent.elapsed());
        let listing: serde_json::Value = serde_json::from_str(&text)?;
        listed = listing["biomes"].as_array().map_or(0, Vec::len);
    }
    let after = histogram(client, server, route).await?;
    let count = after.1 - before.1;
    let server_side = Duration::from_secs_f64((after.0 - before.0) / count.max(1.0));
    Ok((crate::median(latencies), server_side, listed))
}

/// The sum (seconds) and count of the server's request-duration histogram for `route`.
async fn histogram(
    client: &reqwest::Client,
    server: &str,
    route: &str,
) -> anyhow::Result<(f64, f64)> {
    let text = client
        .get(format!("{server}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let value = |series: &str| -> f64 {
        let prefix =
            format!("sandpit_server_request_duration_seconds_{series}{{route=\"{route}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((value("sum"), value("count")))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
