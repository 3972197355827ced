//! The one place sandpit reads its process environment; everything else is handed a `Context`.
#![allow(clippy::disallowed_methods)]

use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_domain::Backoff;
use sandpit_ops::Context;
use sandpit_runtime::SupervisorConfig;

/// Every environment variable sandpit reads, with what it does: `sandpit --help` lists them from
/// here (see [`variables_help`]) and README.md's "Environment variables" lists the same (a test
/// checks both, and that this file reads nothing that is not listed).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "SANDPIT_HOME",
        "where sandpit keeps its state, artifacts and databases (default $XDG_DATA_HOME/sandpit)",
    ),
    (
        "XDG_DATA_HOME",
        "the parent of the default SANDPIT_HOME (default ~/.local/share)",
    ),
    (
        "SANDPIT_USER",
        "who deploys, promotes and approves, as recorded in history (default git's user.email)",
    ),
    (
        "SANDPIT_STOP_GRACE_MS",
        "how long a stopped process may take to exit before it is killed (default 10000)",
    ),
    (
        "SANDPIT_LOG_MAX_BYTES",
        "the size at which a component's log is cut (default 10485760)",
    ),
    (
        "SANDPIT_DATABASE_TIMEOUT_MS",
        "how long one PostgreSQL statement may go unanswered before sandpit gives up (default 30000)",
    ),
    (
        "SANDPIT_REPORT_BACKOFF_MS",
        "the first wait before a report to GitLab that failed is sent again, doubling after each failure (default 2000)",
    ),
    (
        "SANDPIT_REAP_INTERVAL",
        "how often the daemon's reaper looks for biomes to remove, as a span such as `10m` or `30s` (default 10m)",
    ),
    (
        "SANDPIT_GIT_HOST_TIMEOUT_MS",
        "how long the reaper waits for GitLab to say whether a merge request is closed; without an answer it removes nothing (default 5000)",
    ),
    (
        "SANDPIT_TF_LOCK_TIMEOUT_MS",
        "how long a terraform run waits for another operation's lock on the same state before it fails saying who holds it (default 30000)",
    ),
    (
        "SANDPIT_STATE",
        "where deployments, pipelines, tokens and hook deliveries are recorded: a SQLite file, or a postgres://USER:PASSWORD@HOST:PORT/DB URL that several servers share (default $SANDPIT_HOME/state.db; `sandpit server --state` overrides)",
    ),
    (
        "SANDPIT_PG_BIN",
        "the only directory to take PostgreSQL's server programs from (default: PATH, then /usr/lib/postgresql/*/bin)",
    ),
    (
        "ORT_DYLIB_PATH",
        "the ONNX Runtime library the model endpoint loads (default: the setup's venv beside the sandpit binary, else asked of SANDPIT_PYTHON)",
    ),
    (
        "SANDPIT_PYTHON",
        "the Python whose `onnxruntime` package provides ONNX Runtime (default python3)",
    ),
    (
        "SANDPIT_LOG",
        "sandpit's own diagnostics on stderr, as a tracing filter: `debug`, or `sandpit_database::steps=debug` for the time of each database step (default: none)",
    ),
    (
        "SANDPIT_SERVER",
        "the control plane `tokens`, `projects` and `pipeline` talk to, and `approve`/`reject` when set, e.g. http://127.0.0.1:7780 (default: the one `sandpit login` stored; --server overrides)",
    ),
    (
        "SANDPIT_TOKEN",
        "the API token sent to the control plane (default: the one `sandpit login` stored for that server; --token overrides)",
    ),
    (
        "SANDPIT_CA_CERT",
        "a PEM file of the certificate authority an https control plane's certificate is checked against (default: none, so https needs it)",
    ),
    (
        "XDG_CONFIG_HOME",
        "where `sandpit login` keeps credentials: $XDG_CONFIG_HOME/sandpit/credentials.json (default ~/.config)",
    ),
    ("NO_COLOR", "when set to anything, output has no colour"),
    (
        "TERM",
        "passed on to a command run by `sandpit exec` (it writes to your terminal)",
    ),
    (
        "PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR",
        "passed on to builds and components; nothing else of sandpit's environment is",
    ),
];

/// `SANDPIT_LOG`: which of sandpit's own diagnostics to print on stderr, if any.
pub fn diagnostics_filter() -> Option<String> {
    env::var("SANDPIT_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
}

/// The "Environment variables" section of `sandpit --help`, from [`VARIABLES`].
pub fn variables_help() -> String {
    let width = VARIABLES
        .iter()
        .map(|(name, _)| name.len())
        .filter(|len| *len <= 28)
        .max()
        .unwrap_or(0);
    // Meanings are wrapped to keep lines within 100 columns, continued under themselves.
    let room = 100 - width - 4;
    let mut help = String::from("Environment variables:\n");
    for (name, meaning) in VARIABLES {
        let mut lines = vec![String::new()];
        for word in meaning.split(' ') {
            let line = lines.last_mut().expect("never empty");
            if !line.is_empty() && line.len() + 1 + word.len() > room {
                lines.push(word.to_owned());
            } else {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
        }
        if name.len() > width {
            help.push_str(&format!("  {name}\n"));
            lines.insert(0, String::new());
        }
        let mut first = name.len() <= width;
        for line in lines.iter().filter(|l| !l.is_empty()) {
            let label = if first { *name } else { "" };
            help.push_str(&format!("  {label:width$}  {line}\n"));
            first = false;
        }
    }
    help.push_str(
        "\nA `[environments.<env>.database] url_env` in sandpit.toml names one more variable: the\none holding that environment's PostgreSQL URL.",
    );
    help
}

/// How to reach the control plane: flags first, then `SANDPIT_SERVER`/`SANDPIT_TOKEN`; what
/// `sandpit login` stored is read by `crate::remote` from `credentials`.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub server: Option<String>,
    pub token: Option<String>,
    /// `$XDG_CONFIG_HOME/sandpit/credentials.json`, else `~/.config/sandpit/credentials.json`.
    pub credentials: PathBuf,
    /// `SANDPIT_CA_CERT`: the authority an https server's certificate must come from.
    pub ca_cert: Option<PathBuf>,
}

impl RemoteSettings {
    /// Whether a control plane is configured: named (`--server`, `SANDPIT_SERVER`) or logged
    /// in to (`sandpit login`). Then the commands that act on a project act on the server's.
    pub fn configured(&self) -> bool {
        self.server.is_some() || self.credentials.is_file()
    }
}

/// The control plane settings of this invocation; `server` and `token` are the global flags.
pub fn remote(server: Option<&str>, token: Option<&str>) -> anyhow::Result<RemoteSettings> {
    let non_empty = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
    let config = match env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => absolute(PathBuf::from(dir))?,
        None => match env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("cannot tell where to keep credentials: set XDG_CONFIG_HOME or HOME"),
        },
    };
    Ok(RemoteSettings {
        server: server
            .map(str::to_owned)
            .or_else(|| non_empty("SANDPIT_SERVER")),
        token: token
            .map(str::to_owned)
            .or_else(|| non_empty("SANDPIT_TOKEN")),
        credentials: config.join("sandpit").join("credentials.json"),
        ca_cert: non_empty("SANDPIT_CA_CERT")
            .map(|path| absolute(PathBuf::from(path)))
            .transpose()?,
    })
}

/// Variables passed through to builds and components. Everything else is scrubbed, so a secret in
/// the shell that ran sandpit never leaks into an artifact or a service.
const PASSED_THROUGH: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

/// `$SANDPIT_HOME`, else `$XDG_DATA_HOME/sandpit`, else `~/.local/share/sandpit`.
pub fn sandpit_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = env::var_os("SANDPIT_HOME").filter(|v| !v.is_empty()) {
        return absolute(PathBuf::from(home));
    }
    if let Some(data) = env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return absolute(PathBuf::from(data).join("sandpit"));
    }
    match env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/sandpit")),
        None => bail!("cannot tell where to keep sandpit's state: set SANDPIT_HOME"),
    }
}

fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(env::current_dir()?.join(path))
    }
}

/// Whether output may use colour: not when `NO_COLOR` is set to anything non-empty.
pub fn colour_allowed() -> bool {
    env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The variables git and builds see: the passed-through ones, with PATH and LANG defaulted.
pub fn base_env() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = PASSED_THROUGH
        .iter()
        .filter_map(|name| env::var(name).ok().map(|value| (name.to_string(), value)))
        .collect();
    if !vars.iter().any(|(name, _)| name == "PATH") {
        vars.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    if !vars.iter().any(|(name, _)| name == "LANG") {
        vars.push(("LANG".into(), "C.UTF-8".into()));
    }
    vars
}

/// The mode of `$SANDPIT_HOME`: nobody else may list it or read in it. When sandpit runs as
/// root, others keep the right to pass through (0711): the embedded PostgreSQL runs as the
/// `postgres` user and must reach its data directory under `projects/<p>/postgres/`, so every
/// secret below is in a 0700 directory or a 0600 file of its own (see docs/ARCHITECTURE.md,
/// "Choices, and why").
pub fn home_mode(root: bool) -> u32 {
    if root {
        0o711
    } else {
        0o700
    }
}

/// Creates `$SANDPIT_HOME` with [`home_mode`] (its missing parents with the default mode), or
/// takes away what an older version left open (it made it 0755).
fn prepare_home(home: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mode = home_mode(nix::unistd::geteuid().is_root());
    if let Some(parent) = home.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(home) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(error)
                .with_context(|| format!("cannot create SANDPIT_HOME {}", home.display()))
        }
        _ => {}
    }
    sandpit_runtime::owner_only::repair(home, mode).with_context(|| {
        format!(
            "SANDPIT_HOME {} lets other users in and cannot be made private\nhint: `chmod {mode:o} {}`, or set SANDPIT_HOME to a directory you own",
            home.display(),
            home.display()
        )
    })?;
    Ok(())
}

fn number_from_env(name: &str) -> Option<u64> {
    env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Gathers the context of this invocation, creating `$SANDPIT_HOME` (see [`prepare_home`]).
pub fn context(project_dir: Option<&Path>) -> anyhow::Result<Context> {
    let home = sandpit_home()?;
    prepare_home(&home)?;
    let project_dir = match project_dir {
        Some(dir) => absolute(dir.to_path_buf())?,
        None => env::current_dir()?,
    };
    let supervisor = SupervisorConfig {
        home: home.clone(),
        base_env: base_env(),
        // Tests shrink these to exercise rotation and stopping quickly.
        log_max_bytes: number_from_env("SANDPIT_LOG_MAX_BYTES").unwrap_or(10 * 1024 * 1024),
        stop_grace: Duration::from_millis(
            number_from_env("SANDPIT_STOP_GRACE_MS").unwrap_or(10_000),
        ),
        backoff: Backoff::default(),
        executable: env::current_exe()?,
    };
    let mut database_timeouts = sandpit_database::Timeouts::default();
    if let Some(millis) = number_from_env("SANDPIT_DATABASE_TIMEOUT_MS").filter(|m| *m > 0) {
        // How long one statement may go unanswered before sandpit gives up on PostgreSQL.
        database_timeouts.statement = Duration::from_millis(millis);
        database_timeouts.connect = database_timeouts.connect.min(database_timeouts.statement);
    }
    let state = state_location(&home)?;
    Ok(Context {
        home,
        state,
        source: sandpit_ops::Source::Checkout { dir: project_dir },
        database_timeouts,
        terraform_lock_timeout: number_from_env("SANDPIT_TF_LOCK_TIMEOUT_MS").map_or(
            sandpit_ops::terraform::DEFAULT_LOCK_TIMEOUT,
            Duration::from_millis,
        ),
        base_env: base_env(),
        executable: env::current_exe()?,
        process_env: env::vars().collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        supervisor,
        // For a PostgreSQL installed elsewhere (and for tests that need none to be found);
        // absolute, because the daemon runs the programs from another directory.
        pg_bin_dir: env::var_os("SANDPIT_PG_BIN")
            .filter(|v| !v.is_empty())
            .map(|dir| absolute(PathBuf::from(dir)))
            .transpose()?,
        principal: sandpit_ops::principal::Principal::local(
            env::var("SANDPIT_USER").ok().as_deref(),
        ),
        reporting: sandpit_ops::report::Reporting {
            // Tests shrink the retry schedule to milliseconds.
            retry: number_from_env("SANDPIT_REPORT_BACKOFF_MS")
                .filter(|m| *m > 0)
                .map_or_else(Default::default, |millis| {
                    sandpit_ops::report::RetryPolicy::with_base(Duration::from_millis(millis))
                }),
            ..Default::default()
        },
    })
}

/// `SANDPIT_STATE`: the state store (default `state.db` in `home`); a relative path is
/// relative to the working directory.
pub fn state_location(home: &Path) -> anyhow::Result<sandpit_state::StateLocation> {
    match env::var("SANDPIT_STATE")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(sandpit_state::StateLocation::in_home(home)),
        Some(raw) => {
            sandpit_state::StateLocation::parse(&raw, &env::current_dir()?).map_err(|error| {
                sandpit_ops::error::failure(
                    sandpit_ops::error::ErrorKind::InvalidInput,
                    format!(
                        "SANDPIT_STATE: {error}\nhint: unset SANDPIT_STATE to use {}",
                        home.join("state.db").display()
                    ),
                )
            })
        }
    }
}

/// `SANDPIT_REAP_INTERVAL`: how often the daemon's reaper runs (default 10 minutes).
pub fn reap_interval() -> anyhow::Result<Duration> {
    match env::var("SANDPIT_REAP_INTERVAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(Duration::from_secs(600)),
        Some(raw) => sandpit_domain::Span::parse(&raw)
            .map(|span| span.duration())
            .map_err(|error| anyhow::anyhow!("SANDPIT_REAP_INTERVAL: {error}")),
    }
}

/// `SANDPIT_GIT_HOST_TIMEOUT_MS`: how long the reaper waits for GitLab (default 5 s).
pub fn git_host_timeout() -> Duration {
    number_from_env("SANDPIT_GIT_HOST_TIMEOUT_MS")
        .filter(|m| *m > 0)
        .map_or(
            sandpit_ops::reap::DEFAULT_GIT_HOST_TIMEOUT,
            Duration::from_millis,
        )
}

/// The GitLab CI/CD variables `sandpit ci` reads (`crate::commands::ci::GITLAB_VARIABLES`),
/// those that are set and not empty.
pub fn gitlab_ci_variables() -> std::collections::BTreeMap<String, String> {
    crate::commands::ci::GITLAB_VARIABLES
        .iter()
        .filter_map(|name| {
            env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .map(|value| (name.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str) -> bool {
        VARIABLES
            .iter()
            .any(|(names, _)| names.split(", ").any(|n| n == name))
    }

    /// The variables this file and the use cases read: every string literal in this file that
    /// looks like a variable's name, and every `process_env.get("…")` in crates/ops.
    fn read_by_sandpit() -> Vec<String> {
        let mut names = Vec::new();
        let mut literals = |source: &str, after: &str| {
            for (at, _) in source.match_indices(after) {
                // `env!("…")` is read when sandpit is compiled, not when it runs.
                if source[..at].ends_with("env!(") {
                    continue;
                }
                let rest = &source[at + after.len()..];
                let Some(name) = rest.split('"').next() else {
                    continue;
                };
                let looks_like_a_variable = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
                if looks_like_a_variable {
                    names.push(name.to_owned());
                }
            }
        };
        let this_file = include_str!("settings.rs");
        let code = this_file.split("#[cfg(test)]").next().unwrap();
        let table_ends = code
            .find("/// The \"Environment variables\" section")
            .unwrap();
        literals(&code[table_ends..], "\"");
        let ops = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/src");
        for entry in std::fs::read_dir(ops).unwrap() {
            let source = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            let flat: String = source.split_whitespace().collect();
            literals(&flat, "process_env.get(\"");
        }
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_variable_sandpit_reads_is_listed_in_help_and_in_the_readme() {
        let read = read_by_sandpit();
        for name in [
            "SANDPIT_HOME",
            "SANDPIT_DATABASE_TIMEOUT_MS",
            "ORT_DYLIB_PATH",
            "PATH",
        ] {
            assert!(
                read.contains(&name.to_owned()),
                "the scan finds {name}: {read:?}"
            );
        }
        let unlisted: Vec<&String> = read.iter().filter(|name| !listed(name)).collect();
        assert!(
            unlisted.is_empty(),
            "read but not in VARIABLES (add each with what it does): {unlisted:?}"
        );
        let help = variables_help()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Environment variables")
            .nth(1)
            .expect("README.md has an \"Environment variables\" section")
            .split("\n## ")
            .next()
            .unwrap();
        for (names, meaning) in VARIABLES {
            assert!(
                help.contains(names) && help.contains(meaning),
                "{names} in --help"
            );
            for name in names.split(", ") {
                assert!(
                    section.contains(&format!("`{name}`")),
                    "README.md's \"Environment variables\" lists `{name}`"
                );
            }
        }
    }
}
