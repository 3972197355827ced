//! The http backend's settings reach terraform through its environment alone, and the override
//! file makes a module that declares a backend of its own use it; without a backend there is no
//! override.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;

use sandpit_terraform::{
    apply, init, outputs, state_list, HttpBackend, BACKEND_OVERRIDE_FILE, BACKEND_OVERRIDE_TEXT,
};

use crate::fixtures::{exists, terraform, Module, SHA_A};

/// A request the state server saw, and the terraform processes running in the module
/// directory at that moment (terraform waits for the answer, so it is there to be looked at).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    /// `/proc/<pid>/cmdline` of each, NULs as spaces.
    command_lines: Vec<String>,
    /// The `TF_*` and `CHECKPOINT_*` entries of `/proc/<pid>/environ` of each, as `NAME=value`.
    environments: Vec<Vec<String>>,
}

/// A tiny state server on loopback that knows no state (404 to every GET, as sandpit's backend
/// answers for a state never written) and records what it was sent.
struct StateServer {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl StateServer {
    fn start(module_dir: &Path) -> StateServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = (Arc::clone(&seen), module_dir.to_path_buf());
        runtime.spawn(async move {
            let app = axum::Router::new().fallback(record).with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        StateServer {
            address,
            seen,
            _runtime: runtime,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(
    axum::extract::State((seen, module_dir)): axum::extract::State<(
        Arc<Mutex<Vec<Seen>>>,
        PathBuf,
    )>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> StatusCode {
    let (command_lines, environments) = processes_in(&module_dir);
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        command_lines,
        environments,
    });
    if method == Method::GET {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    }
}

/// The command lines and environments of the processes whose working directory is `dir`.
fn processes_in(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut command_lines = Vec::new();
    let mut environments = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let proc_dir = entry.path();
        if fs::read_link(proc_dir.join("cwd")).ok().as_deref() != Some(dir) {
            continue;
        }
        let (Ok(cmdline), Ok(environ)) = (
            fs::read(proc_dir.join("cmdline")),
            fs::read(proc_dir.join("environ")),
        ) else {
            continue;
        };
        command_lines.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        environments.push(
            environ
                .split(|b| *b == 0)
                // Only what terraform is told; the rest of the test runner's environment
                // would only clutter a failure's message.
                .filter(|e| e.starts_with(b"TF_") || e.starts_with(b"CHECKPOINT_"))
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
        );
    }
    (command_lines, environments)
}

#[test]
fn the_http_backend_is_reached_with_basic_auth_from_the_environment_only() {
    // The module declares a backend of its own: the override file replaces it.
    let module = Module::new(&[(
        "main.tf",
        "terraform {\n  backend \"local\" {\n    path = \"elsewhere.tfstate\"\n  }\n}\n\noutput \"sha\" {\n  value = var.sha\n}\n\nvariable \"sha\" {\n  type = string\n}\n",
    )]);
    let server = StateServer::start(&module.dir);
    let password = "pw-3d9f0c2e7a41b5";
    let address = format!("http://{}/state/demo/dev/alice/infra", server.address);
    let mut run = module.run_with(&[("sha", SHA_A)]);
    run.backend = Some(HttpBackend {
        address: address.clone(),
        username: "sandpit".to_owned(),
        password: password.to_owned(),
    });

    init(terraform(), &run).unwrap();
    assert_eq!(
        fs::read_to_string(module.file(BACKEND_OVERRIDE_FILE)).unwrap(),
        BACKEND_OVERRIDE_TEXT
    );
    // No state yet at that address: no outputs, nothing in it.
    assert!(outputs(terraform(), &run).unwrap().is_empty());
    assert_eq!(state_list(terraform(), &run).unwrap(), Vec::<String>::new());

    let seen = server.seen();
    assert!(!seen.is_empty(), "terraform never asked the state server");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("sandpit:{password}"))
    );
    for request in &seen {
        assert_eq!(request.path, "/state/demo/dev/alice/infra", "{request:?}");
        assert_eq!(
            request.authorization.as_deref(),
            Some(expected.as_str()),
            "{request:?}"
        );
    }
    assert!(seen.iter().any(|r| r.method == "GET"), "{seen:?}");
    // The password was in the terraform process's environment, and on no command line.
    let watched: Vec<&Seen> = seen
        .iter()
        .filter(|r| !r.command_lines.is_empty())
        .collect();
    assert!(
        !watched.is_empty(),
        "no terraform process seen in the module directory: {seen:?}"
    );
    for request in watched {
        for (command_line, environment) in request.command_lines.iter().zip(&request.environments) {
            assert!(command_line.contains("terraform"), "{command_line}");
            assert!(!command_line.contains(password), "{command_line}");
            assert!(
                environment.contains(&format!("TF_HTTP_PASSWORD={password}")),
                "{environment:?}"
            );
            for name in [
                "TF_HTTP_ADDRESS",
                "TF_HTTP_LOCK_ADDRESS",
                "TF_HTTP_UNLOCK_ADDRESS",
            ] {
                assert!(
                    environment.contains(&format!("{name}={address}")),
                    "{name}: {environment:?}"
                );
            }
            assert!(environment.contains(&"TF_HTTP_USERNAME=sandpit".to_owned()));
            assert!(environment.contains(&format!("TF_VAR_sha={SHA_A}")));
            assert!(environment.contains(&"CHECKPOINT_DISABLE=1".to_owned()));
            assert!(environment.contains(&format!(
                "TF_CLI_CONFIG_FILE={}",
                module.cli_config.display()
            )));
        }
    }
    // Nowhere on disk either: not in the log, not in what terraform keeps of the backend, and
    // the module's own backend was never used.
    let log = module.log_text();
    assert!(
        log.contains("Successfully configured the backend \"http\""),
        "{log}"
    );
    assert!(!log.contains(password), "{log}");
    let backend_record = fs::read_to_string(module.file(".terraform/terraform.tfstate")).unwrap();
    assert!(
        backend_record.contains("\"type\": \"http\""),
        "{backend_record}"
    );
    assert!(!backend_record.contains(password), "{backend_record}");
    assert!(!exists(&module.file("elsewhere.tfstate")));
}

#[test]
fn without_a_backend_there_is_no_override_and_the_state_is_local() {
    let module = Module::new(&[
        (
            "main.tf",
            "resource \"terraform_data\" \"a\" {\n  input = var.sha\n}\n\nvariable \"sha\" {\n  type = string\n}\n",
        ),
        // Left over from a run with the http backend in the same directory.
        (BACKEND_OVERRIDE_FILE, BACKEND_OVERRIDE_TEXT),
    ]);
    let run = module.run_with(&[("sha", SHA_A)]);
    init(terraform(), &run).unwrap();
    assert!(!exists(&module.file(BACKEND_OVERRIDE_FILE)));
    apply(terraform(), &run).unwrap();
    assert!(!exists(&module.file(BACKEND_OVERRIDE_FILE)));
    let state = fs::read_to_string(module.file("terraform.tfstate")).unwrap();
    assert!(state.contains(SHA_A), "{state}");
    assert_eq!(state_list(terraform(), &run).unwrap(), ["terraform_data.a"]);
}
