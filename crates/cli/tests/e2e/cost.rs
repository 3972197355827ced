//! What a biome costs, end to end: `ls` and `status` (text and `--json`) report its processes,
//! their CPU time and memory (read from `/proc` by the daemon), its database's size on the shared
//! instance and its models' memory on the shared endpoint, against the real ones.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{component, http_post_json, Sandbox};

const SPEC: &str = r#"
[project]
name = "costly"

[environments.dev]
biomes = true

[database]
migrations = "db/migrations"

[models.scorer]
path = "models/scorer"
file = "model.onnx"

[services.web]
path = "web"
run = "python3 server.py"
"#;

const SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn project() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("sandpit.toml", SPEC);
    sandbox.write("web/server.py", SERVER);
    // Some rows, so the database is measurably more than an empty clone.
    sandbox.write(
        "db/migrations/001_samples.sql",
        "create table samples(id serial primary key, body text not null);\n\
         insert into samples(body) select repeat('x', 500) from generate_series(1, 2000);\n",
    );
    let model =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/models/linear.onnx"))
            .unwrap();
    fs::create_dir_all(sandbox.repo.join("models/scorer")).unwrap();
    fs::write(sandbox.repo.join("models/scorer/model.onnx"), model).unwrap();
    sandbox.commit("a service, a database and a model");
    sandbox
}

/// The live processes of a process group, counted from `/proc` as `ps` would.
fn live_members(group: u64) -> u32 {
    let mut count = 0;
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after_name)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.get(2) == Some(&group.to_string().as_str()) && !matches!(fields[0], "Z" | "X") {
            count += 1;
        }
    }
    count
}

/// The size of the biome's database as PostgreSQL itself tells its role, through `sandpit psql`.
fn size_by_psql(sandbox: &Sandbox, biome: &str) -> u64 {
    let answer = sandbox.ok(&[
        "psql",
        biome,
        "--",
        "-tAc",
        "select pg_database_size(current_database())",
    ]);
    answer.trim().parse().unwrap_or_else(|_| panic!("{answer}"))
}

fn listed<'a>(listing: &'a Value, biome: &str) -> &'a Value {
    listing["biomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == biome)
        .unwrap_or_else(|| panic!("{biome} is not listed: {listing:#}"))
}

/// Checks one biome's cost against the real processes, database and endpoint.
fn check_cost(sandbox: &Sandbox, cost: &Value, web_pid: u64, model_loaded: bool) {
    let processes = cost["processes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{cost:#}"));
    assert!(processes >= 2, "the service and its log writer: {cost:#}");
    assert_eq!(processes, u64::from(live_members(web_pid)), "{cost:#}");
    assert!(
        cost["rss_bytes"].as_u64().unwrap() > 1024 * 1024,
        "{cost:#}"
    );
    assert!(cost["cpu_seconds"].as_f64().unwrap() >= 0.0, "{cost:#}");
    let database = cost["database_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{cost:#}"));
    let by_psql = size_by_psql(sandbox, "alice");
    // Roughly: a background writer may have flushed a page in between.
    assert!(
        database.abs_diff(by_psql) <= by_psql / 20,
        "sandpit says {database}, PostgreSQL {by_psql}"
    );
    let models = cost["model_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{cost:#}"));
    if model_loaded {
        assert!(models > 0, "{cost:#}");
    } else {
        assert_eq!(
            models, 0,
            "nothing is loaded before the first request: {cost:#}"
        );
    }
}

#[test]
fn ls_and_status_show_what_a_biome_costs() {
    let sandbox = project();
    let up = sandbox.json(&["up", "alice"]);
    assert_eq!(component(&up, "web")["state"], "healthy", "{up:#}");
    let web_pid = component(&up, "web")["pid"].as_u64().unwrap();

    let before = sandbox.json(&["ls"]);
    check_cost(&sandbox, &listed(&before, "alice")["cost"], web_pid, false);

    // One inference request loads the model, on the endpoint, for alice.
    let status = sandbox.status("alice");
    let endpoint = status["models"][0]["endpoint"].as_str().unwrap().to_owned();
    let (code, answer) = http_post_json(
        &format!("{endpoint}/v2/models/scorer/infer"),
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 1.0, 1.0]}]}),
    );
    assert_eq!(code, 200, "{answer:#}");

    let after = sandbox.json(&["ls"]);
    let cost = &listed(&after, "alice")["cost"];
    check_cost(&sandbox, cost, web_pid, true);
    let status = sandbox.status("alice");
    check_cost(&sandbox, &status["cost"], web_pid, true);
    assert_eq!(status["cost"]["model_bytes"], cost["model_bytes"]);

    // The tables say the same, sizes readable.
    let table = sandbox.ok(&["ls"]);
    let header = table.lines().find(|l| l.starts_with("BIOME")).unwrap();
    for column in ["PROCS", "CPU", "RSS", "DB", "MODELS"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(row.contains(" MiB") || row.contains(" KiB"), "{table}");
    let text = sandbox.ok(&["status", "alice"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("cost: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!("{} processes", cost["processes"])) && line.contains("database "),
        "{text}"
    );

    // Asleep, it costs no process and no model memory; its database stays.
    sandbox.json(&["sleep", "alice"]);
    let asleep = sandbox.json(&["ls"]);
    let cost = &listed(&asleep, "alice")["cost"];
    assert_eq!(listed(&asleep, "alice")["state"], "sleeping", "{asleep:#}");
    assert_eq!(cost["processes"], 0, "{cost:#}");
    assert_eq!(cost["model_bytes"], 0, "its model was unloaded: {cost:#}");
    assert!(cost["database_bytes"].as_u64().unwrap() > 0, "{cost:#}");
}
