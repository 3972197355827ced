//! Overlay biomes end to end: a biome that changed one of three services runs one process of
//! its own, reaches the environment base's instances of the others through `SANDPIT_URL_*`,
//! keeps a database of its own, and runs everything again when it is brought up without overlay.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::harness::{component, http_get, process_group, Sandbox};

/// Every service answers `<name> <version> in <biome>`; `/call` adds what `names` answers,
/// reached through `SANDPIT_URL_NAMES`.
const SERVER: &str = r#"import http.server, os, urllib.request
name = os.environ["SANDPIT_COMPONENT"]
biome = os.environ["SANDPIT_BIOME"]
version = open("VERSION").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {version} in {biome}"
        if self.path == "/call":
            body += "; " + urllib.request.urlopen(os.environ["SANDPIT_URL_NAMES"] + "/").read().decode()
        self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const SANDPIT_TOML: &str = r#"
[project]
name = "mesh"

[environments.dev]
biomes = true

[database]
migrations = "db/migrations"

[jobs.migrate]
path = "migrate"
run = "test -n \"$DATABASE_URL\""

[services.names]
path = "names"
run = "python3 server.py"
health = "/health"
start_timeout = 10

[services.greeter]
path = "greeter"
run = "python3 server.py"
health = "/health"
start_timeout = 10
depends_on = ["names", "migrate"]

[services.clock]
path = "clock"
run = "python3 server.py"
health = "/health"
start_timeout = 10
"#;

fn project() -> Sandbox {
    Sandbox::with_files(&[
        ("sandpit.toml", SANDPIT_TOML),
        (
            "db/migrations/001_visits.sql",
            "create table visits(id serial primary key);\n",
        ),
        ("migrate/README", "checks that the biome has a database\n"),
        ("names/server.py", SERVER),
        ("names/VERSION", "v1\n"),
        ("greeter/server.py", SERVER),
        ("greeter/VERSION", "v1\n"),
        ("clock/server.py", SERVER),
        ("clock/VERSION", "v1\n"),
    ])
}

/// The services a biome's status lists, split into those it runs and those it borrows (with
/// the lender).
fn services(status: &Value) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let mut own = BTreeSet::new();
    let mut borrowed = BTreeSet::new();
    for c in status["components"].as_array().unwrap() {
        if c["kind"] != "service" {
            continue;
        }
        let name = c["name"].as_str().unwrap().to_owned();
        match c["borrowed_from"].as_str() {
            Some(lender) => {
                assert!(c["pid"].is_null(), "a borrowed service has no pid: {c:#}");
                borrowed.insert((name, lender.to_owned()));
            }
            None => {
                own.insert(name);
            }
        }
    }
    (own, borrowed)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

fn from_dev(list: &[&str]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|n| ((*n).to_owned(), "dev".to_owned()))
        .collect()
}

/// The process groups of the components running with `SANDPIT_BIOME=<biome>`, by `/proc`.
fn process_groups_of(sandbox: &Sandbox, biome: &str) -> BTreeSet<u32> {
    let wanted = format!("SANDPIT_BIOME={biome}");
    sandbox
        .component_processes()
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
        })
        .filter_map(process_group)
        .collect()
}

fn get(status: &Value, service: &str, path: &str) -> String {
    let url = component(status, service)["url"].as_str().unwrap();
    let (code, body) = http_get(&format!("{url}{path}"));
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn an_overlay_biome_runs_only_its_changed_service_and_borrows_the_base_for_the_rest() {
    let sandbox = project();

    // The base runs nothing yet: an overlay `up` runs every component and says why.
    let lonely = sandbox.run(&["up", "carol", "--overlay"]);
    let said = String::from_utf8_lossy(&lonely.stderr);
    assert!(lonely.status.success(), "{said}");
    assert!(
        said.contains("overlay: `dev` runs nothing healthy with the same artifacts to share; running every component"),
        "{said}"
    );
    let (own, borrowed) = services(&sandbox.status("carol"));
    assert_eq!(own, names(&["clock", "greeter", "names"]));
    assert!(borrowed.is_empty());
    sandbox.ok(&["down", "carol"]);

    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let dev = sandbox.status("dev");

    // alice changes one service of three.
    sandbox.write("greeter/VERSION", "v2\n");
    sandbox.commit("greeter v2");
    let up = sandbox.run(&["up", "alice", "--overlay"]);
    let said = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "{said}");
    assert!(
        said.contains(
            "overlay: borrowing `clock`, `names` from `dev`; running `greeter`, `migrate`"
        ),
        "{said}"
    );
    let alice = sandbox.status("alice");
    assert_eq!(alice["state"], "healthy", "{alice:#}");
    let (own, borrowed) = services(&alice);
    assert_eq!(own, names(&["greeter"]), "{alice:#}");
    assert_eq!(borrowed, from_dev(&["clock", "names"]), "{alice:#}");
    // The job ran in the biome, against the biome's own database.
    let migrate = component(&alice, "migrate");
    assert_eq!(migrate["state"], "succeeded", "{alice:#}");
    assert!(migrate.get("borrowed_from").is_none(), "{alice:#}");
    assert_eq!(alice["database"]["name"], "mesh_alice");
    assert_ne!(alice["database"]["name"], dev["database"]["name"]);
    // A borrowed service is the base's instance: its URL and state.
    for service in ["names", "clock"] {
        assert_eq!(
            component(&alice, service)["url"],
            component(&dev, service)["url"],
            "{service}"
        );
        assert_eq!(component(&alice, service)["state"], "healthy");
    }

    // Exactly one process of alice's own runs (the job has finished): the greeter's.
    let greeter_pid = component(&alice, "greeter")["pid"].as_u64().unwrap() as u32;
    let groups = process_groups_of(&sandbox, "alice");
    assert_eq!(
        groups,
        BTreeSet::from([process_group(greeter_pid).unwrap()]),
        "alice runs one process group, the greeter's"
    );
    assert_eq!(
        process_groups_of(&sandbox, "dev").len(),
        3,
        "dev runs its three"
    );

    // alice's greeter reaches the base's `names` through SANDPIT_URL_NAMES.
    assert_eq!(
        get(&alice, "greeter", "/call"),
        "greeter v2 in alice; names v1 in dev"
    );
    assert_eq!(
        get(&dev, "greeter", "/call"),
        "greeter v1 in dev; names v1 in dev"
    );

    // status and history say what is borrowed.
    let text = sandbox.ok(&["status", "alice"]);
    assert!(text.contains("healthy (borrowed from dev)"), "{text}");
    let history = sandbox.json(&["history", "alice"]);
    let recorded = &history["deployments"][0]["components"];
    let borrowed_in_record: BTreeSet<String> = recorded
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["borrowed_from"] == "dev")
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        borrowed_in_record,
        names(&["clock", "names"]),
        "{history:#}"
    );
    let text = sandbox.ok(&["history", "alice"]);
    assert!(text.contains("borrowed from dev: clock, names"), "{text}");

    // The same overlay `up` again has nothing to do.
    let again = sandbox.json(&["up", "alice", "--overlay"]);
    assert_eq!(again["changed"], false, "{again:#}");

    // Without overlay the biome runs everything itself.
    let whole = sandbox.json(&["up", "alice"]);
    assert_eq!(whole["changed"], true, "{whole:#}");
    let (own, borrowed) = services(&whole);
    assert_eq!(own, names(&["clock", "greeter", "names"]));
    assert!(borrowed.is_empty(), "{whole:#}");
    assert_eq!(
        get(&whole, "greeter", "/call"),
        "greeter v2 in alice; names v1 in alice"
    );
    assert_eq!(process_groups_of(&sandbox, "alice").len(), 3);

    // And back: the biome's own `names` and `clock` stop, the greeter calls the base's again.
    let overlaid = sandbox.json(&["up", "alice", "--overlay"]);
    let (own, borrowed) = services(&overlaid);
    assert_eq!(own, names(&["greeter"]), "{overlaid:#}");
    assert_eq!(borrowed, from_dev(&["clock", "names"]));
    assert_eq!(
        get(&overlaid, "greeter", "/call"),
        "greeter v2 in alice; names v1 in dev"
    );
    assert_eq!(process_groups_of(&sandbox, "alice").len(), 1);

    // `[biomes] overlay = true` makes overlay the default; `--no-overlay` overrides it.
    sandbox.write(
        "sandpit.toml",
        &format!("{SANDPIT_TOML}\n[biomes]\noverlay = true\n"),
    );
    sandbox.commit("overlay by default");
    let bob = sandbox.json(&["up", "bob"]);
    let (own, borrowed) = services(&bob);
    assert_eq!(own, names(&["greeter"]), "{bob:#}");
    assert_eq!(borrowed, from_dev(&["clock", "names"]));
    assert_eq!(bob["database"]["name"], "mesh_bob");
    assert_eq!(
        get(&bob, "greeter", "/call"),
        "greeter v2 in bob; names v1 in dev"
    );
    let whole = sandbox.json(&["up", "bob", "--no-overlay"]);
    let (own, borrowed) = services(&whole);
    assert_eq!(own, names(&["clock", "greeter", "names"]));
    assert!(borrowed.is_empty());
}
