//! `sandpit-bench SANDPIT_BINARY EXAMPLE_DIR [SECTION]`: prints how long `up` takes for the
//! example project, cold (build included) and warm (artifacts reused), `promote dev test` in
//! parts against `cp --reflink=auto` and a redeploy (`promote.rs`), packaging+hashing throughput
//! against `zip -q -r -X` + `sha256sum` run side by side on the same tree, and the model endpoint
//! against onnxruntime from Python and KServe's Python server (`models.rs`), and a biome's
//! database cloned from a template against a bare `CREATE DATABASE … TEMPLATE` (`database.rs`).
//!
//! Figures, not pass/fail: these machines are shared and noisy, so the useful number is the ratio
//! against a baseline measured in the same run.

mod database;
mod models;
mod promote;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sandpit_domain::ByteSize;
use sha2::{Digest as _, Sha256};

pub(crate) const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 && args.len() != 4 {
        bail!("usage: sandpit-bench SANDPIT_BINARY EXAMPLE_DIR [up|promote|packaging|models|database]");
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
    }
    if wanted("database") {
        database::run()?;
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

fn timed(command: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    run(command)?;
    Ok(start.elapsed())
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
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

fn up_times(sandpit: &Path, example: &Path, scratch: &Path) -> anyhow::Result<()> {
    let repo = committed_copy(example, &scratch.join("repo"))?;
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
                .env("SANDPIT_STOP_GRACE_MS", "2000");
            command
        };
        // Cold: empty home, so the daemon starts and every component is built.
        cold.push(timed(&mut sandpit_cmd(&["up", "bench"]))?);
        // No-op: the same commit again.
        noop.push(timed(&mut sandpit_cmd(&["up", "bench"]))?);
        run(&mut sandpit_cmd(&["down", "bench"]))?;
        // Warm: artifacts exist, so nothing is built; processes start from scratch.
        warm.push(timed(&mut sandpit_cmd(&["up", "bench"]))?);
        run(&mut sandpit_cmd(&["down", "bench"]))?;
        run(&mut sandpit_cmd(&["daemon", "stop"]))?;
    }
    let (cold, warm, noop) = (median(cold), median(warm), median(noop));
    println!("example project `up` ({} runs, median):", RUNS);
    println!(
        "  cold (daemon start + build + start): {:>8.0} ms",
        cold.as_secs_f64() * 1000.0
    );
    println!(
        "  warm (artifacts reused, fresh start): {:>8.0} ms   ({:.1}x faster than cold)",
        warm.as_secs_f64() * 1000.0,
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "  no-op (same commit, already up):     {:>8.0} ms",
        noop.as_secs_f64() * 1000.0
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
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    for run_number in 0..RUNS {
        let out = scratch.join(format!("ours-{run_number}.zip"));
        let start = Instant::now();
        let summary = sandpit_artifact::package::package_dir(&tree, &out, ByteSize(ByteSize::GIB))?;
        ours.push(start.elapsed());
        std::hint::black_box(summary.digest);

        let zip = scratch.join(format!("baseline-{run_number}.zip"));
        let start = Instant::now();
        run(Command::new("zip")
            .args(["-q", "-r", "-X"])
            .arg(&zip)
            .arg(".")
            .current_dir(&tree))?;
        let output = Command::new("sha256sum").arg(&zip).output()?;
        baseline.push(start.elapsed());
        if !output.status.success() {
            bail!("sha256sum failed");
        }
        // Both sides do the same work: compress every file, then hash the archive.
        std::hint::black_box(Sha256::digest(&output.stdout));
    }
    let (ours, baseline) = (median(ours), median(baseline));
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("packaging + hashing {mib:.1} MiB in 2,020 files ({RUNS} runs, median):");
    println!(
        "  sandpit package_dir:      {:>7.0} ms  {:>7.1} MiB/s",
        ours.as_secs_f64() * 1000.0,
        mib / ours.as_secs_f64()
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
    Ok(())
}
