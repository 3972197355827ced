//! Biomes asleep: how long a request through the gateway takes to wake the example's biome and
//! be answered (goal ≤ 500 ms), and how `ls` fares with many sleeping example biomes on one
//! machine (goal: ≥ 500 biomes with `ls` ≤ 50 ms).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{median, run, run_for_output, RUNS};

/// How many `up`s run at once while the sleeping biomes are made.
const PARALLEL_UPS: usize = 2;

pub fn run_all(
    sandpit: &Path,
    example: &Path,
    scratch: &Path,
    biomes: usize,
) -> anyhow::Result<()> {
    let repo = crate::committed_copy(example, &scratch.join("sleep-repo"))?;
    let path = crate::path_without_python_shims()?;
    let home = scratch.join("sleep-home");
    let sandpit_cmd = |args: &[&str]| {
        let mut command = Command::new(sandpit);
        command
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("SANDPIT_HOME", &home)
            .env("SANDPIT_STOP_GRACE_MS", "2000")
            .env("PATH", &path);
        command
    };
    let up = run_for_output(&mut sandpit_cmd(&["up", "bench", "--json"]))?;
    let up: serde_json::Value = serde_json::from_slice(&up.stdout)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("sleeping example biome, a request through the gateway ({RUNS} runs each):");
    // assay-ingest starts in the first wave; grade-api, which needs it, in the second: a request
    // is answered once the service it reaches is healthy.
    for service in ["assay-ingest", "grade-api"] {
        let public = up["components"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|c| c["name"] == service)
                    .and_then(|c| c["public_url"].as_str())
            })
            .with_context(|| format!("`up --json` names no public URL for {service}"))?
            .to_owned();
        let (host, port) = host_and_port(&public)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .resolve(&host, SocketAddr::from(([127, 0, 0, 1], port)))
            .timeout(Duration::from_secs(60))
            .build()?;
        let url = format!("{public}/healthz");
        let mut wakes = Vec::new();
        let mut awake = Vec::new();
        for _ in 0..RUNS {
            run(&mut sandpit_cmd(&["sleep", "bench"]))?;
            let started = Instant::now();
            let status =
                runtime.block_on(async { client.get(&url).send().await.map(|r| r.status()) })?;
            wakes.push(started.elapsed());
            if !status.is_success() {
                bail!("the woken biome answered {status} at {url}");
            }
            let started = Instant::now();
            runtime.block_on(async { client.get(&url).send().await })?;
            awake.push(started.elapsed());
            // The rest of the biome finishes waking before it is put to sleep again.
            run(&mut sandpit_cmd(&["wake", "bench"]))?;
        }
        println!(
            "  {service}: wake, request to answer: median {:.0} ms (min {:.0}, max {:.0}); once awake: median {:.1} ms; goal <= 500 ms",
            ms(median(wakes.clone())),
            ms(*wakes.iter().min().expect("runs")),
            ms(*wakes.iter().max().expect("runs")),
            ms(median(awake))
        );
    }

    // Many sleeping biomes: each brought up, then put to sleep.
    let names: Vec<String> = (1..=biomes).map(|i| format!("s{i:04}")).collect();
    let making = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = names
            .chunks(names.len().div_ceil(PARALLEL_UPS).max(1))
            .map(|chunk| {
                let sandpit_cmd = &sandpit_cmd;
                scope.spawn(move || -> anyhow::Result<()> {
                    for name in chunk {
                        run(&mut sandpit_cmd(&["up", name]))?;
                        run(&mut sandpit_cmd(&["sleep", name]))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("an up worker panicked")?;
        }
        Ok(())
    })?;
    let made = making.elapsed();
    let mut listings = Vec::new();
    let mut sleeping = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let output = run_for_output(&mut sandpit_cmd(&["ls", "--json"]))?;
        listings.push(started.elapsed());
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        sleeping = listed["biomes"].as_array().map_or(0, |all| {
            all.iter().filter(|b| b["state"] == "sleeping").count()
        });
    }
    println!(
        "{biomes} sleeping example biomes (made in {:.0} s, {PARALLEL_UPS} ups at a time): `ls --json` median {:.1} ms (max {:.1}) listing {sleeping} asleep; goal >= 500 biomes, ls <= 50 ms",
        made.as_secs_f64(),
        ms(median(listings.clone())),
        ms(*listings.iter().max().expect("runs"))
    );
    run(&mut sandpit_cmd(&["daemon", "stop"]))?;
    Ok(())
}

fn host_and_port(public_url: &str) -> anyhow::Result<(String, u16)> {
    let authority = public_url
        .strip_prefix("http://")
        .context("a public URL starts with http://")?;
    let (host, port) = authority
        .rsplit_once(':')
        .context("a public URL names its port")?;
    Ok((host.to_owned(), port.parse()?))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
