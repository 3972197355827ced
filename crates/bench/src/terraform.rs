//! The overhead sandpit adds to `terraform apply` of the example module
//! (`examples/stockpile/infra`), as a ratio against the same apply with a local backend. Three
//! sides, run in turn in every round so that the machine's load hits them alike:
//!
//! (a) plain terraform with local state: `init -backend=false` into a directory without
//!     `.terraform/` (sandpit initialises every apply, into a fresh extraction), then `apply`;
//! (b) the same terraform commands as sandpit runs them (`sandpit_terraform::init` + `apply`)
//!     against sandpit's http state backend (`sandpit_tfstate`) served in this process, whose
//!     requests are counted: the backend round trips of one init + apply;
//! (c) `sandpit up` of a new commit (a file changed in `infra/`, so a new artifact and sha),
//!     whose `timings.terraform` is the whole terraform phase: the artifact verified and
//!     extracted, init + apply through the daemon's backend, the outputs read; its `plan`
//!     phase is the build, i.e. the packaging of `infra` (zip, plus the `init -backend=false`
//!     + `validate` the build runs on a copy), put beside (a)'s `init` + `validate`.
//!
//! Every run changes the resource (a new `sha` each time), after one untimed apply that
//! created it. Every terraform process gets the bench's own empty `TF_CLI_CONFIG_FILE` and
//! `CHECKPOINT_DISABLE=1`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use sandpit_domain::Name;
use sandpit_terraform::{HttpBackend, Run, Terraform};
use sandpit_tfstate::{StateKey, StateStore};
use sha2::{Digest as _, Sha256};

use crate::{committed_copy, git, load_average, path_without_python_shims, run, run_for_output};

/// Rounds by default (`bash scripts/bench.sh terraform N` for another count).
pub const DEFAULT_RUNS: usize = 10;

/// The biome the bench brings up, in the environment that has biomes.
const ENVIRONMENT: &str = "dev";
const BIOME: &str = "alice";
/// `vars` of `[terraform.infra]` in `examples/stockpile/sandpit.toml`, which sides (a) and (b)
/// pass as sandpit does.
const BUCKET_PREFIX: &str = "stockpile";
/// The file each round rewrites in the sandpit side's `infra/` (terraform reads only `*.tf`).
const REVISION_FILE: &str = "infra/bench-revision.txt";

pub fn run_all(
    sandpit: &Path,
    stockpile: &Path,
    scratch: &Path,
    runs: usize,
) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("the terraform section needs at least one run");
    }
    let module = stockpile.join("infra");
    if !module.join("main.tf").is_file() {
        bail!(
            "no example module at {}: the terraform section measures examples/stockpile/infra",
            module.display()
        );
    }
    let scratch = scratch.join("terraform");
    let path = path_without_python_shims()?;
    let terraform = Terraform::find("terraform", Some(OsStr::new(&path))).map_err(|error| {
        anyhow::anyhow!("the terraform section runs terraform, and it is not usable here: {error}")
    })?;
    let cli_config = scratch.join("empty.tfrc");
    fs::create_dir_all(&scratch)?;
    fs::write(&cli_config, "")?;
    let settings = TerraformSettings {
        cli_config,
        plugin_cache: scratch.join("plugin-cache"),
    };
    fs::create_dir_all(&settings.plugin_cache)?;

    let load_before = load_average();
    let local = LocalSide::prepare(terraform.binary(), &module, &scratch, &settings)?;
    let backend = BackendSide::prepare(&terraform, &module, &scratch, &settings)?;
    let sandpit_side = SandpitSide::prepare(sandpit, stockpile, &scratch, &path, &settings)?;
    let measured = measure(runs, &local, &backend, &sandpit_side);
    // The daemon (and the web service it runs) stops whether or not the rounds worked.
    let stopped = run(&mut sandpit_side.command(&["daemon", "stop"]));
    let rounds = measured?;
    stopped?;
    backend.stop()?;
    print(terraform.version(), &rounds, &load_before, &load_average());
    Ok(())
}

/// What every terraform process of the bench gets.
struct TerraformSettings {
    cli_config: PathBuf,
    plugin_cache: PathBuf,
}

impl TerraformSettings {
    /// The environment sandpit's runner sets on every terraform process (automation mode, no
    /// prompts, no call home, the plugin cache) and the bench's CLI configuration.
    fn apply_to(&self, command: &mut Command) {
        command
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_PLUGIN_CACHE_DIR", &self.plugin_cache);
    }
}

/// One round's figures, in milliseconds.
#[derive(Debug, Clone)]
struct Round {
    local_init: f64,
    local_apply: f64,
    local_validate: f64,
    /// `terraform version -json`, which `Terraform::find` runs in every `up` that applies.
    local_version: f64,
    backend_init: f64,
    backend_apply: f64,
    /// The backend requests of side (b)'s init and apply, by method, in the order made.
    init_requests: Vec<String>,
    apply_requests: Vec<String>,
    sandpit_terraform: f64,
    sandpit_plan: f64,
}

fn measure(
    runs: usize,
    local: &LocalSide,
    backend: &BackendSide,
    sandpit: &SandpitSide,
) -> anyhow::Result<Vec<Round>> {
    // Untimed: each side creates the resource once, so that every timed apply changes it.
    local.round(&new_sha("warm-up-local"))?;
    backend.round(&new_sha("warm-up-backend"))?;
    sandpit.round(&new_sha("warm-up-sandpit"))?;
    let mut rounds = Vec::with_capacity(runs);
    for round in 0..runs {
        let local_times = local.round(&new_sha(&format!("local-{round}")))?;
        let backend_times = backend.round(&new_sha(&format!("backend-{round}")))?;
        let sandpit_times = sandpit.round(&new_sha(&format!("sandpit-{round}")))?;
        rounds.push(Round {
            local_init: local_times.init,
            local_apply: local_times.apply,
            local_validate: local_times.validate,
            local_version: local_times.version,
            backend_init: backend_times.init,
            backend_apply: backend_times.apply,
            init_requests: backend_times.init_requests,
            apply_requests: backend_times.apply_requests,
            sandpit_terraform: sandpit_times.terraform,
            sandpit_plan: sandpit_times.plan,
        });
    }
    Ok(rounds)
}

/// A new 40-hex value for `var.sha` (and the sandpit side's revision file): distinct per call
/// (a counter), and per bench run (the clock).
fn new_sha(salt: &str) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = Sha256::digest(format!("{salt}-{call}-{nanos}"));
    hex::encode(digest)[..40].to_owned()
}

/// Removes what `init` writes, so that every init starts as in a fresh extraction (the state,
/// local or remote, stays).
fn uninitialise(dir: &Path) -> anyhow::Result<()> {
    let data = dir.join(".terraform");
    if data.exists() {
        fs::remove_dir_all(&data).with_context(|| format!("cannot remove {}", data.display()))?;
    }
    let lock_file = dir.join(".terraform.lock.hcl");
    if lock_file.exists() {
        fs::remove_file(&lock_file)?;
    }
    Ok(())
}

fn timed(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let started = Instant::now();
    work()?;
    Ok(ms(started.elapsed()))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The variables sandpit passes to the module for the bench's biome, with `sha`.
fn module_variables(sha: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sha".to_owned(), sha.to_owned()),
        ("env".to_owned(), ENVIRONMENT.to_owned()),
        ("biome".to_owned(), BIOME.to_owned()),
        ("bucket_prefix".to_owned(), BUCKET_PREFIX.to_owned()),
    ])
}

/// Side (a): plain terraform, local state, in a copy of the module.
struct LocalSide<'a> {
    terraform: &'a Path,
    dir: PathBuf,
    settings: &'a TerraformSettings,
}

struct LocalTimes {
    init: f64,
    apply: f64,
    validate: f64,
    version: f64,
}

impl<'a> LocalSide<'a> {
    fn prepare(
        terraform: &'a Path,
        module: &Path,
        scratch: &Path,
        settings: &'a TerraformSettings,
    ) -> anyhow::Result<LocalSide<'a>> {
        let dir = scratch.join("local");
        crate::copy_tree(module, &dir)?;
        Ok(LocalSide {
            terraform,
            dir,
            settings,
        })
    }

    fn terraform(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.terraform);
        command.args(args).current_dir(&self.dir);
        self.settings.apply_to(&mut command);
        command
    }

    fn round(&self, sha: &str) -> anyhow::Result<LocalTimes> {
        uninitialise(&self.dir)?;
        let init = timed(|| run(&mut self.terraform(&["init", "-backend=false", "-input=false"])))?;
        let mut apply_command = self.terraform(&["apply", "-auto-approve", "-input=false"]);
        for (name, value) in module_variables(sha) {
            apply_command.env(format!("TF_VAR_{name}"), value);
        }
        let apply = timed(|| run(&mut apply_command))?;
        // What the build adds to packaging, after its own `init -backend=false`.
        let validate = timed(|| run(&mut self.terraform(&["validate", "-json"])))?;
        // Part of sandpit's phase that is terraform's own: finding the binary asks its version.
        let version = timed(|| run(&mut self.terraform(&["version", "-json"])))?;
        Ok(LocalTimes {
            init,
            apply,
            validate,
            version,
        })
    }
}

/// Side (b): sandpit's runner against sandpit's backend in this process.
struct BackendSide<'a> {
    terraform: &'a Terraform,
    run: Run,
    requests: Arc<Mutex<Vec<String>>>,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

struct BackendTimes {
    init: f64,
    apply: f64,
    init_requests: Vec<String>,
    apply_requests: Vec<String>,
}

impl<'a> BackendSide<'a> {
    fn prepare(
        terraform: &'a Terraform,
        module: &Path,
        scratch: &Path,
        settings: &TerraformSettings,
    ) -> anyhow::Result<BackendSide<'a>> {
        let dir = scratch.join("backend-module");
        crate::copy_tree(module, &dir)?;
        let store = Arc::new(StateStore::new(
            scratch.join("backend-states"),
            sandpit_tfstate::DEFAULT_KEPT_VERSIONS,
        ));
        let key = StateKey {
            project: Name::parse("stockpile")?,
            environment: Name::parse(ENVIRONMENT)?,
            biome: Some(Name::parse(BIOME)?),
            component: Name::parse("infra")?,
        };
        let password = store.credential(&key)?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let app = sandpit_tfstate::router(store).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                seen.lock()
                    .expect("the request log is never poisoned")
                    .push(request.method().to_string());
                next.run(request)
            },
        ));
        // The limits `sandpit_tfstate::serve` gives the daemon's backend.
        let limits = sandpit_http::Limits {
            max_body_bytes: sandpit_tfstate::MAX_STATE_BYTES,
            body_read_timeout: Duration::from_secs(120),
            ..sandpit_http::Limits::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let origin = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(sandpit_http::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        let run = Run {
            dir,
            plugin_cache_dir: settings.plugin_cache.clone(),
            backend: Some(HttpBackend {
                address: key.url(&origin),
                username: key.path(),
                password,
            }),
            vars: BTreeMap::new(),
            log: scratch.join("backend.log"),
            lock_timeout: sandpit_ops::terraform::DEFAULT_LOCK_TIMEOUT,
            cli_config_file: Some(settings.cli_config.clone()),
            extra_env: Vec::new(),
        };
        Ok(BackendSide {
            terraform,
            run,
            requests,
            runtime,
            stop,
            server,
        })
    }

    fn requests_so_far(&self) -> usize {
        self.requests.lock().expect("never poisoned").len()
    }

    fn requests_since(&self, start: usize) -> Vec<String> {
        self.requests.lock().expect("never poisoned")[start..].to_vec()
    }

    fn round(&self, sha: &str) -> anyhow::Result<BackendTimes> {
        uninitialise(&self.run.dir)?;
        let run = Run {
            vars: module_variables(sha),
            ..self.run.clone()
        };
        let before_init = self.requests_so_far();
        let init = timed(|| Ok(sandpit_terraform::init(self.terraform, &run)?))?;
        let before_apply = self.requests_so_far();
        let apply = timed(|| Ok(sandpit_terraform::apply(self.terraform, &run)?))?;
        let requests = self.requests_since(before_init);
        let (init_requests, apply_requests) = requests.split_at(before_apply - before_init);
        Ok(BackendTimes {
            init,
            apply,
            init_requests: init_requests.to_vec(),
            apply_requests: apply_requests.to_vec(),
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.runtime
            .block_on(self.server)
            .context("the bench's state backend panicked")?
            .context("the bench's state backend failed")
    }
}

/// Side (c): `sandpit up` of the example, a new commit each round.
struct SandpitSide<'a> {
    sandpit: &'a Path,
    repo: PathBuf,
    home: PathBuf,
    path: &'a str,
    settings: &'a TerraformSettings,
}

struct SandpitTimes {
    terraform: f64,
    plan: f64,
}

impl<'a> SandpitSide<'a> {
    fn prepare(
        sandpit: &'a Path,
        stockpile: &Path,
        scratch: &Path,
        path: &'a str,
        settings: &'a TerraformSettings,
    ) -> anyhow::Result<SandpitSide<'a>> {
        let repo = committed_copy(stockpile, &scratch.join("repo"))?;
        Ok(SandpitSide {
            sandpit,
            repo,
            home: scratch.join("home"),
            path,
            settings,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.sandpit);
        command
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .env("SANDPIT_HOME", &self.home)
            .env("SANDPIT_STOP_GRACE_MS", "2000")
            .env("PATH", self.path);
        // `up` runs terraform itself, which inherits these.
        self.settings.apply_to(&mut command);
        command
    }

    fn round(&self, sha: &str) -> anyhow::Result<SandpitTimes> {
        fs::write(self.repo.join(REVISION_FILE), format!("{sha}\n"))?;
        git(&self.repo, &["add", "-A"])?;
        git(&self.repo, &["commit", "-q", "-m", "bench revision"])?;
        let output = run_for_output(&mut self.command(&["up", BIOME, "--json"]))?;
        let reply: serde_json::Value =
            serde_json::from_slice(&output.stdout).with_context(|| {
                format!(
                    "up --json printed no JSON: {}",
                    String::from_utf8_lossy(&output.stdout)
                )
            })?;
        let phase = |name: &str| reply["timings"][name].as_f64();
        let Some(terraform) = phase("terraform") else {
            bail!(
                "`sandpit up` of a changed module reported no terraform phase (timings: {}); the figures would be wrong",
                reply["timings"]
            );
        };
        Ok(SandpitTimes {
            terraform,
            plan: phase("plan").unwrap_or(0.0),
        })
    }
}

/// Median and 90th percentile of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    p90: f64,
}

/// The median (the mean of the two middle samples of an even count) and the nearest-rank 90th
/// percentile (the smallest sample with at least 90% of them at or below it).
fn spread(samples: &[f64]) -> Spread {
    assert!(!samples.is_empty(), "a spread of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let rank = (n * 9).div_ceil(10).max(1);
    Spread {
        median,
        p90: sorted[rank - 1],
    }
}

/// `GET 1, LOCK 1, POST 2` — each method with its count, in the order first made.
fn tally(methods: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for method in methods {
        match counts.iter_mut().find(|(m, _)| m == method) {
            Some((_, count)) => *count += 1,
            None => counts.push((method, 1)),
        }
    }
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(method, count)| format!("{method} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(version: &str, rounds: &[Round], load_before: &str, load_after: &str) {
    let of = |pick: fn(&Round) -> f64| spread(&rounds.iter().map(pick).collect::<Vec<_>>());
    let line = |label: &str, spread: Spread, note: &str| {
        println!(
            "  {label:<44} {:>7.0} ms  p90 {:>6.0} ms   {note}",
            spread.median, spread.p90
        );
    };
    let local = of(|r| r.local_init + r.local_apply);
    let backend = of(|r| r.backend_init + r.backend_apply);
    let sandpit = of(|r| r.sandpit_terraform);
    println!(
        "terraform apply of examples/stockpile/infra, terraform {version} ({} rounds, each side in turn; load average {load_before} before, {load_after} after):",
        rounds.len()
    );
    line(
        "(a) local backend: init + apply",
        local,
        &format!(
            "(init {:.0}, apply {:.0})",
            of(|r| r.local_init).median,
            of(|r| r.local_apply).median
        ),
    );
    line(
        "(b) sandpit's http backend: init + apply",
        backend,
        &format!(
            "(init {:.0}, apply {:.0}; the backend in-process)",
            of(|r| r.backend_init).median,
            of(|r| r.backend_apply).median
        ),
    );
    line(
        "(c) sandpit up, terraform phase",
        sandpit,
        "(verify + extract, init + apply through the daemon's backend, outputs)",
    );
    println!(
        "  ratio sandpit / local backend: {:.2} (medians); p90 {:.2}",
        sandpit.median / local.median,
        sandpit.p90 / local.p90
    );
    // Paired per round, so that a slow moment of the machine counts against all sides.
    let overhead = of(|r| r.sandpit_terraform - (r.local_init + r.local_apply));
    let backend_share = of(|r| r.backend_init + r.backend_apply - (r.local_init + r.local_apply));
    let rest = of(|r| r.sandpit_terraform - (r.backend_init + r.backend_apply));
    println!(
        "  overhead: {:+.0} ms (median of per-round differences; p90 {:+.0}): the http backend {:+.0} ms, the rest of sandpit's phase {:+.0} ms",
        overhead.median, overhead.p90, backend_share.median, rest.median
    );
    println!(
        "    (not in it: `terraform version -json`, {:.0} ms alone, which sandpit asks once per binary file and keeps)",
        of(|r| r.local_version).median
    );
    let first = &rounds[0];
    let same_every_round = rounds.iter().all(|r| {
        r.init_requests == first.init_requests && r.apply_requests == first.apply_requests
    });
    println!(
        "  backend round trips: init {}; apply {}{}",
        tally(&first.init_requests),
        tally(&first.apply_requests),
        if same_every_round {
            " (every round)"
        } else {
            " (first round; others differed)"
        }
    );
    line(
        "packaging: up's plan phase (builds infra)",
        of(|r| r.sandpit_plan),
        "(zip + terraform init -backend=false + validate on a copy)",
    );
    line(
        "  terraform init -backend=false + validate",
        of(|r| r.local_init + r.local_validate),
        "(the validation alone, side (a)'s directory)",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_median_and_the_nearest_rank_p90() {
        let check = |samples: &[f64], median: f64, p90: f64| {
            assert_eq!(spread(samples), Spread { median, p90 }, "{samples:?}");
        };
        check(&[7.0], 7.0, 7.0);
        check(&[3.0, 1.0], 2.0, 3.0);
        check(&[5.0, 1.0, 3.0], 3.0, 5.0);
        check(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0],
            5.5,
            9.0,
        );
        check(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
            6.0,
            10.0,
        );
    }

    #[test]
    fn tally_counts_methods_in_the_order_first_made() {
        let check = |methods: &[&str], expected: &str| {
            let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
            assert_eq!(tally(&methods), expected);
        };
        check(&[], "none");
        check(&["GET"], "GET 1");
        check(
            &["LOCK", "GET", "POST", "POST", "UNLOCK"],
            "LOCK 1, GET 1, POST 2, UNLOCK 1",
        );
        check(&["GET", "LOCK", "GET"], "GET 2, LOCK 1");
    }

    #[test]
    fn new_shas_are_forty_hex_and_distinct() {
        let (one, two) = (new_sha("x"), new_sha("x"));
        assert_eq!(one.len(), 40);
        assert!(one.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(one, two);
    }
}
