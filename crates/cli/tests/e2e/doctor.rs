//! Prerequisites: ONNX Runtime found beside the binary with no variable set (the README's layout,
//! `target/python` next to `target/debug/sandpit`), and `sandpit doctor` on a healthy machine and
//! on one with things missing.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::harness::{component, http_get, http_post_json, Sandbox, SANDPIT};

const SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(os.environ.get("SANDPIT_MODELS_URL", "").encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A project with a model and a service that prints its `SANDPIT_MODELS_URL`; with `database`,
/// also a `[database]` (embedded in `dev`, an external URL from an unset variable in `prod`).
fn project(database: bool) -> Sandbox {
    let sandbox = Sandbox::new();
    let mut spec = String::from(
        r#"
[project]
name = "ml"

[environments.dev]
biomes = true

[models.scorer]
path = "models/scorer"
file = "model.onnx"

[services.api]
path = "api"
run = "python3 server.py"
"#,
    );
    if database {
        spec.push_str(
            r#"
[environments.prod]
[environments.prod.database]
url_env = "ML_DOCTOR_PROD_DATABASE_URL"

[database]
migrations = "db/migrations"
"#,
        );
        sandbox.write(
            "db/migrations/001_samples.sql",
            "create table samples(id serial primary key);\n",
        );
    }
    sandbox.write("sandpit.toml", &spec);
    sandbox.write("api/server.py", SERVER);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/models/linear.onnx");
    fs::create_dir_all(sandbox.repo.join("models/scorer")).unwrap();
    fs::copy(model, sandbox.repo.join("models/scorer/model.onnx")).unwrap();
    sandbox.commit("a model");
    sandbox
}

/// Runs sandpit as the user's own shell would after the README's setup: neither
/// `ORT_DYLIB_PATH` nor `SANDPIT_PYTHON` set (the harness passes the test's through otherwise).
fn run_without_ort_variables(sandbox: &Sandbox, args: &[&str]) -> Output {
    sandbox
        .command(args)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("SANDPIT_PYTHON")
        .output()
        .expect("sandpit runs")
}

fn stdout_json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

/// `target/python`, beside `target/debug/sandpit`: where `scripts/setup.sh` installs the wheel.
fn venv_beside_the_binary() -> std::path::PathBuf {
    Path::new(SANDPIT)
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("python")
}

#[test]
fn after_the_setup_a_project_with_a_model_comes_up_without_ort_dylib_path() {
    let sandbox = project(false);
    let up = run_without_ort_variables(&sandbox, &["up", "alice", "--json"]);
    assert!(
        up.status.success(),
        "up without ORT_DYLIB_PATH failed:\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let alice = stdout_json(&up);
    // The endpoint the daemon started (from an environment without the variables either) answers.
    let models_url = http_get(&format!(
        "{}/",
        component(&alice, "api")["url"].as_str().unwrap()
    ))
    .1;
    let (code, answer) = http_post_json(
        &format!("{models_url}/v2/models/scorer/infer"),
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 1.0, 1.0]}]}),
    );
    assert_eq!(code, 200, "{answer:#}");
    assert_eq!(answer["outputs"][0]["data"], json!([6.5]));

    // And doctor says where it was found: the venv beside the binary, not a variable.
    let doctor = run_without_ort_variables(&sandbox, &["doctor", "--json"]);
    let report = stdout_json(&doctor);
    let onnxruntime = check(&report, "onnxruntime");
    assert_eq!(onnxruntime["status"], "ok", "{report:#}");
    let detail = onnxruntime["detail"].as_str().unwrap();
    assert!(
        detail.contains(&venv_beside_the_binary().display().to_string())
            && detail.contains("beside sandpit"),
        "{detail}"
    );
}

#[test]
fn doctor_on_a_healthy_machine_reports_every_check_ok_and_exits_0() {
    let sandbox = project(true);
    sandbox.json(&["up", "alice"]);
    let output = sandbox.run(&["doctor", "--json"]);
    let report = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    for name in [
        "git",
        "postgresql",
        "psql",
        "onnxruntime",
        "terraform",
        "daemon",
        "instance:ml/dev/postgres",
        "instance:ml/dev/models",
        "disk",
        "home",
        "secrets",
        "project",
    ] {
        let found = check(&report, name);
        assert_eq!(found["status"], "ok", "{name}: {report:#}");
        assert!(found["fix"].is_null(), "{name}: {report:#}");
        assert!(!found["detail"].as_str().unwrap().is_empty(), "{name}");
    }
    assert!(
        check(&report, "daemon")["detail"]
            .as_str()
            .unwrap()
            .starts_with("running (pid "),
        "{report:#}"
    );
    assert!(
        check(&report, "instance:ml/dev/postgres")["detail"]
            .as_str()
            .unwrap()
            .contains("healthy on port"),
        "{report:#}"
    );
    // A deploy target's URL variable not set here is worth a warning, which keeps exit 0.
    let prod = check(&report, "database-url:prod");
    assert_eq!(prod["status"], "warning", "{report:#}");
    assert_eq!(
        prod["fix"],
        "export ML_DOCTOR_PROD_DATABASE_URL=postgres://admin@host:5432/postgres"
    );
    // Every check has exactly the documented fields.
    for check in report["checks"].as_array().unwrap() {
        let mut keys: Vec<&str> = check
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "fix", "name", "status"], "{check:#}");
    }

    let text = sandbox.ok(&["doctor"]);
    assert!(text.contains("\nok      postgresql"), "{text}");
    assert!(text.contains("0 errors, 1 warning"), "{text}");
}

#[test]
fn doctor_names_each_missing_prerequisite_with_its_fix_and_exits_1() {
    let mut sandbox = Sandbox::new();
    // A PATH with git and nothing of PostgreSQL's; SANDPIT_PG_BIN keeps the lookup away from
    // /usr/lib/postgresql.
    let bin = sandbox.home.with_file_name("bin");
    let no_postgres = sandbox.home.with_file_name("no-postgres");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&no_postgres).unwrap();
    let git = sandbox.git(&["--exec-path"]);
    symlink(Path::new(&git).join("git"), bin.join("git")).unwrap();
    let missing_library = sandbox.home.with_file_name("lib/libonnxruntime.so.1.32.0");
    sandbox.extra_env = vec![
        ("PATH".into(), bin.display().to_string()),
        ("SANDPIT_PG_BIN".into(), no_postgres.display().to_string()),
        (
            "ORT_DYLIB_PATH".into(),
            missing_library.display().to_string(),
        ),
    ];

    let output = sandbox.run(&["doctor", "--json"]);
    let report = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    assert_eq!(check(&report, "git")["status"], "ok", "{report:#}");

    let postgresql = check(&report, "postgresql");
    assert_eq!(postgresql["status"], "error", "{report:#}");
    assert!(
        postgresql["detail"]
            .as_str()
            .unwrap()
            .contains(&no_postgres.display().to_string()),
        "{report:#}"
    );
    let fix = postgresql["fix"].as_str().unwrap();
    assert!(fix.starts_with("unset SANDPIT_PG_BIN"), "{fix}");

    let onnxruntime = check(&report, "onnxruntime");
    assert_eq!(onnxruntime["status"], "error", "{report:#}");
    assert_eq!(
        onnxruntime["detail"],
        format!(
            "ORT_DYLIB_PATH is {}, which is not a file",
            missing_library.display()
        )
    );
    assert!(
        onnxruntime["fix"]
            .as_str()
            .unwrap()
            .starts_with("unset ORT_DYLIB_PATH"),
        "{report:#}"
    );

    // psql is only a warning: nothing but `sandpit psql` needs it.
    let psql = check(&report, "psql");
    assert_eq!(psql["status"], "warning", "{report:#}");
    assert!(
        psql["fix"]
            .as_str()
            .unwrap()
            .ends_with("apt-get install -y postgresql-client"),
        "{report:#}"
    );

    let text = String::from_utf8_lossy(&sandbox.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("\nerror   postgresql"), "{text}");
    assert!(text.contains("fix: unset SANDPIT_PG_BIN"), "{text}");
    assert!(text.contains("fix: unset ORT_DYLIB_PATH"), "{text}");
    // Terraform is not on the restricted PATH either: a warning, since this project has no
    // terraform component.
    let terraform = check(&report, "terraform");
    assert_eq!(terraform["status"], "warning", "{report:#}");
    assert!(
        terraform["fix"]
            .as_str()
            .unwrap()
            .starts_with("install Terraform"),
        "{report:#}"
    );
    assert!(text.contains("2 errors, 2 warnings"), "{text}");
}

#[test]
fn up_without_postgresql_binaries_points_at_doctor() {
    let mut sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "geo"

[database]
migrations = "db/migrations"

[jobs.noop]
path = "noop"
run = "true"
"#,
        ),
        (
            "db/migrations/001.sql",
            "create table samples(id serial primary key);\n",
        ),
        ("noop/README", "nothing\n"),
    ]);
    let no_postgres = sandbox.home.with_file_name("no-postgres");
    fs::create_dir_all(&no_postgres).unwrap();
    sandbox.extra_env = vec![("SANDPIT_PG_BIN".into(), no_postgres.display().to_string())];
    let stderr = sandbox.fails(&["up", "alice"], 1);
    assert!(
        stderr.contains(&format!(
            "SANDPIT_PG_BIN is {}, which does not hold PostgreSQL's server binaries",
            no_postgres.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("run `sandpit doctor`"), "{stderr}");
}

#[test]
fn build_without_git_points_at_doctor() {
    let mut sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            "[project]\nname = \"geo\"\n[jobs.noop]\npath = \"noop\"\nrun = \"true\"\n",
        ),
        ("noop/README", "nothing\n"),
    ]);
    let empty = sandbox.home.with_file_name("empty-path");
    fs::create_dir_all(&empty).unwrap();
    sandbox.extra_env = vec![("PATH".into(), empty.display().to_string())];
    let stderr = sandbox.fails(&["build"], 1);
    assert!(stderr.contains("could not run `git`"), "{stderr}");
    assert!(
        stderr.contains("\nhint: run `sandpit doctor` to check every prerequisite"),
        "{stderr}"
    );
}
