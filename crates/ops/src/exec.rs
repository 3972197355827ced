//! `sandpit exec [BIOME] [--component C] -- CMD ARGS…`: a command run in the foreground with the
//! environment a component of the biome gets, secrets included.
//!
//! This is the one place sandpit runs a foreground child (`exec`, `psql`): it inherits the
//! terminal (stdin, stdout, stderr and the process group, so Ctrl-C reaches it directly), lives
//! exactly as long as the `sandpit` waiting for it, and is its user's, not the daemon's — so it
//! does not go through `runtime::process`, which starts what the daemon supervises (a process
//! group of its own, a log file, the supervisor's marker).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use crate::Context;

/// Runs `command` (a program and its arguments) with the environment of `component` of the
/// biome `biome` names, in the checkout's directory (`-C DIR`, else the current one); answers its
/// exit code (128 + the signal for a child killed by one, as shells do). Local only: a commit
/// source (a server) has no directory to run it in and is refused.
///
/// The working directory is the user's, not the component's: that one holds the extracted
/// artifact, is re-extracted from the verified blob on every start of the component (so whatever
/// a command left there would vanish, or be in the way), and the user's own scripts and edits are
/// in their checkout.
pub async fn exec(
    context: &Context,
    biome: Option<&str>,
    component: Option<&str>,
    command: &[String],
) -> anyhow::Result<u8> {
    // Local only: the command runs on this machine, in the user's checkout.
    let dir = context.source.checkout_dir("exec")?;
    let Some((program, args)) = command.split_first() else {
        crate::fail!(
            InvalidInput,
            "no command to run\nhint: `sandpit exec [BIOME] -- CMD ARGS…`"
        );
    };
    // `sandpit exec BIOME -- terraform -chdir=infra state list`: the module `-chdir` names is
    // a terraform component's, so the command works on that component's state, in its working
    // directory (the module as applied, initialised against sandpit's backend).
    let mut args = args.to_vec();
    let mut component = component.map(str::to_owned);
    if component.is_none() {
        if let Some((named, chdir)) = terraform_command(context, dir, program, &args) {
            component = Some(named.to_string());
            if let Some(at) = chdir {
                args.remove(at);
            }
        }
    }
    let env = crate::env::environment(context, biome, component.as_deref()).await?;
    // A terraform component's commands run where its state's working directory is.
    let dir = env.dir.as_deref().unwrap_or(dir);
    let Some(path) = find_program(context, dir, program) else {
        crate::fail!(
            NotFound,
            "cannot run `{program}`: it is not {}\nhint: check the name, or give its path",
            where_looked(context, dir, program)
        );
    };
    run_foreground(dir, &path, &args, &foreground_env(context, env.vars)).await
}

/// The terraform component a `terraform` command means, and where its `-chdir=` is (see
/// [`crate::terraform::exec_target`]); `-chdir` is taken relative to `dir`, components' paths
/// relative to the project's root.
fn terraform_command(
    context: &Context,
    dir: &Path,
    program: &str,
    args: &[String],
) -> Option<(sandpit_domain::Name, Option<usize>)> {
    let spec = context.source.spec().ok()?;
    let root = crate::project::ProjectDir::locate(dir).ok()?.root;
    let modules = spec.terraform_components();
    let components: Vec<(&sandpit_domain::Name, &str)> =
        modules.iter().map(|c| (&c.name, c.path.as_str())).collect();
    let same = |given: &str, path: &str| match (
        dir.join(given).canonicalize(),
        root.join(path).canonicalize(),
    ) {
        (Ok(given), Ok(module)) => given == module,
        _ => false,
    };
    crate::terraform::exec_target(&components, &spec.terraform.binary, program, args, same)
}

/// A component's variables for a command on the user's terminal: its `TERM` too, because that
/// describes the terminal the command's stdin and stdout are (a component's are a log file).
pub fn foreground_env(
    context: &Context,
    mut vars: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if let Some(term) = context.process_env.get("TERM") {
        vars.insert("TERM".to_owned(), term.clone());
    }
    vars
}

/// Where `program` is: a path (with a `/`) relative to `dir` (the checkout's directory), or the
/// first executable of that name on the user's `PATH` — the one their shell would run.
pub fn find_program(context: &Context, dir: &Path, program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = dir.join(program);
        return is_executable(&path).then_some(path);
    }
    search_path(user_path(context), program, is_executable)
}

/// "on PATH (/usr/bin:/bin)" or "at /repo/./x (no such executable file)", for error messages.
pub fn where_looked(context: &Context, dir: &Path, program: &str) -> String {
    if program.contains('/') {
        format!("an executable file at {}", dir.join(program).display())
    } else {
        format!("on PATH ({})", user_path(context))
    }
}

fn user_path(context: &Context) -> &str {
    context
        .base_env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.as_str())
        .unwrap_or("")
}

/// The first `<dir>/<program>` along `path` that `executable` accepts (empty entries skipped).
fn search_path(path: &str, program: &str, executable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `program` in `dir` (the checkout's directory) with exactly `env`, attached to this terminal, and
/// waits for it. Secrets travel in the environment only, never on a command line (which anyone
/// on the machine can read in `/proc/<pid>/cmdline`).
///
/// While it runs, sandpit outlives Ctrl-C and Ctrl-\ (the terminal sends them to the child too,
/// which decides what they mean) and passes SIGTERM and SIGHUP on to it, so the exit code it
/// answers is always the child's.
pub async fn run_foreground(
    dir: &Path,
    program: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> anyhow::Result<u8> {
    // Handlers, not SIG_IGN: a caught signal is reset to its default in the child at exec,
    // an ignored one would stay ignored there.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let pid = child.id();
    let forward = |signal: Signal| {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.with_context(|| format!("lost track of {}", program.display()))?;
                return Ok(exit_code(status));
            }
            _ = interrupt.recv() => {}
            _ = quit.recv() => {}
            _ = terminate.recv() => forward(Signal::SIGTERM),
            _ = hangup.recv() => forward(Signal::SIGHUP),
        }
    }
}

/// The exit code a shell reports for `status`: the child's own, or 128 + the signal that
/// killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_childs_or_128_plus_the_signal() {
        // (raw wait status, exit code): the code in the high byte, a signal in the low one.
        let cases = [
            (0, 0),
            (7 << 8, 7),
            (255 << 8, 255),
            (9, 137),
            (15, 143),
            (2, 130),
        ];
        for (raw, expected) in cases {
            assert_eq!(exit_code(ExitStatus::from_raw(raw)), expected, "{raw:#x}");
        }
    }

    #[test]
    fn programs_are_looked_up_along_path_in_order() {
        let executables = ["/opt/b/psql", "/usr/bin/psql", "/usr/bin/sh"];
        let executable = |path: &Path| executables.iter().any(|e| Path::new(e) == path);
        // (PATH, program, found)
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/usr/bin:/opt/b", "psql", Some("/usr/bin/psql")),
            ("/opt/b:/usr/bin", "psql", Some("/opt/b/psql")),
            ("::/opt/b", "psql", Some("/opt/b/psql")),
            ("/opt/b", "sh", None),
            ("", "sh", None),
        ];
        for (path, program, found) in cases {
            assert_eq!(
                search_path(path, program, executable),
                found.map(PathBuf::from),
                "{path} {program}"
            );
        }
    }
}
