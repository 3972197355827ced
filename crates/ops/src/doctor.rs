//! `sandpit doctor`: every prerequisite checked, each reported with what was found or with what
//! is wrong and the command that fixes it.
//!
//! Looking changes nothing (beyond creating `$SANDPIT_HOME`, as every command does): the daemon
//! is asked only if it already runs ([`daemon_connection::request_if_running`]), and nothing is
//! installed, started or repaired.
//! The decisions (how bad is this much free disk, this mode, this instance state) are pure
//! functions below the probes, tested with tables.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sandpit_database::{DatabaseError, PgBinaries};
use sandpit_domain::{ComponentKind, ComponentState};
use sandpit_models::{FoundRuntime, RuntimeSource};
use sandpit_runtime::protocol::InstanceStatus;
use sandpit_spec::model::DatabaseUrl;
use sandpit_spec::Spec;
use serde::Serialize;

use crate::{daemon_connection, Context};

/// How a check came out. Only [`Status::Error`] makes `doctor` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works now, but something will fail or surprise later.
    Warning,
    /// Something sandpit needs is missing or broken.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        }
    }
}

/// One prerequisite: what was found (`Ok`) or what is wrong and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable across versions: `git`, `postgresql`, `psql`, `onnxruntime`, `terraform`, `daemon`,
    /// `instance:<project>/<env>/<name>`, `disk`, `home`, `secrets`, `project`,
    /// `database-url:<env>`.
    pub name: String,
    pub status: Status,
    /// The version and path found, or what is wrong.
    pub detail: String,
    /// The command (or, where no command can do it, the action) that makes it `Ok`.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in the order they are shown.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// No check is an error (warnings keep `doctor` successful).
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Error)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// What `doctor` needs from the CLI besides the [`Context`].
#[derive(Debug, Clone, Copy)]
pub struct Expectations {
    /// The mode `$SANDPIT_HOME` must not exceed (0711 for root, 0700 otherwise: the CLI's
    /// `settings::home_mode`).
    pub home_mode: u32,
}

/// Below this much free space under `$SANDPIT_HOME`, a warning: a few builds or a database
/// template fill it.
pub const DISK_WARNING_BYTES: u64 = 1024 * 1024 * 1024;
/// Below this, an error: saving desired state, a build or PostgreSQL's WAL may fail any moment.
pub const DISK_ERROR_BYTES: u64 = 100 * 1024 * 1024;

/// Runs every check. Never fails as a whole: a check that cannot be made is itself reported.
pub async fn run(context: &Context, expectations: Expectations) -> Report {
    let root = nix::unistd::geteuid().is_root();
    let path_env = path_variable(context);
    let project = project(context);
    let spec = project.as_ref().and_then(|p| p.spec.as_ref().ok());

    let mut checks = vec![git(context, path_env.as_deref(), root)];
    let postgres =
        PgBinaries::locate_configured(context.pg_bin_dir.as_deref(), path_env.as_deref());
    let bin_dir = postgres.as_ref().ok().map(|b| b.bin_dir().to_path_buf());
    checks.push(match postgres {
        Ok(binaries) => postgresql_found(context, &binaries, root),
        Err(error) => postgresql_missing(&error, path_env.as_deref(), root),
    });
    checks.push(psql(context, bin_dir.as_deref(), path_env.as_deref(), root));
    checks.push(onnxruntime(context, spec));
    checks.push(terraform(context, spec));
    checks.extend(daemon(context).await);
    checks.push(disk(&context.home));
    checks.push(home(&context.home, expectations.home_mode));
    checks.push(secrets(&context.home));
    if let Some(project) = &project {
        checks.extend(project_checks(context, project));
    }
    Report { checks }
}

fn path_variable(context: &Context) -> Option<String> {
    context
        .base_env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
}

/// `sudo ` when not root: the install commands need it.
fn sudo(root: bool) -> &'static str {
    if root {
        ""
    } else {
        "sudo "
    }
}

/// The first executable called `program` on `path_env`, as a shell would find it.
fn on_path(program: &str, path_env: Option<&str>) -> Option<PathBuf> {
    path_env?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `<program> --version` with the environment builds get; its first line, or what failed.
fn version_output(context: &Context, program: &Path) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--version")
        .env_clear()
        .envs(context.base_env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("could not run `{} --version`: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or("").trim().to_owned();
    if !output.status.success() || first.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`{} --version` failed ({}): {}",
            program.display(),
            output.status,
            stderr.lines().last().unwrap_or("").trim()
        ));
    }
    Ok(first)
}

/// The version in a `--version` line: its first word that starts with a digit
/// (`git version 2.43.0` → `2.43.0`, `postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)` →
/// `15.8`).
pub fn version_in(line: &str) -> Option<&str> {
    line.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
}

fn git(context: &Context, path_env: Option<&str>, root: bool) -> Check {
    let Some(path) = on_path("git", path_env) else {
        return Check::problem(
            "git",
            Status::Error,
            "git was not found on PATH; sandpit builds every component from a commit with it",
            format!("{}apt-get install -y git", sudo(root)),
        );
    };
    match version_output(context, &path) {
        Ok(line) => Check::ok(
            "git",
            format!(
                "git {} at {}",
                version_in(&line).unwrap_or(&line),
                path.display()
            ),
        ),
        Err(problem) => Check::problem(
            "git",
            Status::Error,
            problem,
            format!("{}apt-get install --reinstall -y git", sudo(root)),
        ),
    }
}

fn postgresql_found(context: &Context, binaries: &PgBinaries, root: bool) -> Check {
    let version = match version_output(context, &binaries.postgres) {
        Ok(line) => version_in(&line).unwrap_or(&line).to_owned(),
        Err(problem) => {
            return Check::problem(
                "postgresql",
                Status::Error,
                problem,
                format!("{}apt-get install --reinstall -y postgresql", sudo(root)),
            )
        }
    };
    let found = format!(
        "initdb and postgres {version} in {}",
        binaries.bin_dir().display()
    );
    // PostgreSQL refuses to run as root; the embedded instance of a root-run sandpit runs as
    // `postgres` (see `sandpit_database::cluster`).
    if root
        && !matches!(nix::unistd::User::from_name("postgres"), Ok(Some(user)) if !user.uid.is_root())
    {
        return Check::problem(
            "postgresql",
            Status::Error,
            format!("{found}, but sandpit runs as root and there is no unprivileged `postgres` user to run them as"),
            "useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres",
        );
    }
    Check::ok("postgresql", found)
}

fn postgresql_missing(error: &DatabaseError, path_env: Option<&str>, root: bool) -> Check {
    let install = format!("{}apt-get install -y postgresql", sudo(root));
    match error {
        DatabaseError::BinariesMissingIn { dir } => {
            let fix = match PgBinaries::locate(path_env) {
                Ok(found) => format!(
                    "unset SANDPIT_PG_BIN (sandpit then uses {})",
                    found.bin_dir().display()
                ),
                Err(_) => format!("unset SANDPIT_PG_BIN && {install}"),
            };
            Check::problem(
                "postgresql",
                Status::Error,
                format!(
                    "SANDPIT_PG_BIN is {}, which does not hold initdb and postgres",
                    dir.display()
                ),
                fix,
            )
        }
        _ => Check::problem(
            "postgresql",
            Status::Error,
            "PostgreSQL's server binaries (initdb, postgres) were not found on PATH or under \
             /usr/lib/postgresql/*/bin; the embedded database of each environment runs from them",
            install,
        ),
    }
}

/// `psql`, for `sandpit psql`: beside the server programs first (the same version), then on
/// `PATH`. Only a warning when missing: nothing else needs it.
fn psql(context: &Context, bin_dir: Option<&Path>, path_env: Option<&str>, root: bool) -> Check {
    let beside = bin_dir
        .map(|dir| dir.join("psql"))
        .filter(|p| is_executable(p));
    let Some(path) = beside.or_else(|| on_path("psql", path_env)) else {
        return Check::problem(
            "psql",
            Status::Warning,
            "psql was not found beside the server binaries or on PATH; `sandpit psql` needs it",
            format!("{}apt-get install -y postgresql-client", sudo(root)),
        );
    };
    match version_output(context, &path) {
        Ok(line) => Check::ok(
            "psql",
            format!(
                "psql {} at {}",
                version_in(&line).unwrap_or(&line),
                path.display()
            ),
        ),
        Err(problem) => Check::problem(
            "psql",
            Status::Warning,
            problem,
            format!(
                "{}apt-get install --reinstall -y postgresql-client",
                sudo(root)
            ),
        ),
    }
}

/// ONNX Runtime is checked always, since a project may gain models any day, but its absence is
/// an error only where it is needed: the project here has models, or `ORT_DYLIB_PATH` is set
/// (and wrong). Elsewhere it is a warning; every other project runs without it.
fn onnxruntime(context: &Context, spec: Option<&Spec>) -> Check {
    let needed = spec.is_some_and(|spec| {
        spec.components
            .values()
            .any(|c| c.kind == ComponentKind::Model)
    });
    let venv = sandpit_models::engine::venv_beside(&context.executable);
    let install = match &venv {
        Some(venv) => format!(
            "python3 -m venv {venv} && {venv}/bin/python3 -m pip install onnxruntime",
            venv = venv.display()
        ),
        None => "python3 -m pip install onnxruntime".to_owned(),
    };
    match crate::models::find_onnxruntime(context) {
        Ok(found) => onnxruntime_found(&found),
        Err(error) => {
            let explicit = context
                .process_env
                .get("ORT_DYLIB_PATH")
                .filter(|p| !p.is_empty());
            // Where it was looked for; the install command of the message is the fix below.
            let detail = match error {
                sandpit_models::ModelError::RuntimeNotFound { detail } => {
                    detail.trim_start_matches("; ").to_owned()
                }
                other => other.to_string(),
            };
            if explicit.is_some() {
                let mut without = context.clone();
                without.process_env.remove("ORT_DYLIB_PATH");
                let fix = match crate::models::find_onnxruntime(&without) {
                    Ok(found) => format!(
                        "unset ORT_DYLIB_PATH (sandpit then uses {})",
                        found.library.display()
                    ),
                    Err(_) => format!("unset ORT_DYLIB_PATH && {install}"),
                };
                return Check::problem("onnxruntime", Status::Error, detail, fix);
            }
            let (status, why) = if needed {
                (Status::Error, "this project has models, which need it")
            } else {
                (Status::Warning, "only projects with models need it")
            };
            Check::problem(
                "onnxruntime",
                status,
                format!("ONNX Runtime was not found ({why}): {detail}"),
                install,
            )
        }
    }
}

/// The binary `[terraform] binary` names (`terraform` without a project), and its version: an
/// error only for a project with terraform components.
fn terraform(context: &Context, spec: Option<&Spec>) -> Check {
    let binary = spec.map_or("terraform", |s| s.terraform.binary.as_str());
    let needed = spec.is_some_and(|spec| {
        spec.components
            .values()
            .any(|c| c.kind == ComponentKind::Terraform)
    });
    match crate::terraform::find_binary(context, binary) {
        Ok(found) => Check::ok(
            "terraform",
            format!(
                "{binary} {} ({}); provider plugins cached in {}",
                found.version(),
                found.binary().display(),
                context
                    .home
                    .join("terraform")
                    .join("plugin-cache")
                    .display()
            ),
        ),
        Err(_) => {
            let (status, why) = if needed {
                (
                    Status::Error,
                    "this project has terraform components, which need it",
                )
            } else {
                (
                    Status::Warning,
                    "only projects with terraform components need it",
                )
            };
            Check::problem(
                "terraform",
                status,
                format!("`{binary}` was not found on PATH ({why})"),
                "install Terraform (https://developer.hashicorp.com/terraform/install), or OpenTofu with [terraform] binary = \"tofu\" in sandpit.toml",
            )
        }
    }
}

fn onnxruntime_found(found: &FoundRuntime) -> Check {
    let how = match &found.source {
        RuntimeSource::Explicit => "ORT_DYLIB_PATH".to_owned(),
        RuntimeSource::BesideExecutable { venv } => {
            format!("the venv {} beside sandpit", venv.display())
        }
        RuntimeSource::Python { interpreter } => format!("asked `{interpreter}`"),
    };
    let version = sandpit_models::engine::version_from_file_name(&found.library)
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    // Loading it proves it is a library `ort` can use (not too old, the right architecture).
    match sandpit_models::OrtEngine::new(&found.library) {
        Ok(_) => Check::ok(
            "onnxruntime",
            format!(
                "ONNX Runtime{version} at {} (found by {how})",
                found.library.display()
            ),
        ),
        Err(error) => {
            let upgrade = match &found.source {
                RuntimeSource::Explicit => {
                    "point ORT_DYLIB_PATH at a current libonnxruntime.so, or unset it".to_owned()
                }
                RuntimeSource::BesideExecutable { venv } => format!(
                    "{}/bin/python3 -m pip install --upgrade onnxruntime",
                    venv.display()
                ),
                RuntimeSource::Python { interpreter } => {
                    format!("{interpreter} -m pip install --upgrade onnxruntime")
                }
            };
            Check::problem(
                "onnxruntime",
                Status::Error,
                format!(
                    "{} (found by {how}) cannot be used: {error}",
                    found.library.display()
                ),
                upgrade,
            )
        }
    }
}

/// The daemon (never started by looking) and each instance it supervises.
async fn daemon(context: &Context) -> Vec<Check> {
    let log = sandpit_runtime::DaemonPaths::for_home(&context.home).log_file;
    let pong = match daemon_connection::if_running(context).await {
        Some(client) => Some(client.ping().await),
        None => None,
    };
    match pong {
        None => vec![Check::ok(
            "daemon",
            format!(
                "not running for SANDPIT_HOME {} (commands that change what runs start it)",
                context.home.display()
            ),
        )],
        Some(Ok(sandpit_runtime::client::Pong {
            pid,
            version,
            instances,
            notices,
            gateway_ports,
        })) => {
            let mut checks = vec![daemon_check(pid, &version, &context.version, &notices)];
            checks.push(gateway_check(&gateway_ports));
            checks.extend(instances.iter().map(instance_check));
            checks
        }
        Some(Err(error @ sandpit_runtime::ClientError::UnexpectedAnswer { .. })) => {
            vec![Check::problem(
                "daemon",
                Status::Error,
                format!("{error}"),
                "sandpit daemon stop && sandpit daemon start",
            )]
        }
        Some(Err(error)) => vec![Check::problem(
            "daemon",
            Status::Error,
            format!("the daemon's socket is open but it did not answer: {error}"),
            format!("tail -n 50 {}", log.display()),
        )],
    }
}

/// The home's gateway, which the daemon runs: where biomes are reached by name.
fn gateway_check(ports: &[u16]) -> Check {
    match ports {
        [] => Check::problem(
            "gateway",
            Status::Warning,
            "the daemon runs no gateway (it is older than this sandpit, or its port was taken)",
            "sandpit daemon stop && sandpit daemon start",
        ),
        [home, others @ ..] => {
            let others = if others.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = others.iter().map(u16::to_string).collect();
                format!(" (and {} for projects that ask for it)", list.join(", "))
            };
            Check::ok(
                "gateway",
                format!("listening on 127.0.0.1:{home}{others}: http://<service>.<biome>.<project>.localhost:{home}"),
            )
        }
    }
}

fn daemon_check(pid: u32, theirs: &str, ours: &str, notices: &[String]) -> Check {
    let running = format!("running (pid {pid}, version {theirs})");
    if theirs != ours {
        return Check::problem(
            "daemon",
            Status::Warning,
            format!("{running}, but this sandpit is version {ours}"),
            // Stopping it stops what runs; the next start brings it back under the new version.
            "sandpit daemon stop && sandpit daemon start",
        );
    }
    if !notices.is_empty() {
        return Check::problem(
            "daemon",
            Status::Warning,
            format!("{running}; at start-up: {}", notices.join("; ")),
            "sandpit daemon status",
        );
    }
    Check::ok("daemon", running)
}

/// How bad an instance's state is: a crash or a failed health check is an error, a start in
/// progress or a stop a warning.
pub fn instance_severity(state: ComponentState) -> Status {
    match state {
        ComponentState::Healthy | ComponentState::Succeeded => Status::Ok,
        ComponentState::Starting | ComponentState::Stopped => Status::Warning,
        ComponentState::Unhealthy | ComponentState::Crashed | ComponentState::Failed => {
            Status::Error
        }
    }
}

fn instance_check(instance: &InstanceStatus) -> Check {
    let key = &instance.key;
    let what = match key.name.as_str() {
        "postgres" => "embedded PostgreSQL",
        "models" => "model endpoint",
        _ => "instance",
    };
    let pid = instance
        .pid
        .map(|p| format!(", pid {p}"))
        .unwrap_or_default();
    let restarts = match instance.restarts {
        0 => String::new(),
        n => format!(", {n} restarts"),
    };
    let mut detail = format!(
        "{what} of {}/{}: {} on port {}{pid}{restarts}",
        key.project, key.env, instance.state, instance.port
    );
    if let Some(more) = &instance.detail {
        detail.push_str(&format!(" ({more})"));
    }
    let name = format!("instance:{}/{}/{}", key.project, key.env, key.name);
    match instance_severity(instance.state) {
        Status::Ok => Check::ok(name, detail),
        status => Check::problem(
            name,
            status,
            detail,
            format!("tail -n 50 {}", instance.log.display()),
        ),
    }
}

/// How much free space is too little.
pub fn disk_severity(free_bytes: u64) -> Status {
    if free_bytes < DISK_ERROR_BYTES {
        Status::Error
    } else if free_bytes < DISK_WARNING_BYTES {
        Status::Warning
    } else {
        Status::Ok
    }
}

fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / MIB as f64)
    }
}

fn disk(home: &Path) -> Check {
    let stat = match nix::sys::statvfs::statvfs(home) {
        Ok(stat) => stat,
        Err(error) => {
            return Check::problem(
                "disk",
                Status::Error,
                format!(
                    "cannot tell the free space under {}: {error}",
                    home.display()
                ),
                format!("df -h {}", home.display()),
            )
        }
    };
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    let detail = format!("{} free under {}", human_bytes(free), home.display());
    match disk_severity(free) {
        Status::Ok => Check::ok("disk", detail),
        status => Check::problem(
            "disk",
            status,
            format!(
                "only {detail} (builds, templates and logs need room; under {} nothing can be saved)",
                human_bytes(DISK_ERROR_BYTES)
            ),
            // Inside each project: removes artifacts no retained deployment refers to.
            "sandpit gc",
        ),
    }
}

/// The permission bits `mode` has beyond `allowed` (0 when it is private enough).
pub fn excess_bits(mode: u32, allowed: u32) -> u32 {
    mode & 0o777 & !allowed
}

fn home(home: &Path, allowed: u32) -> Check {
    match std::fs::metadata(home) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode() & 0o777;
            if excess_bits(mode, allowed) == 0 {
                Check::ok(
                    "home",
                    format!("SANDPIT_HOME {} is {mode:04o}", home.display()),
                )
            } else {
                Check::problem(
                    "home",
                    Status::Error,
                    format!(
                        "SANDPIT_HOME {} is {mode:04o}: other users may look inside (at most {allowed:04o})",
                        home.display()
                    ),
                    format!("chmod {allowed:o} {}", home.display()),
                )
            }
        }
        Err(error) => Check::problem(
            "home",
            Status::Error,
            format!("cannot read SANDPIT_HOME {}: {error}", home.display()),
            format!("mkdir -p -m 700 {}", home.display()),
        ),
    }
}

/// What holds secrets under `$SANDPIT_HOME` (or may quote them: logs and the state store), as
/// paths relative to it where `*` stands for one name; each must be its owner's only.
pub const PRIVATE_PATHS: &[&str] = &[
    "state.db",
    "daemon.log",
    "run",
    "runtime",
    "projects/*/databases/*",
    "projects/*/databases/*/*",
    "projects/*/postgres/*/admin-password",
    "projects/*/models/*",
    "projects/*/models/*/token",
    "server",
    "server/admin-token",
];

/// Every existing path under `root` that `pattern` (from [`PRIVATE_PATHS`]) names.
fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for part in pattern.split('/') {
        found = found
            .into_iter()
            .flat_map(|dir| -> Vec<PathBuf> {
                if part == "*" {
                    std::fs::read_dir(&dir)
                        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
                        .unwrap_or_default()
                } else {
                    vec![dir.join(part)]
                }
            })
            .collect();
    }
    found.retain(|path| path.symlink_metadata().is_ok());
    found.sort();
    found
}

/// The private paths under `home` that others may read or enter, with their modes.
pub fn open_secrets(home: &Path) -> Vec<(PathBuf, u32)> {
    PRIVATE_PATHS
        .iter()
        .flat_map(|pattern| expand(home, pattern))
        .filter_map(|path| {
            let mode = path.symlink_metadata().ok()?.permissions().mode() & 0o777;
            (excess_bits(mode, 0o700) & 0o077 != 0).then_some((path, mode))
        })
        .collect()
}

fn secrets(home: &Path) -> Check {
    let open = open_secrets(home);
    if open.is_empty() {
        return Check::ok(
            "secrets",
            "passwords, database URLs, tokens, logs and the state store are their owner's only",
        );
    }
    let listed: Vec<String> = open
        .iter()
        .map(|(path, mode)| format!("{} ({mode:04o})", path.display()))
        .collect();
    let paths: Vec<String> = open.iter().map(|(p, _)| p.display().to_string()).collect();
    Check::problem(
        "secrets",
        Status::Error,
        format!("other users may read: {}", listed.join(", ")),
        format!("chmod go-rwx {}", paths.join(" ")),
    )
}

/// The project sandpit reads (around the directory it runs in, or a commit's), if any.
struct Project {
    /// What to call its `sandpit.toml`: its path, or `sandpit.toml at <commit>`.
    label: String,
    spec: Result<Spec, sandpit_spec::Diagnostics>,
}

fn project(context: &Context) -> Option<Project> {
    let file = context.source.spec_file().ok()?;
    Some(Project {
        spec: sandpit_spec::parse(&file.text),
        label: file.label,
    })
}

fn project_checks(context: &Context, project: &Project) -> Vec<Check> {
    let file = &project.label;
    let spec = match &project.spec {
        Ok(spec) => spec,
        Err(diagnostics) => {
            let count = diagnostics.errors.len();
            let label = file;
            let listed: Vec<String> = diagnostics
                .errors
                .iter()
                .map(|d| d.render(label).replace('\n', ""))
                .collect();
            return vec![Check::problem(
                "project",
                Status::Error,
                format!(
                    "{label} has {count} problem{}: {}",
                    if count == 1 { "" } else { "s" },
                    listed.join("; ")
                ),
                format!("edit {label} at the lines above; `sandpit build` checks it again"),
            )];
        }
    };
    let mut checks = vec![Check::ok(
        "project",
        format!(
            "{} parses: project `{}`, {} components, {} environments, 0 problems",
            file,
            spec.project.name,
            spec.components.len(),
            spec.environments.len()
        ),
    )];
    if spec.database.is_none() {
        return checks;
    }
    for (env, environment) in &spec.environments {
        let name = format!("database-url:{env}");
        match &environment.database_url {
            None => {}
            Some(DatabaseUrl::Literal(_)) => checks.push(Check::ok(
                name,
                format!("`{env}` uses the external database URL in sandpit.toml"),
            )),
            Some(DatabaseUrl::FromEnv(variable)) => {
                if context
                    .process_env
                    .get(variable)
                    .is_some_and(|v| !v.is_empty())
                {
                    checks.push(Check::ok(
                        name,
                        format!(
                            "`{env}` uses the external database URL in ${variable}, which is set"
                        ),
                    ));
                } else {
                    // Where biomes go, `sandpit up` fails without it; elsewhere (a deploy
                    // target, often only reached from CI) it is worth knowing, not failing.
                    let status = if environment.biomes {
                        Status::Error
                    } else {
                        Status::Warning
                    };
                    checks.push(Check::problem(
                        name,
                        status,
                        format!(
                            "[environments.{env}.database] url_env names `{variable}`, which is not set"
                        ),
                        format!("export {variable}=postgres://admin@host:5432/postgres"),
                    ));
                }
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_version_lines() {
        for (line, expected) in [
            ("git version 2.43.0", Some("2.43.0")),
            (
                "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)",
                Some("15.8"),
            ),
            ("psql (PostgreSQL) 16.2", Some("16.2")),
            ("no version here", None),
        ] {
            assert_eq!(version_in(line), expected, "{line}");
        }
    }

    #[test]
    fn free_disk_is_ok_above_a_gibibyte_an_error_below_100_mebibytes() {
        const MIB: u64 = 1024 * 1024;
        for (free, expected) in [
            (0, Status::Error),
            (100 * MIB - 1, Status::Error),
            (100 * MIB, Status::Warning),
            (1024 * MIB - 1, Status::Warning),
            (1024 * MIB, Status::Ok),
            (u64::MAX, Status::Ok),
        ] {
            assert_eq!(disk_severity(free), expected, "{free}");
        }
    }

    #[test]
    fn modes_beyond_the_allowed_bits_are_excess() {
        for (mode, allowed, expected) in [
            (0o700, 0o700, 0),
            (0o600, 0o700, 0),
            (0o755, 0o700, 0o055),
            (0o711, 0o711, 0),
            (0o755, 0o711, 0o044),
            (0o40700, 0o700, 0),
        ] {
            assert_eq!(
                excess_bits(mode, allowed),
                expected,
                "{mode:o} / {allowed:o}"
            );
        }
    }

    #[test]
    fn an_instance_that_crashed_or_is_unhealthy_is_an_error_one_starting_a_warning() {
        for (state, expected) in [
            (ComponentState::Healthy, Status::Ok),
            (ComponentState::Succeeded, Status::Ok),
            (ComponentState::Starting, Status::Warning),
            (ComponentState::Stopped, Status::Warning),
            (ComponentState::Unhealthy, Status::Error),
            (ComponentState::Crashed, Status::Error),
            (ComponentState::Failed, Status::Error),
        ] {
            assert_eq!(instance_severity(state), expected, "{state:?}");
        }
    }

    #[test]
    fn a_daemon_of_another_version_is_a_warning() {
        assert_eq!(daemon_check(7, "0.1.0", "0.1.0", &[]).status, Status::Ok);
        let other = daemon_check(7, "0.0.9", "0.1.0", &[]);
        assert_eq!(other.status, Status::Warning);
        assert!(other.detail.contains("version 0.1.0"), "{other:?}");
        assert_eq!(
            other.fix.as_deref(),
            Some("sandpit daemon stop && sandpit daemon start")
        );
        let noticed = daemon_check(7, "0.1.0", "0.1.0", &["state file set aside".into()]);
        assert_eq!(noticed.status, Status::Warning);
    }

    fn context(home: &Path, process_env: &[(&str, &str)]) -> Context {
        let executable = home.join("target/debug/sandpit");
        let base = Context::for_home(home);
        Context {
            executable: executable.clone(),
            process_env: process_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            supervisor: sandpit_runtime::SupervisorConfig {
                log_max_bytes: 1024,
                executable,
                ..base.supervisor.clone()
            },
            ..base
        }
    }

    #[test]
    fn a_missing_onnxruntime_is_an_error_only_where_models_need_it() {
        let home = tempfile::tempdir().unwrap();
        let venv = home.path().join("target/python");
        let install = format!(
            "python3 -m venv {venv} && {venv}/bin/python3 -m pip install onnxruntime",
            venv = venv.display()
        );
        let nowhere = context(home.path(), &[("SANDPIT_PYTHON", "/nonexistent/python3")]);

        let without_models = onnxruntime(&nowhere, None);
        assert_eq!(without_models.status, Status::Warning, "{without_models:?}");
        assert_eq!(without_models.fix.as_deref(), Some(install.as_str()));
        assert!(
            without_models.detail.contains(&format!(
                "not in {} (beside sandpit's executable)",
                venv.display()
            )),
            "{without_models:?}"
        );

        let spec = sandpit_spec::parse(
            "[project]\nname = \"ml\"\n[models.scorer]\npath = \"m\"\nfile = \"m.onnx\"\n",
        )
        .unwrap();
        let with_models = onnxruntime(&nowhere, Some(&spec));
        assert_eq!(with_models.status, Status::Error, "{with_models:?}");
        assert_eq!(with_models.fix.as_deref(), Some(install.as_str()));

        // A wrong ORT_DYLIB_PATH is an error anywhere: it was set on purpose.
        let wrong = context(
            home.path(),
            &[
                ("SANDPIT_PYTHON", "/nonexistent/python3"),
                ("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
            ],
        );
        let explicit = onnxruntime(&wrong, None);
        assert_eq!(explicit.status, Status::Error, "{explicit:?}");
        assert_eq!(
            explicit.detail,
            "ORT_DYLIB_PATH is /nonexistent/libonnxruntime.so, which is not a file"
        );
        assert_eq!(
            explicit.fix,
            Some(format!("unset ORT_DYLIB_PATH && {install}"))
        );
    }

    #[test]
    fn an_unset_url_variable_is_an_error_where_biomes_go_and_a_warning_elsewhere() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let spec = sandpit_spec::parse(
            r#"
[project]
name = "geo"
[environments.dev]
biomes = true
[environments.dev.database]
url_env = "GEO_DEV_URL"
[environments.test]
[environments.test.database]
url_env = "GEO_TEST_URL"
[environments.prod]
[environments.prod.database]
url = "postgres://admin@db:5432/postgres"
[database]
migrations = "db"
[jobs.noop]
path = "noop"
run = "true"
"#,
        )
        .unwrap();
        let project = Project {
            label: root.join(sandpit_spec::FILE_NAME).display().to_string(),
            spec: Ok(spec),
        };
        let statuses = |env: &[(&str, &str)]| -> Vec<(String, Status)> {
            project_checks(&context(home.path(), env), &project)
                .into_iter()
                .map(|c| (c.name, c.status))
                .collect()
        };
        assert_eq!(
            statuses(&[]),
            [
                ("project".to_owned(), Status::Ok),
                ("database-url:dev".to_owned(), Status::Error),
                ("database-url:prod".to_owned(), Status::Ok),
                ("database-url:test".to_owned(), Status::Warning),
            ]
        );
        assert_eq!(
            statuses(&[
                ("GEO_DEV_URL", "postgres://a@h/p"),
                ("GEO_TEST_URL", "postgres://a@h/p")
            ]),
            [
                ("project".to_owned(), Status::Ok),
                ("database-url:dev".to_owned(), Status::Ok),
                ("database-url:prod".to_owned(), Status::Ok),
                ("database-url:test".to_owned(), Status::Ok),
            ]
        );

        let broken = Project {
            label: root.join(sandpit_spec::FILE_NAME).display().to_string(),
            spec: sandpit_spec::parse("[project]\nname = \"geo\"\nheatlh = 1\n"),
        };
        let checks = project_checks(&context(home.path(), &[]), &broken);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Error);
        assert!(
            checks[0].detail.contains("sandpit.toml has 1 problem: ")
                && checks[0].detail.contains(":3:1: "),
            "{:?}",
            checks[0]
        );
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn secret_files_others_may_read_are_found_and_nothing_else() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let secrets = home.join("projects/geo/databases/dev");
        std::fs::create_dir_all(&secrets).unwrap();
        set_mode(&secrets, 0o700);
        for (file, mode) in [
            ("alice.password", 0o600),
            ("alice.database-url", 0o644),
            ("bob.shared-database-url", 0o640),
        ] {
            std::fs::write(secrets.join(file), "x").unwrap();
            set_mode(&secrets.join(file), mode);
        }
        let cluster = home.join("projects/geo/postgres/dev");
        std::fs::create_dir_all(&cluster).unwrap();
        std::fs::write(cluster.join("admin-password"), "x").unwrap();
        set_mode(&cluster.join("admin-password"), 0o604);
        // Not secret: the port file, and artifacts.
        std::fs::write(cluster.join("port"), "5432").unwrap();
        set_mode(&cluster.join("port"), 0o644);
        std::fs::create_dir_all(home.join("projects/geo/artifacts")).unwrap();
        let models = home.join("projects/geo/models/dev");
        std::fs::create_dir_all(&models).unwrap();
        set_mode(&models, 0o755);
        std::fs::write(models.join("token"), "x").unwrap();
        set_mode(&models.join("token"), 0o600);
        std::fs::write(home.join("daemon.log"), "").unwrap();
        set_mode(&home.join("daemon.log"), 0o600);

        let open = open_secrets(home);
        assert_eq!(
            open,
            vec![
                (secrets.join("alice.database-url"), 0o644),
                (secrets.join("bob.shared-database-url"), 0o640),
                (cluster.join("admin-password"), 0o604),
                (models.clone(), 0o755),
            ]
        );
        let check = super::secrets(home);
        assert_eq!(check.status, Status::Error);
        assert!(
            check.fix.as_deref().unwrap().starts_with(&format!(
                "chmod go-rwx {}",
                secrets.join("alice.database-url").display()
            )),
            "{check:?}"
        );

        for (path, _) in &open {
            set_mode(path, if path.is_dir() { 0o700 } else { 0o600 });
        }
        assert_eq!(super::secrets(home).status, Status::Ok);
    }

    #[test]
    fn an_open_home_is_an_error_with_the_chmod_that_closes_it() {
        let home = tempfile::tempdir().unwrap();
        set_mode(home.path(), 0o755);
        let check = super::home(home.path(), 0o700);
        assert_eq!(check.status, Status::Error);
        assert_eq!(
            check.fix,
            Some(format!("chmod 700 {}", home.path().display()))
        );
        set_mode(home.path(), 0o700);
        assert_eq!(super::home(home.path(), 0o700).status, Status::Ok);
        assert_eq!(super::home(home.path(), 0o711).status, Status::Ok);
    }
}
