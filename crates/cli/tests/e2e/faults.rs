//! Bounded fault injection: rounds of `up`, `down` and `deploy` with the CLI or the daemon
//! killed at a random point, then the invariants that must hold whatever was interrupted.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::harness::{kill9, Sandbox};

/// A small, seeded generator: a failing run prints its seed, and `SANDPIT_FAULT_SEED` is not
/// read (tests read no environment); change `SEED_OVERRIDE` to replay one.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

const SEED_OVERRIDE: Option<u64> = None;

fn project() -> Sandbox {
    let mut sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "faults"

[database]
migrations = "db/migrations"
seed = "db/seed.sql"

[jobs.check]
path = "check"
run = "test -n \"$DATABASE_URL\""

[services.web]
path = "web"
run = "python3 -m http.server --bind 127.0.0.1 $PORT"
depends_on = ["check"]
"#,
        ),
        (
            "db/migrations/001_samples.sql",
            "create table samples(id serial primary key, label text not null);\n",
        ),
        (
            "db/seed.sql",
            "insert into samples(label) values ('seeded');\n",
        ),
        ("check/README", "checks the injected variables\n"),
        ("web/index.html", "ok\n"),
    ]);
    sandbox
        .extra_env
        .push(("SANDPIT_USER".into(), "faults@example.com".into()));
    sandbox
}

fn names(listed: &Value, key: &str) -> BTreeSet<String> {
    listed[key]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|b| b["name"].as_str().or(b["biome"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_commands_and_daemons_never_leave_half_made_biomes() {
    let seed = SEED_OVERRIDE.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("fault injection seed: {seed}");
    let mut rng = Lcg(seed);
    let sandbox = project();
    sandbox.ok(&["up", "warm"]);
    for round in 0..10 {
        let biome = ["a", "b"][rng.next(2) as usize];
        let args: Vec<&str> = match rng.next(3) {
            0 => vec!["up", biome],
            1 => vec!["down", biome],
            _ => vec!["deploy", "dev"],
        };
        let mut child = sandbox
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_millis(rng.next(1500));
        while Instant::now() < until && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            match rng.next(3) {
                0 => {
                    eprintln!("round {round}: {args:?}, killing the CLI");
                    child.kill().unwrap();
                }
                1 => {
                    eprintln!("round {round}: {args:?}, killing the daemon");
                    if let Some(pid) = sandbox.daemon_pid() {
                        kill9(pid);
                    }
                }
                _ => eprintln!("round {round}: {args:?}, left to finish"),
            }
        }
        child.wait().unwrap();
        // The next round's command starts a daemon if this one killed it; so does this.
        sandbox.ok(&["daemon", "start"]);
    }

    // Settle: whatever the daemon restored converges (or fails) before the invariants.
    let deadline = Instant::now() + Duration::from_secs(90);
    let listed = loop {
        let listed = sandbox.json(&["ls"]);
        let starting = listed["biomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["state"] == "starting");
        if !starting || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let context = format!("seed {seed}: {listed:#}");
    let running = names(&listed, "biomes");
    let incomplete = names(&listed, "incomplete");

    // No process of this home outside the daemon's records.
    let mut known = BTreeSet::new();
    for biome in running.iter().chain(&names(&listed, "environments")) {
        let status = sandbox.status(biome);
        for component in status["components"].as_array().unwrap() {
            if let Some(pid) = component["pid"].as_u64() {
                known.insert(pid as u32);
            }
        }
    }
    let stray: Vec<u32> = sandbox
        .component_processes()
        .into_iter()
        .filter(|pid| {
            !known.contains(pid)
                && !known.contains(&crate::harness::process_group(*pid).unwrap_or(0))
        })
        .collect();
    assert!(
        stray.is_empty(),
        "processes nobody knows about: {stray:?}; {context}"
    );

    // No database without a biome (running, or listed with what a failed operation left), and no
    // running biome without its database.
    let databases: BTreeSet<String> = sandbox
        .admin_column("faults", "select datname from pg_database")
        .into_iter()
        .filter_map(|d| d.strip_prefix("faults_").map(str::to_owned))
        .filter(|d| !d.starts_with("tpl_") && d != "shared")
        .collect();
    for database in &databases {
        assert!(
            running.contains(database) || incomplete.contains(database) || database == "dev",
            "database of `{database}` without a biome; {context}"
        );
    }
    for biome in &running {
        assert!(
            databases.contains(biome),
            "biome `{biome}` runs without its database; {context}"
        );
    }
    // History is consistent: nothing claims to be running once every command has exited.
    for biome in running
        .iter()
        .chain(&incomplete)
        .chain(std::iter::once(&"dev".to_owned()))
    {
        let history = sandbox.run(&["history", biome, "--json"]);
        if !history.status.success() {
            continue;
        }
        let history: Value = serde_json::from_slice(&history.stdout).unwrap();
        for d in history["deployments"].as_array().unwrap() {
            assert!(
                d["state"] != "running"
                    && !(d["state"] == "pending" && d["approvals_required"] == 0),
                "deployment #{} of `{biome}` is still {} though nothing runs it; {context}",
                d["id"],
                d["state"]
            );
        }
    }
    // And every incomplete biome can be finished.
    for biome in &incomplete {
        sandbox.ok(&["down", biome]);
    }
}
