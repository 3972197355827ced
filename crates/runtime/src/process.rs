//! Starting, watching and stopping the processes of a biome. The only place the runtime spawns.
//!
//! Every component runs as `sh -c <run>` in a process group of its own (so a stop reaches the
//! whole tree the command starts), with a scrubbed environment, stdin from `/dev/null`, and stdout
//! and stderr appended straight to its log file. Writing to a file rather than a pipe means a
//! component outlives a crash of the daemon untouched, and the next daemon can adopt it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: Program,
    pub working_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    /// Run as this uid and gid (e.g. PostgreSQL, which refuses to run as root).
    pub run_as: Option<(u32, u32)>,
}

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// A user's command line from `sandpit.toml`, run with `sh -c`.
    Shell(String),
    /// A program and its arguments, run directly.
    Exec { path: PathBuf, args: Vec<String> },
}

impl Program {
    /// How the program is shown to a user.
    pub fn display(&self) -> String {
        match self {
            Program::Shell(command) => command.clone(),
            Program::Exec { path, args } => std::iter::once(path.display().to_string())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A process the supervisor started (or adopted), identified robustly against pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Start time in clock ticks since boot, from `/proc/<pid>/stat`; a recycled pid has another.
    pub start_ticks: u64,
}

/// Starts `launch` in its own process group.
pub fn spawn(launch: &Launch) -> io::Result<(tokio::process::Child, ProcessIdentity)> {
    if let Some(parent) = launch.log_path.parent() {
        fs::create_dir_all(parent)?;
    }
    // Owner-only: a process may print the secrets in its environment (and PostgreSQL's log sits
    // in a directory others may pass through).
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::owner_only::FILE_MODE)
        .open(&launch.log_path)?;
    crate::owner_only::repair(&launch.log_path, crate::owner_only::FILE_MODE)?;
    let log_for_stderr = log.try_clone()?;
    let mut command = match &launch.program {
        Program::Shell(line) => {
            let mut command = tokio::process::Command::new("sh");
            command.arg("-c").arg(line);
            command
        }
        Program::Exec { path, args } => {
            let mut command = tokio::process::Command::new(path);
            command.args(args);
            command
        }
    };
    if let Some((uid, gid)) = launch.run_as {
        command.uid(uid).gid(gid);
    }
    let child = command
        .current_dir(&launch.working_dir)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr))
        .process_group(0)
        .kill_on_drop(false)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("process exited before its pid was read"))?;
    let start_ticks = stat(pid).map(|s| s.start_ticks).unwrap_or(0);
    Ok((child, ProcessIdentity { pid, start_ticks }))
}

/// The fields of `/proc/<pid>/stat` the supervisor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub parent: i32,
    pub process_group: i32,
    pub start_ticks: u64,
}

/// Parses the contents of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(contents: &str) -> Option<ProcStat> {
    let after_name = &contents[contents.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state); field N is fields[N - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(4 - 3)?.parse().ok()?,
        process_group: fields.get(5 - 3)?.parse().ok()?,
        start_ticks: fields.get(22 - 3)?.parse().ok()?,
    })
}

pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether the process is still the one we started and has not exited (a zombie counts as exited:
/// nothing here reaps a process the supervisor adopted, and pid 1 may not either).
pub fn is_running(identity: ProcessIdentity) -> bool {
    match stat(identity.pid) {
        Some(s) => s.start_ticks == identity.start_ticks && s.state != 'Z' && s.state != 'X',
        None => false,
    }
}

/// Live (non-zombie) members of a process group.
pub fn group_members(process_group: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat(*pid).is_some_and(|s| {
                s.process_group == process_group as i32 && s.state != 'Z' && s.state != 'X'
            })
        })
        .collect()
}

/// Sends `signal` to every process in the group; a group that is already gone is not an error.
pub fn signal_group(process_group: u32, signal: Signal) -> io::Result<()> {
    match killpg(Pid::from_raw(process_group as i32), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Stops a process group: SIGTERM, then SIGKILL for whatever is left after `grace`.
/// `child`, when the process is ours, is reaped so it does not linger as a zombie.
pub async fn stop_group(
    identity: ProcessIdentity,
    child: Option<&mut tokio::process::Child>,
    grace: Duration,
) {
    stop_group_with(identity, child, grace, Signal::SIGTERM).await
}

/// [`stop_group`] with another polite signal first (PostgreSQL's fast shutdown is SIGINT).
pub async fn stop_group_with(
    identity: ProcessIdentity,
    child: Option<&mut tokio::process::Child>,
    grace: Duration,
    polite: Signal,
) {
    let group = identity.pid;
    // A group we no longer lead (pid reused) must not be signalled.
    if !is_running(identity) && group_members(group).is_empty() {
        if let Some(child) = child {
            let _ = child.wait().await;
        }
        return;
    }
    let _ = signal_group(group, polite);
    let deadline = tokio::time::Instant::now() + grace;
    let mut child = child;
    loop {
        if let Some(child) = child.as_mut() {
            let _ = child.try_wait();
        }
        if group_members(group).is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = signal_group(group, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if let Some(child) = child {
        let _ = child.wait().await;
    }
    // After SIGKILL the kernel removes the processes promptly; wait for it so callers can rely on
    // "stopped" meaning gone.
    for _ in 0..200 {
        if group_members(group).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A live process whose environment carries the supervisor's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub pid: u32,
    pub parent: u32,
    pub process_group: u32,
    /// Its `SANDPIT_STOP_SIGNAL`, when it asked to be stopped otherwise than with SIGTERM.
    pub stop_signal: Option<String>,
}

/// Processes whose environment carries `marker` (`NAME=value`): how a restarted daemon finds
/// processes it started but never recorded (or whose record it lost), so none is left orphaned.
pub fn processes_with_env_marker(marker: &str) -> Vec<Marked> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own_pid = std::process::id();
    let stop_prefix = format!("{}=", crate::ports::STOP_SIGNAL_VARIABLE);
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own_pid)
        .filter_map(|pid| {
            let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
            let mut variables = environ.split(|b| *b == 0);
            if !variables.clone().any(|var| var == marker.as_bytes()) {
                return None;
            }
            let stop_signal = variables.find_map(|var| {
                std::str::from_utf8(var)
                    .ok()?
                    .strip_prefix(&stop_prefix)
                    .map(str::to_owned)
            });
            let stat = stat(pid).filter(|s| s.state != 'Z' && s.state != 'X')?;
            Some(Marked {
                pid,
                parent: stat.parent as u32,
                process_group: stat.process_group as u32,
                stop_signal,
            })
        })
        .collect()
}

/// The process groups to stop among `marked` processes, each with its polite signal: for every
/// marked process, the group of its topmost marked ancestor (PostgreSQL's children and
/// daemonising servers leave their parent's group, yet are stopped through the parent), unless
/// that group is one the supervisor knows.
pub fn orphan_groups(
    marked: &[Marked],
    known_groups: &BTreeSet<u32>,
) -> Vec<(u32, Option<String>)> {
    let by_pid: BTreeMap<u32, &Marked> = marked.iter().map(|m| (m.pid, m)).collect();
    let mut groups: Vec<(u32, Option<String>)> = Vec::new();
    for process in marked {
        let mut root = process;
        // Bounded: a parent chain cannot be longer than the table (and cannot loop).
        for _ in 0..marked.len() {
            match by_pid.get(&root.parent) {
                Some(parent) => root = parent,
                None => break,
            }
        }
        let group = root.process_group;
        if known_groups.contains(&group) || groups.iter().any(|(g, _)| *g == group) {
            continue;
        }
        groups.push((group, root.stop_signal.clone()));
    }
    groups
}

/// The polite signal named by `SANDPIT_STOP_SIGNAL` (`SIGINT`, …), SIGTERM when absent or unknown.
pub fn polite_signal(name: Option<&str>) -> Signal {
    name.and_then(|n| n.parse().ok()).unwrap_or(Signal::SIGTERM)
}

/// Stops a process group nobody watches (its leader may be gone while members remain): the
/// polite signal, SIGKILL after `grace`.
pub async fn stop_leftover_group(process_group: u32, polite: Signal, grace: Duration) {
    let identity = ProcessIdentity {
        pid: process_group,
        start_ticks: stat(process_group).map(|s| s.start_ticks).unwrap_or(0),
    };
    stop_group_with(identity, None, grace, polite).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let parsed = parse_stat(line).unwrap();
        assert_eq!(parsed.state, 'S');
        assert_eq!(parsed.parent, 1);
        assert_eq!(parsed.process_group, 4242);
        assert_eq!(parsed.start_ticks, 987654);
        assert!(parse_stat("garbage").is_none());
    }

    fn marked(pid: u32, parent: u32, group: u32, signal: Option<&str>) -> Marked {
        Marked {
            pid,
            parent,
            process_group: group,
            stop_signal: signal.map(str::to_owned),
        }
    }

    fn check_orphans(
        what: &str,
        processes: &[Marked],
        known: &[u32],
        expected: &[(u32, Option<&str>)],
    ) {
        let known: BTreeSet<u32> = known.iter().copied().collect();
        let expected: Vec<(u32, Option<String>)> = expected
            .iter()
            .map(|(group, signal)| (*group, signal.map(str::to_owned)))
            .collect();
        assert_eq!(orphan_groups(processes, &known), expected, "{what}");
    }

    #[test]
    fn orphans_are_stopped_through_their_topmost_marked_ancestor() {
        check_orphans(
            "a component: sh leads the group, python is in it",
            &[marked(10, 1, 10, None), marked(11, 10, 10, None)],
            &[],
            &[(10, None)],
        );
        check_orphans(
            "postgres: children lead groups of their own",
            &[
                marked(20, 1, 20, Some("SIGINT")),
                marked(21, 20, 21, None),
                marked(22, 20, 22, None),
            ],
            &[],
            &[(20, Some("SIGINT"))],
        );
        check_orphans(
            "a known group is left alone, with what it started",
            &[marked(30, 1, 30, None), marked(31, 30, 31, None)],
            &[30],
            &[],
        );
        check_orphans(
            "a child whose parent is not marked is a root itself",
            &[marked(40, 7, 40, None), marked(50, 1, 50, None)],
            &[],
            &[(40, None), (50, None)],
        );
        check_orphans(
            "a parent loop cannot hang the sweep",
            &[marked(60, 61, 60, None), marked(61, 60, 60, None)],
            &[],
            &[(60, None)],
        );
    }

    #[test]
    fn polite_signals_are_read_by_name() {
        assert_eq!(polite_signal(Some("SIGINT")), Signal::SIGINT);
        assert_eq!(polite_signal(Some("nonsense")), Signal::SIGTERM);
        assert_eq!(polite_signal(None), Signal::SIGTERM);
    }

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let me = stat(pid).unwrap();
        assert!(is_running(ProcessIdentity {
            pid,
            start_ticks: me.start_ticks
        }));
        assert!(!is_running(ProcessIdentity {
            pid,
            start_ticks: me.start_ticks + 1
        }));
    }
}
