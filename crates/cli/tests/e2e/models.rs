//! The shared model endpoint end to end: models checked at build time, one endpoint per
//! environment serving the base and every biome, fallback to the base, standard clients.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{component, http_get, http_post_json, Sandbox};

fn test_model(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tests/models")
            .join(name),
    )
    .unwrap()
}

const ECHO_SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(os.environ.get("SANDPIT_MODELS_URL", "").encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const SPEC: &str = r#"
[project]
name = "ml"

[environments.dev]
biomes = true
[environments.dev.models]
max_models = 4

[models.scorer]
path = "models/scorer"
file = "model.onnx"

[services.api]
path = "api"
run = "python3 server.py"
"#;

fn project() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("sandpit.toml", SPEC);
    sandbox.write("api/server.py", ECHO_SERVER);
    fs::create_dir_all(sandbox.repo.join("models/scorer")).unwrap();
    fs::write(
        sandbox.repo.join("models/scorer/model.onnx"),
        test_model("linear.onnx"),
    )
    .unwrap();
    sandbox.commit("linear model");
    sandbox
}

fn infer(url: &str, rows: &[[f32; 3]]) -> (u16, Value) {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    http_post_json(
        url,
        &json!({"inputs": [{"name": "x", "shape": [rows.len(), 3], "datatype": "FP32", "data": data}]}),
    )
}

fn first_output(answer: &Value) -> Vec<f64> {
    answer["outputs"][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn each_biome_gets_its_own_model_version_and_falls_back_to_the_base() {
    let sandbox = project();
    let built = sandbox.json(&["build"]);
    assert_eq!(
        built["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "model")
            .count(),
        1
    );
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let base_url = http_get(&format!(
        "{}/",
        component(&deployed["status"], "api")["url"]
            .as_str()
            .unwrap()
    ))
    .1;
    assert!(
        base_url.starts_with("http://127.0.0.1:") && !base_url.contains("/biomes/"),
        "{base_url}"
    );

    // y = x·[1,2,3] + 0.5, by hand.
    let (code, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]],
    );
    assert_eq!(code, 200, "{answer:#}");
    assert_eq!(first_output(&answer), [6.5, 1.5]);

    // alice carries her own version of the model.
    sandbox.git(&["checkout", "-q", "-b", "alice"]);
    fs::write(
        sandbox.repo.join("models/scorer/model.onnx"),
        test_model("linear_v2.onnx"),
    )
    .unwrap();
    sandbox.commit("scorer v2");
    let alice = sandbox.json(&["up", "alice"]);
    let alice_url = http_get(&format!(
        "{}/",
        component(&alice, "api")["url"].as_str().unwrap()
    ))
    .1;
    assert!(alice_url.ends_with("/biomes/alice"), "{alice_url}");
    // y = x·[10,20,30] - 1
    let (_, answer) = infer(
        &format!("{alice_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(first_output(&answer), [59.0]);
    // The same versions by their names at the root.
    let (_, answer) = infer(
        &format!("{base_url}/v2/models/alice.scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(first_output(&answer), [59.0]);
    let (_, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(first_output(&answer), [6.5], "the base is unaffected");

    // bob's branch does not declare the model: he gets the base's.
    sandbox.git(&["checkout", "-q", "main"]);
    sandbox.git(&["checkout", "-q", "-b", "bob"]);
    sandbox.write(
        "sandpit.toml",
        &SPEC.replace(
            "[models.scorer]\npath = \"models/scorer\"\nfile = \"model.onnx\"\n",
            "",
        ),
    );
    sandbox.commit("bob without a model");
    let bob = sandbox.json(&["up", "bob"]);
    let bob_url = format!("{}/biomes/bob", base_url);
    let (code, answer) = infer(
        &format!("{bob_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 200, "{answer:#}");
    assert_eq!(first_output(&answer), [6.5]);
    assert_eq!(bob["state"], "healthy");

    // Client mistakes are answered plainly and harm nobody.
    let (code, answer) = infer(
        &format!("{base_url}/v2/models/nosuch/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 404, "{answer:#}");
    let (code, answer) = http_post_json(
        &format!("{base_url}/v2/models/scorer/infer"),
        &json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}),
    );
    assert_eq!(code, 400);
    assert!(
        answer.to_string().contains('3'),
        "names the expected shape: {answer}"
    );

    // A standard client: tritonclient[http] against the same endpoint.
    // The test suite's Python environment (scripts/setup.sh makes it, with tritonclient).
    #[allow(clippy::disallowed_methods)]
    let python = std::env::var("SANDPIT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = r#"
import sys, numpy as np, tritonclient.http as http
client = http.InferenceServerClient(url=sys.argv[1])
assert client.is_server_live() and client.is_server_ready()
x = http.InferInput("x", [2, 3], "FP32")
x.set_data_from_numpy(np.array([[1, 1, 1], [0, 2, -1]], dtype=np.float32))
result = client.infer("scorer", [x])
output = result.get_response()["outputs"][0]["name"]
print(result.as_numpy(output).ravel().tolist())
meta = client.get_model_metadata("scorer")
print(meta["inputs"][0]["name"], meta["inputs"][0]["datatype"])
"#;
    let host = base_url.trim_start_matches("http://").to_owned();
    let output = std::process::Command::new(&python)
        .args(["-c", script, &host])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tritonclient: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("[6.5, 1.5]") && printed.contains("x FP32"),
        "{printed}"
    );

    // down unregisters alice: the endpoint no longer answers in her name.
    sandbox.ok(&["down", "alice"]);
    let (code, answer) = infer(
        &format!("{base_url}/biomes/alice/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 404, "{answer:#}");
    let metrics = http_get(&format!("{base_url}/metrics")).1;
    assert!(metrics.contains("sandpit_model_loads_total"), "{metrics}");
}

#[test]
fn a_model_the_engine_cannot_load_fails_the_build() {
    let sandbox = project();
    fs::write(
        sandbox.repo.join("models/scorer/model.onnx"),
        test_model("unsupported.onnx"),
    )
    .unwrap();
    sandbox.commit("unsupported operator");
    let error = sandbox.fails(&["build"], 1);
    assert!(
        error.contains("model `scorer`") && error.contains("model.onnx"),
        "{error}"
    );
    let stderr_lower = error.to_lowercase();
    assert!(
        stderr_lower.contains("op") || stderr_lower.contains("operator"),
        "names the operator: {error}"
    );
}

/// The base's endpoint URL (what the base's `api` echoes as `SANDPIT_MODELS_URL`).
fn models_url(status: &Value) -> String {
    let url = http_get(&format!(
        "{}/",
        component(status, "api")["url"].as_str().unwrap()
    ))
    .1;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url
}

fn error_of(answer: &Value) -> String {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer:#}"))
        .to_owned()
}

/// Regression: any biome name, existing or not, was answered with the base's model.
#[test]
fn a_biome_the_endpoint_does_not_know_is_404_naming_it() {
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let base_url = models_url(&deployed["status"]);
    for url in [
        format!("{base_url}/biomes/typo/v2/models/scorer/infer"),
        format!("{base_url}/v2/models/typo.scorer/infer"),
    ] {
        let (code, answer) = infer(&url, &[[1.0, 1.0, 1.0]]);
        assert_eq!(code, 404, "{url}: {answer:#}");
        let error = error_of(&answer);
        assert!(
            error.contains("biome `typo` is not known to this model endpoint"),
            "{url}: {error}"
        );
    }
    let (code, body) = http_get(&format!("{base_url}/biomes/typo/v2/models/scorer"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("biome `typo`"), "{body}");
    // The base still answers.
    let (code, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!((code, first_output(&answer)), (200, vec![6.5]));
}

/// Regression: a biome taken down with `sandpit down` kept answering with the base's model.
#[test]
fn a_biome_brought_up_then_down_is_unknown_afterwards() {
    let sandbox = project();
    let base_commit = sandbox.git(&["rev-parse", "HEAD"]);
    let deployed = sandbox.json(&["deploy", "dev"]);
    let base_url = models_url(&deployed["status"]);

    // carol's branch does not change the model: her registration is the base's bytes (named
    // for her commit, as reused artifacts are), and she answers under her prefix and by name.
    sandbox.git(&["checkout", "-q", "-b", "carol"]);
    sandbox.write("api/notes.txt", "carol was here\n");
    let carol_commit = sandbox.commit("carol changes the service only");
    let carol = sandbox.json(&["up", "carol"]);
    assert_eq!(carol["state"], "healthy", "{carol:#}");
    for url in [
        format!("{base_url}/biomes/carol/v2/models/scorer/infer"),
        format!("{base_url}/v2/models/carol.scorer/infer"),
    ] {
        let (code, answer) = infer(&url, &[[1.0, 1.0, 1.0]]);
        assert_eq!((code, first_output(&answer)), (200, vec![6.5]), "{url}");
        assert_eq!(answer["model_version"], carol_commit[..12], "{url}");
    }
    let (_, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(answer["model_version"], base_commit[..12]);

    // dave's branch declares no models at all: he is still known, and gets the base's.
    sandbox.git(&["checkout", "-q", "main"]);
    sandbox.git(&["checkout", "-q", "-b", "dave"]);
    sandbox.write(
        "sandpit.toml",
        &SPEC.replace(
            "[models.scorer]\npath = \"models/scorer\"\nfile = \"model.onnx\"\n",
            "",
        ),
    );
    sandbox.commit("dave without a model");
    let dave = sandbox.json(&["up", "dave"]);
    let dave_url = http_get(&format!(
        "{}/",
        component(&dave, "api")["url"].as_str().unwrap()
    ))
    .1;
    assert_eq!(dave_url, format!("{base_url}/biomes/dave"));
    let (code, answer) = infer(
        &format!("{dave_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!((code, first_output(&answer)), (200, vec![6.5]));

    for biome in ["carol", "dave"] {
        sandbox.ok(&["down", biome]);
        for url in [
            format!("{base_url}/biomes/{biome}/v2/models/scorer/infer"),
            format!("{base_url}/v2/models/{biome}.scorer/infer"),
        ] {
            let (code, answer) = infer(&url, &[[1.0, 1.0, 1.0]]);
            assert_eq!(code, 404, "{url}: {answer:#}");
            let error = error_of(&answer);
            assert!(
                error.contains(&format!("biome `{biome}` is not known")),
                "{url}: {error}"
            );
        }
    }
    let (code, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!((code, first_output(&answer)), (200, vec![6.5]));
}

/// Regression: model metadata's `versions` was always `["1"]`.
#[test]
fn metadata_versions_carry_the_short_sha_of_the_artifact_that_answers() {
    let sandbox = project();
    let base_commit = sandbox.git(&["rev-parse", "HEAD"]);
    let deployed = sandbox.json(&["deploy", "dev"]);
    let base_url = models_url(&deployed["status"]);
    sandbox.git(&["checkout", "-q", "-b", "alice"]);
    fs::write(
        sandbox.repo.join("models/scorer/model.onnx"),
        test_model("linear_v2.onnx"),
    )
    .unwrap();
    let alice_commit = sandbox.commit("scorer v2");
    sandbox.ok(&["up", "alice"]);
    let (base_version, alice_version) = (&base_commit[..12], &alice_commit[..12]);

    // (metadata URL, the version that answers)
    for (url, version) in [
        (format!("{base_url}/v2/models/scorer"), base_version),
        (format!("{base_url}/v2/models/alice.scorer"), alice_version),
        (
            format!("{base_url}/biomes/alice/v2/models/scorer"),
            alice_version,
        ),
    ] {
        let (code, body) = http_get(&url);
        assert_eq!(code, 200, "{url}: {body}");
        let metadata: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(metadata["versions"], json!([version]), "{url}");
        // The versioned routes answer for that version, and only for it.
        let (code, answer) = infer(
            &format!("{url}/versions/{version}/infer"),
            &[[1.0, 1.0, 1.0]],
        );
        assert_eq!(code, 200, "{url}: {answer:#}");
        assert_eq!(answer["model_version"], version, "{url}");
        let other = if version == base_version {
            alice_version
        } else {
            base_version
        };
        let (code, body) = http_get(&format!("{url}/versions/{other}"));
        assert_eq!(code, 404, "{url}: {body}");
        assert!(
            body.contains(&format!("is served at version `{version}`")),
            "{url}: {body}"
        );
    }
    let (_, answer) = infer(
        &format!("{base_url}/biomes/alice/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(first_output(&answer), [59.0]);
}

/// A base deployed from a commit without models stops serving the models of the commit before.
#[test]
fn a_base_deployed_without_models_serves_none() {
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    let base_url = models_url(&deployed["status"]);
    let (code, _) = http_get(&format!("{base_url}/v2/models/scorer"));
    assert_eq!(code, 200);
    sandbox.write(
        "sandpit.toml",
        &SPEC.replace(
            "[models.scorer]\npath = \"models/scorer\"\nfile = \"model.onnx\"\n",
            "",
        ),
    );
    sandbox.commit("no more models");
    let redeployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(redeployed["state"], "succeeded", "{redeployed:#}");
    let (code, body) = http_get(&format!("{base_url}/v2/models/scorer"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("unknown model `scorer`"), "{body}");
}

#[test]
fn trace_of_a_model_digest_finds_the_endpoints_that_serve_it_and_verify_checks_it() {
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let model = deployed["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "scorer")
        .unwrap()
        .clone();
    let digest = model["digest"].as_str().unwrap().to_owned();
    sandbox.json(&["up", "alice"]);

    let trace = sandbox.json(&["trace", &digest]);
    let mut served: Vec<(String, String)> = trace["running"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["served_as"] == "model")
        .map(|r| {
            assert_eq!(r["component"], "scorer", "{trace:#}");
            assert_eq!(r["digest"], digest.as_str());
            (
                r["target"].as_str().unwrap().to_owned(),
                r["artifact"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    served.sort();
    let targets: Vec<&str> = served.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["dev", "dev/alice"], "{trace:#}");
    assert_eq!(served[0].1, model["artifact"].as_str().unwrap());

    // verify checks what the endpoint serves, too.
    let report = sandbox.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(
        report["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["component"] == "scorer"
                && r["target"] == "dev"
                && r["integrity"] == "intact"),
        "{report:#}"
    );
}

/// An HTTP client (and file reader) run as another local user: each call is
/// `{"url", "method", "headers", "body"}` or `{"read": path}`; prints one JSON answer per call,
/// `[status, body]` or the name of the error reading the file raised.
const OTHER_USER_CLIENT: &str = r#"import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
answers = []
for call in json.loads(sys.argv[1]):
    if "read" in call:
        try:
            open(call["read"]).read()
            answers.append("read")
        except OSError as e:
            answers.append(type(e).__name__)
        continue
    body = call.get("body")
    request = urllib.request.Request(call["url"], method=call["method"],
        data=None if body is None else json.dumps(body).encode(), headers=call.get("headers", {}))
    try:
        with opener.open(request, timeout=20) as response:
            answers.append([response.status, response.read().decode()])
    except urllib.error.HTTPError as e:
        answers.append([e.code, e.read().decode()])
print(json.dumps(answers))
"#;

/// The user the "other local user" runs as: `nobody`.
const NOBODY: u32 = 65534;

/// Runs `calls` (see [`OTHER_USER_CLIENT`]) with Python as user `nobody` (through `setpriv`, as
/// these tests run as root); returns one answer per call.
fn as_another_user(calls: &Value) -> Vec<Value> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests act as a second local user through setpriv, which needs root"
    );
    // The test's own python3 may live where `nobody` cannot reach (e.g. under /root).
    let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let output = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            python,
            "-c",
            OTHER_USER_CLIENT,
            &calls.to_string(),
        ])
        .current_dir("/")
        .output()
        .expect("setpriv runs");
    assert!(
        output.status.success(),
        "the client as user {NOBODY} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// An inference call for [`as_another_user`], rows of three FP32 values.
fn infer_call(url: &str, rows: &[[f32; 3]]) -> Value {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    json!({
        "url": url, "method": "POST", "headers": {"content-type": "application/json"},
        "body": {"inputs": [{"name": "x", "shape": [rows.len(), 3], "datatype": "FP32", "data": data}]},
    })
}

/// The outputs of an `[status, body]` answer of [`as_another_user`], insisting on 200.
fn other_user_output(answer: &Value) -> Vec<f64> {
    assert_eq!(answer[0], 200, "{answer:#}");
    first_output(&serde_json::from_str(answer[1].as_str().unwrap()).unwrap())
}

/// The model file another local user made: linear_v2.onnx, in a directory of theirs.
fn attackers_model(sandbox: &Sandbox) -> (std::path::PathBuf, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = sandbox.home.parent().unwrap().join("mallory");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    let bytes = test_model("linear_v2.onnx");
    fs::write(&path, &bytes).unwrap();
    for owned in [&dir, &path] {
        nix::unistd::chown(
            owned.as_path(),
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOBODY)),
        )
        .unwrap();
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    (path, digest)
}

/// The command line of the environment's model server (from /proc), as any user sees it in `ps`.
fn model_server_command_line(sandbox: &Sandbox) -> Option<(u32, String)> {
    let home = sandbox.home.display().to_string();
    fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let raw = fs::read(entry.path().join("cmdline")).ok()?;
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        (line.contains(" model-server ") && line.contains(&home)).then_some((pid, line))
    })
}

/// Regression: any local user could register a model of their own with the endpoint (running
/// as root), which a biome then answered with, and unregister anyone's models.
#[test]
fn another_local_user_cannot_register_or_unregister_models_but_can_infer() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let base_url = models_url(&deployed["status"]);
    sandbox.json(&["up", "alice"]);
    let (theirs, digest) = attackers_model(&sandbox);
    let artifact = format!("scorer-{}.zip", "a".repeat(40));
    let registration = json!({"models": [
        {"name": "scorer", "artifact": artifact, "digest": digest, "path": theirs, "file": "model.onnx"}
    ]});
    let state_dir = sandbox.home.join("projects/ml/models/dev");
    let token_file = state_dir.join("token");

    let mut calls = Vec::new();
    for headers in [
        json!({"content-type": "application/json"}),
        json!({"content-type": "application/json", "authorization": "Bearer guessed"}),
    ] {
        for biome in ["_base", "alice", "mallory"] {
            calls.push(json!({
                "url": format!("{base_url}/sandpit/biomes/{biome}/models"), "method": "PUT",
                "headers": headers, "body": registration,
            }));
        }
        for biome in ["_base", "alice"] {
            calls.push(json!({
                "url": format!("{base_url}/sandpit/biomes/{biome}/models"), "method": "DELETE",
                "headers": headers,
            }));
        }
    }
    let refused = calls.len();
    calls.push(json!({"read": token_file}));
    calls.push(infer_call(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    ));
    calls.push(infer_call(
        &format!("{base_url}/biomes/alice/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    ));
    let answers = as_another_user(&Value::from(calls.clone()));
    for (call, answer) in calls.iter().zip(&answers).take(refused) {
        assert_eq!(answer[0], 401, "{call:#}: {answer:#}");
        let body: Value = serde_json::from_str(answer[1].as_str().unwrap()).unwrap();
        assert!(
            error_of(&body).contains("Bearer <token>") || error_of(&body).contains("bearer token"),
            "{answer:#}"
        );
    }
    // The token is not theirs to read, and it is not on the endpoint's command line either.
    assert_eq!(answers[refused], "PermissionError", "{answers:?}");
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&state_dir), 0o700);
    let token = fs::read_to_string(&token_file).unwrap();
    let (_, command_line) = model_server_command_line(&sandbox).expect("the model server runs");
    assert!(
        command_line.contains(&format!("--token-file {}", token_file.display())),
        "{command_line}"
    );
    assert!(!command_line.contains(token.trim()), "{command_line}");
    // Inference is open to them, and every biome still answers with its own model.
    assert_eq!(other_user_output(&answers[refused + 1]), [6.5]);
    assert_eq!(other_user_output(&answers[refused + 2]), [6.5]);
    let (code, answer) = infer(
        &format!("{base_url}/biomes/alice/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!((code, first_output(&answer)), (200, vec![6.5]));
    let (code, _) = infer(
        &format!("{base_url}/biomes/mallory/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 404);

    // sandpit itself still registers and unregisters (it has the token).
    sandbox.ok(&["down", "alice"]);
    let (code, answer) = infer(
        &format!("{base_url}/biomes/alice/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 404, "{answer:#}");
}

/// A saved registration is restored through the same checks as the API: one naming a file
/// outside the environment's stores is refused when the endpoint restarts.
#[test]
fn a_restarted_endpoint_does_not_restore_a_registration_outside_its_stores() {
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let base_url = models_url(&deployed["status"]);
    let (theirs, digest) = attackers_model(&sandbox);
    let saved = sandbox
        .home
        .join("projects/ml/models/dev/registrations/mallory.json");
    fs::write(
        &saved,
        json!({"models": [{
            "name": "scorer", "artifact": format!("scorer-{}.zip", "a".repeat(40)),
            "digest": digest, "path": theirs, "file": "model.onnx",
        }]})
        .to_string(),
    )
    .unwrap();
    let (pid, _) = model_server_command_line(&sandbox).expect("the model server runs");
    crate::harness::kill9(pid);
    // The daemon starts it again; it is back when it answers from a new process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let restarted = model_server_command_line(&sandbox).is_some_and(|(p, _)| p != pid);
        if restarted
            && reqwest::blocking::get(format!("{base_url}/v2/health/ready"))
                .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the model server did not come back"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, answer) = infer(
        &format!("{base_url}/biomes/mallory/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(code, 404, "{answer:#}");
    assert!(
        error_of(&answer).contains("biome `mallory` is not known"),
        "{answer:#}"
    );
    let log =
        fs::read_to_string(sandbox.home.join("projects/ml/models/dev/model-server.log")).unwrap();
    assert!(
        log.contains("not restoring the saved registration")
            && log.contains("not inside an artifact store"),
        "{log}"
    );
    // The base's own registration was restored.
    let (code, answer) = infer(
        &format!("{base_url}/v2/models/scorer/infer"),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!((code, first_output(&answer)), (200, vec![6.5]));
}

/// `status` says which models a biome is answered with, which artifact and digest, whether it is
/// the biome's own version or the environment's it falls back to, and under which URL.
#[test]
fn status_shows_the_models_of_a_biome_and_whether_they_are_its_own() {
    let sandbox = project();
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let base_url = models_url(&deployed["status"]);
    let base = sandbox.status("dev");
    let base_models = base["models"].as_array().unwrap();
    assert_eq!(base_models.len(), 1, "{base:#}");
    assert_eq!(base_models[0]["name"], "scorer");
    assert_eq!(base_models[0]["source"], "environment");
    assert_eq!(base_models[0]["endpoint"], base_url.as_str());
    let base_digest = base_models[0]["digest"].as_str().unwrap().to_owned();
    assert!(base_digest.starts_with("sha256:"), "{base:#}");

    // alice carries her own version.
    sandbox.git(&["checkout", "-q", "-b", "alice"]);
    fs::write(
        sandbox.repo.join("models/scorer/model.onnx"),
        test_model("linear_v2.onnx"),
    )
    .unwrap();
    let alice_sha = sandbox.commit("scorer v2");
    let alice = sandbox.json(&["up", "alice"]);
    let alice_url = http_get(&format!(
        "{}/",
        component(&alice, "api")["url"].as_str().unwrap()
    ))
    .1;
    let status = sandbox.status("alice");
    let models = status["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{status:#}");
    let own = &models[0];
    assert_eq!(own["name"], "scorer");
    assert_eq!(own["source"], "biome");
    assert_eq!(own["artifact"], format!("scorer-{alice_sha}.zip"));
    assert_ne!(own["digest"], base_digest.as_str());
    assert_eq!(
        own["endpoint"],
        alice_url.as_str(),
        "the biome's SANDPIT_MODELS_URL"
    );
    let (code, metadata) = http_get(own["url"].as_str().unwrap());
    assert_eq!(code, 200, "the model's route answers: {metadata}");
    let (_, answer) = infer(
        &format!("{}/infer", own["url"].as_str().unwrap()),
        &[[1.0, 1.0, 1.0]],
    );
    assert_eq!(
        first_output(&answer),
        [59.0],
        "alice's version answers there"
    );
    let text = sandbox.ok(&["status", "alice"]);
    assert!(text.contains(&alice_url), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("scorer "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("this biome"), "{text}");

    // bob's branch declares no model: he is answered with the environment's.
    sandbox.git(&["checkout", "-q", "main"]);
    sandbox.git(&["checkout", "-q", "-b", "bob"]);
    sandbox.write(
        "sandpit.toml",
        &SPEC.replace(
            "[models.scorer]\npath = \"models/scorer\"\nfile = \"model.onnx\"\n",
            "",
        ),
    );
    sandbox.commit("bob without a model");
    sandbox.json(&["up", "bob"]);
    let status = sandbox.status("bob");
    let models = status["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{status:#}");
    assert_eq!(models[0]["source"], "environment");
    assert_eq!(models[0]["digest"], base_digest.as_str());
    assert_eq!(
        models[0]["endpoint"],
        format!("{base_url}/biomes/bob").as_str()
    );
    let text = sandbox.ok(&["status", "bob"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("scorer "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("environment dev (fallback)"), "{text}");
}
