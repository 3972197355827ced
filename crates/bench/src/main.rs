//! `sandpit-bench SANDPIT_BINARY EXAMPLE_DIR [SECTION]`: prints how long `up` takes for the
//! example project, cold (build included) and warm (artifacts reused), `promote dev test` in
//! parts against `cp --reflink=auto` and a redeploy (`promote.rs`), packaging+hashing throughput
//! against `zip -q -r -X` + `sha256sum` run side by side on the same tree, and the model endpoint
//! against onnxruntime from Python and KServe's Python server (`models.rs`), and a biome's
//! database cloned from a template against a bare `CREATE DATABASE … TEMPLATE` (`database.rs`),
//! a pipeline's start through `sandpit server` against the `git fetch` it performs, and a
//! webhook delivery's (`pipeline.rs`), the control plane's API under 50 concurrent clients and with 1,000
//! biomes (`server.rs`), the gateway's requests/s and latency against nginx proxying the same
//! backend (`gateway.rs`), and a sleeping biome woken by a request through the gateway, and `ls`
//! with hundreds of sleeping biomes (`sleep.rs`), and `terraform apply` of the stockpile
//! example's module through sandpit against the same apply with a local backend
//! (`terraform.rs`; `examples/stockpile`, found beside EXAMPLE_DIR).
//!
//! Figures, not pass/fail: these machines are shared and noisy, so the useful number is the ratio
//! against a baseline measured in the same run.

mod database;
mod gateway;
mod models;
mod pipeline;
mod promote;
mod server;
mod sleep;
mod terraform;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::resource::{getrusage, UsageWho};
use sandpit_domain::ByteSize;
use sha2::{Digest as _, Sha256};

pub(crate) const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=5).contains(&args.len()) {
        bail!("usage: sandpit-bench SANDPIT_BINARY EXAMPLE_DIR [up|promote|packaging|models|models-cold|database|pipeline|server [BIOMES]|gateway|sleep [BIOMES]|terraform [RUNS]]");
    }
    let sandpit = PathBuf::from(&args[1]);
    let example = PathBuf::from(&args[2]);
    let only = args.get(3).map(String::as_str);
    let wanted = |section: &str| only.is_none_or(|only| only == section);
    let scratch = tempfile::Builder::new().prefix("spbench").tempdir()?;
    if wanted("up") {
        up_times(&sandpit, &example, scratch.path())?;
    }
    if wanted("promote") {
        promote::run_all(&sandpit, &example, scratch.path())?;
    }
    if wanted("packaging") {
        packaging_throughput(scratch.path())?;
    }
    if wanted("models") {
        models::run(&sandpit, &example, scratch.path())?;
    } else if only == Some("models-cold") {
        models::run_cold_loads(&sandpit, scratch.path())?;
    }
    if wanted("database") {
        database::run()?;
    }
    if wanted("pipeline") {
        pipeline::run_all(&sandpit, scratch.path())?;
    }
    if wanted("server") {
        // `server N`: fewer biomes for a quick look (1,000 by default).
        let biomes = match args.get(4) {
            Some(n) => n
                .parse()
                .with_context(|| format!("`{n}` is not a number of biomes"))?,
            None => 1000,
        };
        server::run(&sandpit, scratch.path(), biomes)?;
    }
    if wanted("gateway") {
        gateway::run(scratch.path())?;
    }
    if wanted("sleep") {
        // `sleep N`: fewer sleeping biomes for a quick look (500 by default).
        let biomes = match (only, args.get(4)) {
            (Some("sleep"), Some(n)) => n
                .parse()
                .with_context(|| format!("`{n}` is not a number of biomes"))?,
            _ => 500,
        };
        sleep::run_all(&sandpit, &example, scratch.path(), biomes)?;
    }
    if wanted("terraform") {
        // `terraform N`: another number of rounds (10 by default).
        let runs = match (only, args.get(4)) {
            (Some("terraform"), Some(n)) => n
                .parse()
                .with_context(|| format!("`{n}` is not a number of runs"))?,
            _ => terraform::DEFAULT_RUNS,
        };
        // The example with a terraform component sits beside the one the other sections use.
        let stockpile = example.with_file_name("stockpile");
        terraform::run_all(&sandpit, &stockpile, scratch.path(), runs)?;
    }
    Ok(())
}

pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    run_for_output(command).map(|_| ())
}

/// Runs `command`, failing with its output when it fails; returns what it printed.
pub(crate) fn run_for_output(command: &mut Command) -> anyhow::Result<std::process::Output> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub(crate) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "dist" || name == "__pycache__" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else {
            fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Runs `git args` in `repo` as the benchmark's committer.
pub(crate) fn git(repo: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("git")
        .args(["-c", "user.email=bench@sandpit", "-c", "user.name=bench"])
        .args(args)
        .current_dir(repo))
}

/// A git repository at `repo` holding one commit of a copy of `example`.
pub(crate) fn committed_copy(example: &Path, repo: &Path) -> anyhow::Result<PathBuf> {
    copy_tree(example, repo)?;
    git(repo, &["-c", "init.defaultBranch=main", "init", "-q"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "bench"])?;
    Ok(repo.to_path_buf())
}

/// One timed `up --json`: its wall time as the benchmark saw it, and the phases it reported.
struct UpRun {
    total: Duration,
    phases: Vec<(String, Duration)>,
    /// `None` from a sandpit that does not say.
    changed: Option<bool>,
}

fn timed_up(command: &mut Command) -> anyhow::Result<UpRun> {
    let start = Instant::now();
    let output = run_for_output(command.arg("--json"))?;
    let total = start.elapsed();
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "up --json printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let phases = reply["timings"]
        .as_object()
        .map(|timings| {
            timings
                .iter()
                .filter_map(|(phase, ms)| {
                    Some((
                        phase.clone(),
                        Duration::from_secs_f64(ms.as_f64()? / 1000.0),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(UpRun {
        total,
        phases,
        changed: reply["changed"].as_bool(),
    })
}

/// The phases `up` reports, in the order it runs them.
const UP_PHASES: &[&str] = &[
    "spec",
    "plan",
    "record",
    "database",
    "terraform",
    "models",
    "daemon",
    "health_wait",
];

fn print_up_runs(label: &str, runs: &[UpRun]) {
    let total = median(runs.iter().map(|r| r.total).collect());
    let phase = |name: &str| {
        median(
            runs.iter()
                .map(|r| {
                    r.phases
                        .iter()
                        .find(|(p, _)| p == name)
                        .map_or(Duration::ZERO, |(_, d)| *d)
                })
                .collect(),
        )
    };
    let mut split = Vec::new();
    let mut accounted = Duration::ZERO;
    for name in UP_PHASES {
        let took = phase(name);
        accounted += took;
        if !took.is_zero() {
            split.push(format!("{name} {:.1}", took.as_secs_f64() * 1000.0));
        }
    }
    // What the process spends outside the phases: starting, connecting, printing, exiting.
    let rest = total.saturating_sub(accounted);
    split.push(format!("process+output {:.1}", rest.as_secs_f64() * 1000.0));
    println!(
        "  {label:<38} {:>8.0} ms   [{} ms]",
        total.as_secs_f64() * 1000.0,
        split.join(", ")
    );
    // The components' own start-up (the example's Python services open their database before
    // answering) is the health wait, less at most one probe step per wave; the rest is sandpit's.
    let health_wait = phase("health_wait");
    if !health_wait.is_zero() {
        println!(
            "  {:<38} {:>8.0} ms   (total less the health wait)",
            "  sandpit's own part:",
            total.saturating_sub(health_wait).as_secs_f64() * 1000.0
        );
    }
}

/// `PATH` with the directory of the real `python3` first: a version manager's shim (pyenv's
/// costs ~90 ms per start here) would be timed as part of every component start, and the
/// figure is meant to measure sandpit.
pub(crate) fn path_without_python_shims() -> anyhow::Result<String> {
    // Python answers both: where its real executable is, and the PATH it was started with.
    let output = run_for_output(Command::new("python3").args([
        "-c",
        "import sys, os; print(os.path.dirname(os.path.realpath(sys.executable)) + ':' + os.environ.get('PATH', ''))",
    ]))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn up_times(sandpit: &Path, example: &Path, scratch: &Path) -> anyhow::Result<()> {
    let repo = committed_copy(example, &scratch.join("repo"))?;
    let path = path_without_python_shims()?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut noop = Vec::new();
    for run_number in 0..RUNS {
        let home = scratch.join(format!("home-{run_number}"));
        let sandpit_cmd = |args: &[&str]| {
            let mut command = Command::new(sandpit);
            command
                .args(["-C"])
                .arg(&repo)
                .args(args)
                .env("SANDPIT_HOME", &home)
                .env("SANDPIT_STOP_GRACE_MS", "2000")
                .env("PATH", &path);
            command
        };
        // Cold: empty home, so the daemon starts and every component is built.
        cold.push(timed_up(&mut sandpit_cmd(&["up", "bench"]))?);
        // No-op: the same commit again.
        let again = timed_up(&mut sandpit_cmd(&["up", "bench"]))?;
        if again.changed == Some(true) {
            bail!("a second `up` of the same commit changed something; the no-op figure would be wrong");
        }
        noop.push(again);
        run(&mut sandpit_cmd(&["down", "bench"]))?;
        // Warm: artifacts, the database template and the model endpoint exist, so nothing is
        // built; the biome's database is cloned and its processes start from scratch.
        warm.push(timed_up(&mut sandpit_cmd(&["up", "bench"]))?);
        run(&mut sandpit_cmd(&["down", "bench"]))?;
        run(&mut sandpit_cmd(&["daemon", "stop"]))?;
    }
    println!("example project `up` ({RUNS} runs, median; phases as `up --json` reports them):");
    print_up_runs("cold (daemon start + build + start):", &cold);
    print_up_runs("warm (artifacts reused, fresh start):", &warm);
    print_up_runs("no-op (same commit, already up):", &noop);
    let ms = |runs: &[UpRun]| median(runs.iter().map(|r| r.total).collect()).as_secs_f64() * 1000.0;
    println!(
        "  warm is {:.1}x faster than cold; goals: warm <= 200 ms, no-op <= 30 ms",
        ms(&cold) / ms(&warm)
    );
    Ok(())
}

/// A tree shaped like a real build output: many small text files and a few larger binary ones.
pub(crate) fn make_tree(root: &Path) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect()
    };
    for dir in 0..20 {
        let dir_path = root.join(format!("pkg{dir:02}"));
        fs::create_dir_all(&dir_path)?;
        for file in 0..100 {
            let text = format!(
                "def handler_{dir}_{file}(event):\n    return {{'ok': True, 'n': {file}}}\n"
            )
            .repeat(40);
            total += text.len() as u64;
            fs::write(dir_path.join(format!("module{file:03}.py")), text)?;
        }
        let blob = noise(1024 * 1024);
        total += blob.len() as u64;
        fs::write(dir_path.join("weights.bin"), blob)?;
    }
    Ok(total)
}

fn packaging_throughput(scratch: &Path) -> anyhow::Result<()> {
    let tree = scratch.join("tree");
    let bytes = make_tree(&tree)?;
    let options = sandpit_artifact::PackOptions::default();
    let mut ours = Vec::new();
    let mut ours_cpu = Vec::new();
    let mut phases = Vec::new();
    let mut baseline = Vec::new();
    let mut baseline_cpu = Vec::new();
    for run_number in 0..RUNS {
        let out = scratch.join(format!("ours-{run_number}.zip"));
        let cpu_before = cpu_time(UsageWho::RUSAGE_SELF)?;
        let start = Instant::now();
        let (summary, phase) =
            sandpit_artifact::package_dir_with(&tree, &out, ByteSize(ByteSize::GIB), &options)?;
        ours.push(start.elapsed());
        ours_cpu.push(cpu_time(UsageWho::RUSAGE_SELF)? - cpu_before);
        phases.push(phase);
        std::hint::black_box(summary.digest);

        let zip = scratch.join(format!("baseline-{run_number}.zip"));
        let cpu_before = cpu_time(UsageWho::RUSAGE_CHILDREN)?;
        let start = Instant::now();
        run(Command::new("zip")
            .args(["-q", "-r", "-X"])
            .arg(&zip)
            .arg(".")
            .current_dir(&tree))?;
        let output = Command::new("sha256sum").arg(&zip).output()?;
        baseline.push(start.elapsed());
        baseline_cpu.push(cpu_time(UsageWho::RUSAGE_CHILDREN)? - cpu_before);
        if !output.status.success() {
            bail!("sha256sum failed");
        }
        // Both sides do the same work: compress every file, then hash the archive.
        std::hint::black_box(Sha256::digest(&output.stdout));
    }
    let (ours, baseline) = (median(ours), median(baseline));
    let phase = |pick: fn(&sandpit_artifact::PackPhases) -> Duration| {
        median(phases.iter().map(pick).collect()).as_secs_f64() * 1000.0
    };
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("packaging + hashing {mib:.1} MiB in 2,020 files ({RUNS} runs, median):");
    println!(
        "  sandpit package_dir:      {:>7.0} ms  {:>7.1} MiB/s",
        ours.as_secs_f64() * 1000.0,
        mib / ours.as_secs_f64()
    );
    println!(
        "    phases: walk {:.0} ms, read+deflate {:.0} ms summed over {} workers, write+hash {:.0} ms, fsync {:.0} ms",
        phase(|p| p.walk),
        phase(|p| p.compress),
        options.workers,
        phase(|p| p.write_and_hash),
        phase(|p| p.sync),
    );
    println!(
        "  zip -q -r -X + sha256sum: {:>7.0} ms  {:>7.1} MiB/s",
        baseline.as_secs_f64() * 1000.0,
        mib / baseline.as_secs_f64()
    );
    println!(
        "  ratio (sandpit / baseline time): {:.2}",
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
    // The wall ratio beats the CPU ratio only by spreading the work over idle cores; when other
    // processes hold them, the CPU figures say how much work each side does.
    let (ours_cpu, baseline_cpu) = (median(ours_cpu), median(baseline_cpu));
    println!(
        "  CPU time (user+sys): sandpit {:.0} ms, baseline {:.0} ms, ratio {:.2}; load average {}",
        ours_cpu.as_secs_f64() * 1000.0,
        baseline_cpu.as_secs_f64() * 1000.0,
        ours_cpu.as_secs_f64() / baseline_cpu.as_secs_f64(),
        load_average(),
    );
    Ok(())
}

/// The machine's one-minute load average, as printed beside figures taken under it.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|load| load.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// User plus system CPU time used so far by this process (`RUSAGE_SELF`, every thread) or by
/// its waited-for children (`RUSAGE_CHILDREN`).
fn cpu_time(who: UsageWho) -> anyhow::Result<Duration> {
    let usage = getrusage(who).context("getrusage")?;
    let micros = |time: nix::sys::time::TimeVal| {
        Duration::from_secs(time.tv_sec() as u64) + Duration::from_micros(time.tv_usec() as u64)
    };
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}
