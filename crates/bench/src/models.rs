//! The model endpoint: sandpit's `model-server` under closed-loop concurrency next to onnxruntime
//! called directly from Python (no HTTP, the floor) and KServe's Python model server (PyPI
//! `kserve`) serving the same ONNX file with the same v2 REST requests; then cold-load time per
//! model size next to onnxruntime's `InferenceSession(...)` creation.
//!
//! Every process started here is owned by a [`Server`] guard that stops its whole process group
//! on drop, error paths included. Nothing but 127.0.0.1 is ever contacted.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sandpit_domain::ByteSize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Requests measured per concurrency level.
const REQUESTS: usize = 2_000;
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Single-row `session.run` calls timed in Python.
const DIRECT_CALLS: usize = 5_000;
/// Model sizes (MiB of weights, roughly) for cold loads, and loads per size.
const SIZES_MIB: [u32; 3] = [1, 10, 50];
const COLD_RUNS: usize = 11;

/// Feature rows of the example model (grade, depth, ...): a few plausible ones, cycled through.
const ROWS: [[f32; 5]; 4] = [
    [1.2, 0.5, 3.0, 40.0, 0.8],
    [2.4, 0.9, 2.1, 120.0, 0.3],
    [0.7, 0.2, 4.4, 15.0, 0.6],
    [3.1, 1.4, 1.2, 260.0, 0.9],
];

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_models")
}

/// The Python of the project's venv (`scripts/setup.sh` exports it), else `python3`.
// The benchmark binary has no settings module; this is its one read of the environment.
#[allow(clippy::disallowed_methods)]
fn python() -> PathBuf {
    std::env::var_os("SANDPIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

pub fn run(sandpit: &Path, example: &Path, scratch: &Path) -> anyhow::Result<()> {
    let model = example.join("models/recovery/recovery.onnx");
    let model = model
        .canonicalize()
        .with_context(|| format!("the example model {} is missing", model.display()))?;
    let scratch = scratch.join("models");
    fs::create_dir_all(&scratch)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        concurrency(sandpit, &model, &scratch).await?;
        cold_loads(sandpit, &scratch).await
    })
}

/// Only the cold loads (section `models-cold`): what a change to the load path is measured with.
pub fn run_cold_loads(sandpit: &Path, scratch: &Path) -> anyhow::Result<()> {
    let scratch = scratch.join("models");
    fs::create_dir_all(&scratch)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(cold_loads(sandpit, &scratch))
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A server process in its own process group, stopped (TERM, then KILL) when dropped.
struct Server {
    child: Child,
    label: &'static str,
    log: PathBuf,
    base: String,
}

impl Server {
    fn spawn(
        label: &'static str,
        command: &mut Command,
        log: PathBuf,
        port: u16,
    ) -> anyhow::Result<Server> {
        let out = fs::File::create(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {label}: {command:?}"))?;
        Ok(Server {
            child,
            label,
            log,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/v2/health/ready", self.base);
        loop {
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(started.elapsed());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} not ready after {timeout:?}:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Anything left in the group (the leader, or children it started) goes now.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    Ok(hex_lower(&Sha256::digest(fs::read(path)?)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A model to register: its name, the artifact (a plain .onnx file or a zip) and the ONNX file's
/// name inside it (for a plain file, its own name).
type Registered<'a> = (&'a str, &'a Path, &'a str);

/// `sandpit model-server` with `models` registered as the base's.
fn start_sandpit(
    sandpit: &Path,
    scratch: &Path,
    models: &[Registered<'_>],
) -> anyhow::Result<Server> {
    let registrations = scratch.join("registrations");
    fs::create_dir_all(&registrations)?;
    let mut entries = Vec::new();
    for (name, path, file) in models {
        let digest = sha256_file(path)?;
        entries.push(json!({
            "name": name,
            "artifact": format!("{name}-{}.zip", &digest[..40]),
            "digest": format!("sha256:{digest}"),
            "path": path,
            "file": file,
        }));
    }
    fs::write(
        registrations.join("_base.json"),
        serde_json::to_vec_pretty(&json!({ "models": entries }))?,
    )?;
    // The endpoint opens only files inside its stores: each model's directory is one.
    let mut stores: Vec<&Path> = models
        .iter()
        .filter_map(|(_, path, _)| path.parent())
        .collect();
    stores.sort();
    stores.dedup();
    let port = free_port()?;
    let home = scratch.join("home");
    fs::create_dir_all(&home)?;
    Server::spawn(
        "sandpit model-server",
        Command::new(sandpit)
            .arg("model-server")
            .args(
                stores
                    .iter()
                    .flat_map(|store| [Path::new("--store"), store]),
            )
            .args(["--port", &port.to_string()])
            .args(["--max-memory", &(2u64 << 30).to_string()])
            .args(["--max-models", "64"])
            .arg("--registrations")
            .arg(&registrations)
            .env("SANDPIT_HOME", &home),
        scratch.join("sandpit-model-server.log"),
        port,
    )
}

/// The installed version of a Python package, for labels.
fn python_package_version(package: &str) -> String {
    Command::new(python())
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{package}'))"),
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}

fn start_kserve(model: &Path, scratch: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    Server::spawn(
        "KServe model server",
        Command::new(python())
            .arg(scripts_dir().join("kserve_server.py"))
            .arg("recovery")
            .arg(model)
            .arg(port.to_string()),
        scratch.join("kserve.log"),
        port,
    )
}

// ---------------------------------------------------------------------------------------------
// Load generation

struct Stats {
    samples: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn new(mut samples: Vec<Duration>, wall: Duration) -> Stats {
        samples.sort();
        Stats { samples, wall }
    }
    fn quantile(&self, q: f64) -> Duration {
        let index = ((self.samples.len() as f64 * q) as usize).min(self.samples.len() - 1);
        self.samples[index]
    }
    fn p50(&self) -> f64 {
        ms(self.quantile(0.50))
    }
    fn p99(&self) -> f64 {
        ms(self.quantile(0.99))
    }
    fn throughput(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?)
}

fn infer_bodies() -> Vec<Vec<u8>> {
    ROWS.iter()
        .map(|row| {
            serde_json::to_vec(&json!({
                "inputs": [{"name": "features", "shape": [1, 5], "datatype": "FP32", "data": row}]
            }))
            .expect("a JSON value serialises")
        })
        .collect()
}

async fn infer_once(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Closed loop: `concurrency` workers, each sending its next request when the last one answered,
/// until `total` requests have been sent. Every answer must be a 200.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Vec<u8>],
    concurrency: usize,
    total: usize,
) -> anyhow::Result<Stats> {
    let next = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(bodies.to_vec());
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next, bodies) = (
            client.clone(),
            url.to_string(),
            next.clone(),
            bodies.clone(),
        );
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(samples);
                }
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await?;
                let status = response.status();
                let body = response.bytes().await?;
                samples.push(sent.elapsed());
                if !status.is_success() {
                    bail!(
                        "{url} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        });
    }
    let mut samples = Vec::with_capacity(total);
    while let Some(result) = workers.join_next().await {
        samples.extend(result??);
    }
    Ok(Stats::new(samples, started.elapsed()))
}

/// Warm-up then one measured run per concurrency level.
async fn levels(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Stats>> {
    let bodies = infer_bodies();
    let mut out = Vec::new();
    for c in CONCURRENCY {
        drive(client, url, &bodies, c, (c * 20).max(200)).await?;
        out.push(drive(client, url, &bodies, c, REQUESTS).await?);
    }
    Ok(out)
}

fn print_levels(label: &str, stats: &[Stats]) {
    for (c, s) in CONCURRENCY.iter().zip(stats) {
        println!(
            "  {label:<24} c={c:<3} p50 {:>6.2} ms  p99 {:>6.2} ms  {:>7} req/s",
            s.p50(),
            s.p99(),
            thousands(s.throughput())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sections

fn python_json(args: &[&std::ffi::OsStr]) -> anyhow::Result<Value> {
    let mut command = Command::new(python());
    command.arg(scripts_dir().join("direct.py")).args(args);
    let output = crate::run_for_output(&mut command)?;
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn seconds_list(value: &Value) -> Vec<Duration> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(Duration::from_secs_f64)
        .collect()
}

async fn concurrency(sandpit: &Path, model: &Path, scratch: &Path) -> anyhow::Result<()> {
    let client = client()?;
    println!(
        "model endpoint: the example's recovery model (scikit-learn GradientBoosting, ONNX), \
         single-row v2 REST infer,\n  {REQUESTS} requests per level, closed loop \
         (load generator: one Rust thread):"
    );

    println!(
        "  (onnxruntime {} everywhere, one intra-op thread per session; \
         {} CPUs shared by servers and load generator)",
        python_package_version("onnxruntime"),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    // The floor: onnxruntime in-process from Python.
    let rows = serde_json::to_string(&ROWS)?;
    let direct = python_json(&[
        "infer".as_ref(),
        model.as_os_str(),
        "features".as_ref(),
        rows.as_ref(),
        DIRECT_CALLS.to_string().as_ref(),
    ])?;
    let direct = Stats::new(
        seconds_list(&direct["samples"]),
        Duration::from_secs_f64(direct["total"].as_f64().unwrap_or(f64::NAN)),
    );

    let sandpit_stats = {
        let file = model
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let mut server = start_sandpit(
            sandpit,
            &scratch.join("sandpit-c"),
            &[("recovery", model, file)],
        )?;
        server.wait_ready(&client, Duration::from_secs(30)).await?;
        let url = format!("{}/v2/models/recovery/infer", server.base);
        let answer = infer_once(&client, &url, infer_bodies()[0].clone()).await?;
        println!("  (sandpit answers {})", answer["outputs"][0]["data"]);
        levels(&client, &url).await?
    };

    let kserve_version = python_package_version("kserve");
    // The baseline is a large PyPI package: if it cannot start here, say so and keep measuring.
    let kserve_stats = match kserve(model, scratch, &client, &kserve_version).await {
        Ok(stats) => Some(stats),
        Err(e) => {
            println!("  KServe: not measured: {e:#}");
            None
        }
    };

    println!(
        "  {:<24} c=1   p50 {:>6.3} ms  p99 {:>6.3} ms  {:>7} calls/s",
        "onnxruntime direct (py)",
        direct.p50(),
        direct.p99(),
        thousands(direct.throughput())
    );
    print_levels("sandpit endpoint", &sandpit_stats);
    if let Some(kserve_stats) = &kserve_stats {
        print_levels(&format!("KServe {kserve_version}"), kserve_stats);
    }
    println!("  ratios:");
    println!(
        "    sandpit c=1 p50 / onnxruntime direct p50: {:>6.1}x  (HTTP + JSON + routing)",
        sandpit_stats[0].p50() / direct.p50()
    );
    let Some(kserve_stats) = kserve_stats else {
        return Ok(());
    };
    println!(
        "    KServe  c=1 p50 / onnxruntime direct p50: {:>6.1}x",
        kserve_stats[0].p50() / direct.p50()
    );
    for (i, c) in CONCURRENCY.iter().enumerate() {
        println!(
            "    c={c:<3} sandpit / KServe throughput: {:>5.1}x   \
             KServe / sandpit p50: {:>5.1}x   p99: {:>5.1}x",
            sandpit_stats[i].throughput() / kserve_stats[i].throughput(),
            kserve_stats[i].p50() / sandpit_stats[i].p50(),
            kserve_stats[i].p99() / sandpit_stats[i].p99(),
        );
    }
    Ok(())
}

async fn kserve(
    model: &Path,
    scratch: &Path,
    client: &reqwest::Client,
    version: &str,
) -> anyhow::Result<Vec<Stats>> {
    let mut server = start_kserve(model, scratch)?;
    let startup = server.wait_ready(client, Duration::from_secs(90)).await?;
    let url = format!("{}/v2/models/recovery/infer", server.base);
    let answer = infer_once(client, &url, infer_bodies()[0].clone()).await?;
    println!(
        "  (KServe {version} answers {}; it started in {:.1} s)",
        answer["outputs"][0]["data"],
        startup.as_secs_f64()
    );
    levels(client, &url).await
}

async fn cold_loads(sandpit: &Path, scratch: &Path) -> anyhow::Result<()> {
    let client = client()?;
    let dir = scratch.join("sized");
    let mut command = Command::new(python());
    command
        .arg(scripts_dir().join("make_models.py"))
        .arg(&dir)
        .args(SIZES_MIB.iter().map(u32::to_string));
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed (is the `onnx` package installed in the venv?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let files: Vec<(String, PathBuf, usize)> = String::from_utf8(output.stdout)?
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let path = PathBuf::from(parts.next()?);
            let _input = parts.next()?;
            let width = parts.next()?.parse().ok()?;
            let name = path.file_stem()?.to_str()?.to_string();
            Some((name, path, width))
        })
        .collect();
    if files.len() != SIZES_MIB.len() {
        bail!(
            "make_models.py wrote {} models, expected {}",
            files.len(),
            SIZES_MIB.len()
        );
    }

    // Each model twice: the plain ONNX file, and the artifact `sandpit build` makes of it (a
    // deflated zip), whose extraction is part of every real cold load.
    let mut artifacts = Vec::new();
    for (name, path, _) in &files {
        let tree = dir.join(format!("{name}-tree"));
        fs::create_dir_all(&tree)?;
        fs::copy(path, tree.join("model.onnx"))?;
        let zip = dir.join(format!("{name}.zip"));
        sandpit_artifact::package::package_dir(&tree, &zip, ByteSize(ByteSize::GIB))?;
        artifacts.push((format!("{name}-zip"), zip));
    }
    let mut registered: Vec<Registered<'_>> = Vec::new();
    for ((name, path, _), (zip_name, zip)) in files.iter().zip(&artifacts) {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        registered.push((name.as_str(), path.as_path(), file));
        registered.push((zip_name.as_str(), zip.as_path(), "model.onnx"));
    }
    let mut server = start_sandpit(sandpit, &scratch.join("sandpit-cold"), &registered)?;
    server.wait_ready(&client, Duration::from_secs(30)).await?;

    println!(
        "model cold load (MLP with random weights; first infer = read + verify digest + \
         [unzip] + load + run; {COLD_RUNS} runs, each a Python load then a sandpit one of each \
         kind, median):"
    );
    let mut rows = Vec::new();
    for ((name, path, width), (zip_name, _)) in files.iter().zip(&artifacts) {
        let body = serde_json::to_vec(&json!({
            "inputs": [{"name": "x", "shape": [1, width], "datatype": "FP32",
                        "data": (0..*width).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>()}]
        }))?;
        let mut python = PythonLoads::start(path)?;
        let kinds = [(".onnx", name.as_str()), ("zip", zip_name.as_str())];
        let mut samples: Vec<ColdSamples> = kinds.iter().map(|_| ColdSamples::default()).collect();
        let (mut creates, mut create_runs) = (Vec::new(), Vec::new());
        // In turns, one Python load and one cold request of each kind: on a shared machine the
        // load changes from second to second, and each ratio compares loads made under the same.
        for run in 0..COLD_RUNS {
            let (create, create_run) = python.once()?;
            creates.push(create);
            create_runs.push(create_run);
            for ((_, registered_as), samples) in kinds.iter().zip(&mut samples) {
                let unload_first = run > 0;
                cold_once(
                    &client,
                    &server.base,
                    registered_as,
                    &body,
                    unload_first,
                    samples,
                )
                .await?;
            }
        }
        let create = Stats::new(creates, Duration::ZERO).p50();
        let create_run = Stats::new(create_runs, Duration::ZERO).p50();
        let mib = fs::metadata(path)?.len() as f64 / (1024.0 * 1024.0);
        for ((kind, _), samples) in kinds.into_iter().zip(samples) {
            rows.push(ColdRow {
                mib,
                kind,
                measured: samples.summary(),
                create,
                create_run,
            });
        }
    }
    println!(
        "  {:>9}  {:>5}  {:>12}  {:>12}  {:>10}  {:>18}  {:>16}",
        "ONNX size",
        "as",
        "sandpit cold",
        "sandpit warm",
        "cold/warm",
        "py InferenceSession",
        "sandpit cold /"
    );
    println!(
        "  {:>9}  {:>5}  {:>12}  {:>12}  {:>10}  {:>18}  {:>16}",
        "", "", "1st request", "request", "", "(+ first run)", "py create+run"
    );
    for row in &rows {
        let (cold, warm) = (row.measured.cold, row.measured.warm);
        println!(
            "  {:>5.1} MiB  {:>5}  {:>9.1} ms  {:>9.2} ms  {:>9.0}x  {:>6.1} ms ({:>6.1} ms)  {:>15.2}x",
            row.mib,
            row.kind,
            cold,
            warm,
            cold / warm,
            row.create,
            row.create_run,
            cold / row.create_run
        );
    }
    println!(
        "  where the cold request's time goes (the server's /metrics, median per phase; verify \
         runs alongside extract + session):"
    );
    println!(
        "  {:>9}  {:>5}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>12}",
        "ONNX size", "as", "read", "verify", "extract", "session", "load", "HTTP + run"
    );
    for row in &rows {
        let split = &row.measured.split;
        let load = split[LOAD_SERIES.len() - 1];
        println!(
            "  {:>5.1} MiB  {:>5}  {:>5.1} ms  {:>5.1} ms  {:>5.1} ms  {:>5.1} ms  {:>5.1} ms  {:>9.1} ms",
            row.mib,
            row.kind,
            split[0],
            split[1],
            split[2],
            split[3],
            load,
            row.measured.cold - load
        );
    }
    drop(server);
    Ok(())
}

/// One line of the cold-load tables: a model size, as a plain file or a zip.
struct ColdRow {
    mib: f64,
    kind: &'static str,
    measured: ColdLoads,
    /// Python's `InferenceSession` creation, and creation + first run (ms, median).
    create: f64,
    create_run: f64,
}

/// Medians (ms) of a registered model's first requests after an unload, of the requests
/// after them, and of each of [`LOAD_SERIES`] the server recorded for those loads.
struct ColdLoads {
    cold: f64,
    warm: f64,
    split: Vec<f64>,
}

/// A registered model's cold requests (each after an unload), the warm requests after them,
/// and per cold request the seconds of each of [`LOAD_SERIES`] the server recorded.
#[derive(Default)]
struct ColdSamples {
    cold: Vec<Duration>,
    warm: Vec<Duration>,
    splits: Vec<Vec<Duration>>,
}

impl ColdSamples {
    fn summary(self) -> ColdLoads {
        let splits = self.splits;
        ColdLoads {
            cold: Stats::new(self.cold, Duration::ZERO).p50(),
            warm: Stats::new(self.warm, Duration::ZERO).p50(),
            split: (0..LOAD_SERIES.len())
                .map(|i| ms(crate::median(splits.iter().map(|run| run[i]).collect())))
                .collect(),
        }
    }
}

/// One cold request of `name` (unloaded first unless this is its first), then 20 warm ones.
async fn cold_once(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    body: &[u8],
    unload_first: bool,
    samples: &mut ColdSamples,
) -> anyhow::Result<()> {
    let url = format!("{base}/v2/models/{name}/infer");
    if unload_first {
        let unload = format!("{base}/v2/repository/models/{name}/unload");
        let response = client.post(&unload).send().await?;
        if !response.status().is_success() {
            bail!("unload of {name} answered {}", response.status());
        }
    }
    let before = load_sums(client, base).await?;
    let started = Instant::now();
    infer_once(client, &url, body.to_vec()).await?;
    samples.cold.push(started.elapsed());
    let after = load_sums(client, base).await?;
    samples.splits.push(
        LOAD_SERIES
            .iter()
            .map(|series| Duration::from_secs_f64(after[*series] - before[*series]))
            .collect(),
    );
    for _ in 0..20 {
        let started = Instant::now();
        infer_once(client, &url, body.to_vec()).await?;
        samples.warm.push(started.elapsed());
    }
    Ok(())
}

/// `direct.py load-steps` on one model: a Python process that makes one `InferenceSession` and
/// runs it once per line it is sent, answering with the seconds each took.
struct PythonLoads {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl PythonLoads {
    fn start(model: &Path) -> anyhow::Result<PythonLoads> {
        let mut command = Command::new(python());
        command
            .arg(scripts_dir().join("direct.py"))
            .arg("load-steps")
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {command:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout from direct.py")?;
        Ok(PythonLoads {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
        })
    }

    /// One load: (creation, creation + first run).
    fn once(&mut self) -> anyhow::Result<(Duration, Duration)> {
        use std::io::{BufRead as _, Write as _};
        let stdin = self.stdin.as_mut().context("direct.py's stdin is closed")?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("direct.py load-steps ended before answering (see its stderr above)");
        }
        let answer: Value = serde_json::from_str(&line)
            .with_context(|| format!("direct.py load-steps printed {line:?}"))?;
        let seconds = |key: &str| {
            answer[key]
                .as_f64()
                .map(Duration::from_secs_f64)
                .with_context(|| format!("no `{key}` in {line:?}"))
        };
        Ok((seconds("create")?, seconds("create_and_first_run")?))
    }
}

impl Drop for PythonLoads {
    fn drop(&mut self) {
        // End of input ends the script's loop.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The series of the server's `/metrics` a load's split is read from: its phases, then the
/// whole load.
const LOAD_SERIES: [&str; 5] = [
    "sandpit_model_load_phase_seconds_sum{phase=\"read\"}",
    "sandpit_model_load_phase_seconds_sum{phase=\"verify\"}",
    "sandpit_model_load_phase_seconds_sum{phase=\"extract\"}",
    "sandpit_model_load_phase_seconds_sum{phase=\"session\"}",
    "sandpit_model_load_seconds_sum",
];

/// The value of each of [`LOAD_SERIES`] now (0 for one not exposed yet, before any load).
async fn load_sums(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<std::collections::HashMap<&'static str, f64>> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(LOAD_SERIES
        .iter()
        .map(|series| {
            let value = text
                .lines()
                .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0.0);
            (*series, value)
        })
        .collect())
}
