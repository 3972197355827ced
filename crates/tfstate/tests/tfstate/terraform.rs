//! The real `terraform` binary against the backend: given only `TF_HTTP_*` variables and an
//! override file naming the http backend, as sandpit will run it.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use sandpit_tfstate::StateKey;
use tokio::process::Command;

use crate::support::{key, Backend};

/// A module with one `terraform_data` whose creation runs `sleep ${var.pause}`.
const MODULE: &str = r#"
variable "pause" {
  type    = string
  default = "0"
}

resource "terraform_data" "marker" {
  input = "hello"

  provisioner "local-exec" {
    command = "sleep ${var.pause}"
  }
}

output "marker" {
  value = terraform_data.marker.output
}
"#;

/// How long to wait for the first apply to take its lock (polled every few milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(120);

struct Workspace {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Workspace {
    fn new(backend: &Backend, key: &StateKey) -> Workspace {
        require_terraform();
        let dir = backend.dir.path().join("module");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), MODULE).unwrap();
        std::fs::write(
            dir.join("sandpit_backend_override.tf"),
            "terraform {\n  backend \"http\" {}\n}\n",
        )
        .unwrap();
        let cli_config = backend.dir.path().join("terraformrc");
        std::fs::write(&cli_config, "").unwrap();
        let url = key.url(&backend.origin);
        let credential = backend.store.credential(key).unwrap();
        let env = [
            ("TF_HTTP_ADDRESS", url.as_str()),
            ("TF_HTTP_LOCK_ADDRESS", url.as_str()),
            ("TF_HTTP_UNLOCK_ADDRESS", url.as_str()),
            ("TF_HTTP_USERNAME", &key.path()),
            ("TF_HTTP_PASSWORD", &credential),
            ("TF_CLI_CONFIG_FILE", cli_config.to_str().unwrap()),
            ("CHECKPOINT_DISABLE", "1"),
            ("TF_IN_AUTOMATION", "1"),
            ("HOME", backend.dir.path().to_str().unwrap()),
            ("PATH", &search_path()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Workspace { dir, env }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("terraform");
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            // Its own process group, so a kill reaches the provisioner's `sleep` too.
            .process_group(0)
            .stdin(std::process::Stdio::null());
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    async fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "terraform {args:?} failed:\n{}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn init(&self) {
        self.run_ok(&["init", "-input=false", "-no-color"]).await;
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[allow(clippy::disallowed_methods)] // the test harness's own PATH, to find terraform and sh
fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
}

fn require_terraform() {
    let found = std::process::Command::new("terraform")
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output();
    match found {
        Ok(output) if output.status.success() => {}
        _ => panic!("these tests need the `terraform` binary (1.11 or later) on PATH: install it"),
    }
}

const APPLY: &[&str] = &[
    "apply",
    "-auto-approve",
    "-input=false",
    "-no-color",
    "-lock-timeout=0s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_applies_and_pulls_its_state_through_the_backend() {
    let backend = Backend::start(10).await;
    let network = key(None, "network");
    let workspace = Workspace::new(&backend, &network);
    workspace.init().await;
    workspace.run_ok(APPLY).await;

    let pulled = workspace.run_ok(&["state", "pull"]).await;
    assert!(pulled.contains("\"terraform_data\""), "{pulled}");
    assert!(pulled.contains("\"marker\""), "{pulled}");
    let current = backend.store.current(&network).unwrap().unwrap();
    let current: serde_json::Value = serde_json::from_slice(&current).unwrap();
    let pulled: serde_json::Value = serde_json::from_str(&pulled).unwrap();
    assert_eq!(current["lineage"], pulled["lineage"]);
    assert_eq!(current["serial"], pulled["serial"]);
    assert!(!backend.store.versions(&network).unwrap().is_empty());
    assert_eq!(
        backend.store.lock(&network).unwrap(),
        None,
        "apply unlocked"
    );

    // Nothing changes: a second apply writes no new serial, and the state stays.
    workspace.run_ok(APPLY).await;
    let listed = workspace.run_ok(&["state", "list"]).await;
    assert_eq!(listed.trim(), "terraform_data.marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_is_told_who_holds_the_lock_and_a_killed_applys_lock_is_cleared_by_force_unlock(
) {
    let backend = Backend::start(10).await;
    let network = key(Some("feat-x"), "network");
    let workspace = Workspace::new(&backend, &network);
    workspace.init().await;

    let mut first = workspace
        .command(&[APPLY, &["-var", "pause=30"]].concat())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let holder = wait_for_lock(&backend, &network).await;

    let second = workspace.run(APPLY).await;
    assert!(!second.status.success(), "the second apply must not run");
    let said = text(&second);
    assert!(said.contains("Error acquiring the state lock"), "{said}");
    assert!(said.contains(&holder.id), "names the holder's ID: {said}");
    assert!(said.contains(&holder.who), "names who holds it: {said}");

    // SIGKILL mid-apply (the provisioner sleeps): nobody unlocks.
    let pid = first.id().unwrap() as i32;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    first.wait().await.unwrap();
    assert_eq!(backend.store.lock(&network).unwrap(), Some(holder.clone()));
    let still = workspace.run(APPLY).await;
    assert!(!still.status.success(), "the lock outlives its holder");

    assert_eq!(backend.store.force_unlock(&network).unwrap(), Some(holder));
    workspace.run_ok(APPLY).await;
    let listed = workspace.run_ok(&["state", "list"]).await;
    assert_eq!(listed.trim(), "terraform_data.marker");
    assert_eq!(backend.store.lock(&network).unwrap(), None);
}

async fn wait_for_lock(backend: &Backend, key: &StateKey) -> sandpit_tfstate::LockInfo {
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        if let Some(holder) = backend.store.lock(key).unwrap() {
            return holder;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first apply never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
