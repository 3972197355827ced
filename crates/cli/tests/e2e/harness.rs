//! A sandbox per test: a git repository, a `SANDPIT_HOME`, and helpers to drive the binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const SANDPIT: &str = env!("CARGO_BIN_EXE_sandpit");

/// A temporary git repository and `SANDPIT_HOME`; stops its daemon and every process it left
/// when dropped, so a failing test does not leak processes into the next.
pub struct Sandbox {
    /// Removed when the sandbox is dropped.
    _dir: TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

impl Sandbox {
    /// An empty git repository.
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("sp")
            .tempdir()
            .expect("temp dir");
        // PostgreSQL runs as the `postgres` user when the tests run as root; it must be able to
        // pass through the sandbox to reach its data directory.
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        fs::create_dir_all(&repo).unwrap();
        let sandbox = Sandbox {
            _dir: dir,
            home,
            repo,
            extra_env: Vec::new(),
        };
        sandbox.git(&["-c", "init.defaultBranch=main", "init", "-q"]);
        sandbox.git(&["config", "user.email", "dev@example.com"]);
        sandbox.git(&["config", "user.name", "Dev"]);
        sandbox
    }

    /// A repository holding a copy of `examples/orewise`, committed.
    pub fn with_example() -> Sandbox {
        let sandbox = Sandbox::new();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/orewise");
        copy_tree(&example, &sandbox.repo);
        sandbox.commit("orewise example");
        sandbox
    }

    /// A repository with the given files, committed.
    pub fn with_files(files: &[(&str, &str)]) -> Sandbox {
        let sandbox = Sandbox::new();
        for (path, contents) in files {
            sandbox.write(path, contents);
        }
        sandbox.commit("initial");
        sandbox
    }

    pub fn write(&self, path: &str, contents: &str) {
        let full = self.repo.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, contents).unwrap();
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.repo)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SANDPIT);
        command
            .args(args)
            .current_dir(&self.repo)
            .env("SANDPIT_HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("SANDPIT_STOP_GRACE_MS", "3000")
            // Never the real user's `sandpit login` credentials: with them, `approve` and
            // `reject` would go to their server.
            .env("XDG_CONFIG_HOME", self.home.with_file_name("config"))
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs sandpit and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("sandpit runs")
    }

    /// Runs sandpit and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "sandpit {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs sandpit expecting failure with exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "sandpit {args:?} should exit {code}:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let stdout = self.ok(&with_json);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("sandpit {args:?} --json: {e}\n{stdout}"))
    }

    pub fn status(&self, biome: &str) -> Value {
        self.json(&["status", biome])
    }

    /// Polls `status` until `accept` holds, or panics with the last status after `timeout`.
    pub fn wait_for_status(
        &self,
        biome: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(biome);
            if accept(&status) {
                return status;
            }
            if Instant::now() > deadline {
                panic!("status of {biome} never satisfied the condition; last:\n{status:#}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Processes whose working directory is inside this sandbox's `SANDPIT_HOME` (the components),
    /// except zombies.
    pub fn processes_under_home(&self) -> Vec<u32> {
        let home = fs::canonicalize(&self.home).unwrap_or(self.home.clone());
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cwd) = fs::read_link(entry.path().join("cwd")) else {
                continue;
            };
            if !cwd.starts_with(&home) {
                continue;
            }
            let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("");
            if state != "Z" && state != "X" && !stat.is_empty() {
                found.push(pid);
            }
        }
        found
    }

    /// Processes of the biomes' components: those under `SANDPIT_HOME` minus the groups of
    /// environment-level instances (the embedded PostgreSQL), which outlive biomes.
    pub fn component_processes(&self) -> Vec<u32> {
        let daemon = self.json(&["daemon", "status"]);
        let instance_groups: Vec<u32> = daemon["instances"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|i| i["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default();
        self.processes_under_home()
            .into_iter()
            // PostgreSQL's children make themselves group leaders, so look at the parent too.
            .filter(|pid| {
                !instance_groups.contains(pid)
                    && !process_group(*pid).is_some_and(|g| instance_groups.contains(&g))
                    && !parent(*pid).is_some_and(|p| instance_groups.contains(&p))
            })
            .collect()
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        fs::read_to_string(self.home.join("run/daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.run(&["daemon", "stop"]);
        for pid in self.processes_under_home() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "dist" || name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// GET a URL on loopback; returns (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(url).send() {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        }
        Err(error) => panic!("GET {url}: {error}"),
    }
}

pub fn http_post_json(url: &str, body: &Value) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn component<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no component {name} in {status:#}"))
}

/// SIGKILLs a process and waits until it is gone (or a zombie), so what follows never talks to
/// a process that is still dying.
pub fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("");
        if stat.is_empty() || state == "Z" || state == "X" {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The process group of a process, from `/proc/<pid>/stat` (field 5).
pub fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Runs one SQL statement (simple protocol) and returns every value of every row as text, or
/// PostgreSQL's error message.
pub fn sql(url: &str, statement: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| error_text(&e))?;
        let connection = tokio::spawn(connection);
        let result = client
            .simple_query(statement)
            .await
            .map_err(|e| error_text(&e));
        drop(client);
        let _ = connection.await;
        Ok(result?
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    }
}

impl Sandbox {
    /// The superuser URL of the embedded instance of `env` for project `project`.
    pub fn admin_url(&self, project: &str, env: &str) -> String {
        let dir = self
            .home
            .join("projects")
            .join(project)
            .join("postgres")
            .join(env);
        let password =
            fs::read_to_string(dir.join("admin-password")).expect("embedded instance initialised");
        let port = fs::read_to_string(dir.join("port")).unwrap();
        format!(
            "postgres://sandpit_admin:{}@127.0.0.1:{}/postgres",
            password.trim(),
            port.trim()
        )
    }

    /// A single column of a query run as the superuser of `dev`'s instance, e.g. the names of
    /// databases.
    pub fn admin_column(&self, project: &str, statement: &str) -> Vec<String> {
        self.admin_column_in(project, "dev", statement)
    }

    /// A single column of a query run as the superuser of `env`'s instance.
    pub fn admin_column_in(&self, project: &str, env: &str, statement: &str) -> Vec<String> {
        sql(&self.admin_url(project, env), statement)
            .unwrap()
            .into_iter()
            .map(|row| row[0].clone().unwrap_or_default())
            .collect()
    }
}

/// The parent of a process, from `/proc/<pid>/stat` (field 4).
pub fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
