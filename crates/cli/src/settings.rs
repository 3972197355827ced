//! The one place sandpit reads its process environment; everything else is handed a `Context`.
#![allow(clippy::disallowed_methods)]

use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_domain::Backoff;
use sandpit_ops::Context;
use sandpit_runtime::SupervisorConfig;

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

fn base_env() -> Vec<(String, String)> {
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
fn home_mode(root: bool) -> u32 {
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
    Ok(Context {
        home,
        project_dir,
        database_timeouts,
        base_env: base_env(),
        executable: env::current_exe()?,
        process_env: env::vars().collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        supervisor,
    })
}
