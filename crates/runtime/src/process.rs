//! Starting, watching and stopping the processes of a biome. The only place the runtime spawns.
//!
//! Every component runs as `sh -c <run>` in a process group of its own (so a stop reaches the
//! whole tree the command starts), with a scrubbed environment and stdin from `/dev/null`. Its
//! stdout and stderr are pipes to its log writer ([`spawn_logged`], `sandpit log-writer`), which
//! runs in the same process group and timestamps every line into the log file; instances (the
//! embedded PostgreSQL, the model endpoint) append straight to theirs ([`spawn`]). Neither goes
//! through the daemon, so a component outlives a crash of the daemon untouched, and the next
//! daemon adopts it, its writer with it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
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

/// How a component's output reaches its log: through the hidden `sandpit log-writer`
/// ([`crate::log_writer`]), which timestamps every line and tells stdout from stderr.
#[derive(Debug, Clone)]
pub struct LogWriter {
    /// The `sandpit` executable.
    pub executable: PathBuf,
    /// `NAME=value`, the supervisor's marker: the writer's whole environment, so a writer left
    /// behind by its component is found and stopped like any other process of this home.
    pub marker: String,
    /// The log's size cap, which the writer keeps between its own writes.
    pub max_bytes: u64,
    /// What `ps` shows for it (`project/biome/component`).
    pub label: String,
}

/// Starts `launch` in its own process group, its stdout and stderr appended straight to its
/// log file.
pub fn spawn(launch: &Launch) -> io::Result<(tokio::process::Child, ProcessIdentity)> {
    let log = crate::logs::open_for_append(&launch.log_path)?;
    let log_for_stderr = log.try_clone()?;
    let mut command = command(launch);
    let child = command
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr))
        .spawn()?;
    identify(child)
}

/// Starts `launch` in its own process group with its stdout and stderr on pipes, and its log
/// writer in the same group reading them into its log file.
///
/// The writer gets the read end of the stdout pipe as its stdin and that of the stderr pipe as
/// its stdout (std hands a child no descriptors but the three standard ones, and this workspace
/// allows no `unsafe` for a `pre_exec` that would place them elsewhere); its stderr is the log,
/// where its own complaints land too. The pipes are close-on-exec, so no other process started
/// meanwhile inherits an end of them, and the daemon closes its copies as soon as both are
/// started: the writer sees the pipes close when the component's group has closed them.
pub fn spawn_logged(
    launch: &Launch,
    writer: &LogWriter,
) -> io::Result<(tokio::process::Child, ProcessIdentity)> {
    let log = crate::logs::open_for_append(&launch.log_path)?;
    let (stdout_read, stdout_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (stderr_read, stderr_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let child = {
        let mut command = command(launch);
        command
            .stdout(Stdio::from(stdout_write))
            .stderr(Stdio::from(stderr_write))
            .spawn()?
        // The command, holding our copies of the write ends, is dropped here.
    };
    let (mut child, identity) = identify(child)?;
    let (marker_name, marker_value) = writer
        .marker
        .split_once('=')
        .unwrap_or((&writer.marker, ""));
    let mut command = tokio::process::Command::new(&writer.executable);
    command
        .arg("log-writer")
        .arg("--for")
        .arg(&writer.label)
        .arg("--log")
        .arg(&launch.log_path)
        .arg("--max-bytes")
        .arg(writer.max_bytes.to_string())
        // Under the home like the component, out of its working directory.
        .current_dir(launch.log_path.parent().unwrap_or(&launch.working_dir))
        .env_clear()
        .env(marker_name, marker_value)
        .stdin(Stdio::from(stdout_read))
        .stdout(Stdio::from(stderr_read))
        .stderr(Stdio::from(log))
        // The component is not reaped before this, so its group exists even if it has exited.
        .process_group(identity.pid as i32)
        .kill_on_drop(false);
    match command.spawn() {
        // Reaped by tokio once it exits; the group is what the supervisor watches and stops.
        Ok(writer_process) => drop(writer_process),
        Err(error) => {
            // Nobody would read its output: the component would die of the first line it wrote.
            let _ = signal_group(identity.pid, Signal::SIGKILL);
            let _ = child.start_kill();
            return Err(io::Error::new(
                error.kind(),
                format!(
                    "cannot start its log writer {}: {error}",
                    writer.executable.display()
                ),
            ));
        }
    }
    Ok((child, identity))
}

/// The command that runs `launch`, in a process group of its own, without its output set.
fn command(launch: &Launch) -> tokio::process::Command {
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
    command
        .current_dir(&launch.working_dir)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(false);
    command
}

fn identify(child: tokio::process::Child) -> io::Result<(tokio::process::Child, ProcessIdentity)> {
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
            "an adopted component's log writer is in its group, reparented to init",
            &[marked(70, 1, 70, None), marked(71, 1, 70, None)],
            &[70],
            &[],
        );
        check_orphans(
            "a log writer whose component is gone is stopped through its group",
            &[marked(80, 1, 79, None)],
            &[70],
            &[(79, None)],
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

    fn launch_in(dir: &std::path::Path, run: &str) -> Launch {
        Launch {
            program: Program::Shell(run.to_owned()),
            working_dir: dir.to_path_buf(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            log_path: dir.join("logs/web.log"),
            run_as: None,
        }
    }

    fn writer(executable: PathBuf) -> LogWriter {
        LogWriter {
            executable,
            marker: "SANDPIT_SUPERVISOR=test".into(),
            max_bytes: 1 << 20,
            label: "p/b/web".into(),
        }
    }

    fn cmdline(pid: u32) -> String {
        fs::read(format!("/proc/{pid}/cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default()
    }

    /// With a stand-in for `sandpit log-writer` that copies its stdin and stdout (the
    /// component's two pipes) to files: each stream reaches the writer apart, the writer runs in
    /// the component's process group with nothing but the marker in its environment, and a stop
    /// of the group ends it too.
    #[tokio::test]
    async fn the_log_writer_reads_both_pipes_from_within_the_components_group() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-sandpit");
        // An asynchronous list's stdin is /dev/null in sh: keep the pipe on fd 3 first.
        fs::write(
            &fake,
            "#!/bin/sh\nexec 3<&0\n/bin/cat <&3 > out &\n/bin/cat <&1 > err\nwait\n",
        )
        .unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let launch = launch_in(dir.path(), "echo to-out; echo to-err >&2; exec sleep 30");
        let (mut child, identity) = spawn_logged(&launch, &writer(fake)).unwrap();
        let logs = dir.path().join("logs");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = fs::read_to_string(logs.join("out")).unwrap_or_default();
            let err = fs::read_to_string(logs.join("err")).unwrap_or_default();
            if out == "to-out\n" && err == "to-err\n" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "out {out:?}, err {err:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let members = group_members(identity.pid);
        let writer_pid = members
            .iter()
            .copied()
            .find(|pid| cmdline(*pid).contains("log-writer --for p/b/web --log"))
            .unwrap_or_else(|| panic!("no writer among {members:?}"));
        let environ = fs::read(format!("/proc/{writer_pid}/environ")).unwrap();
        assert_eq!(environ, b"SANDPIT_SUPERVISOR=test\0");
        stop_group(identity, Some(&mut child), Duration::from_secs(5)).await;
        assert!(group_members(identity.pid).is_empty());
    }

    /// The writer joins the group of a component that may already have exited (not reaped yet,
    /// its group still exists), and still reads what it wrote.
    #[tokio::test]
    async fn a_component_that_exits_at_once_still_gets_its_writer_and_its_output_read() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-sandpit");
        fs::write(&fake, "#!/bin/sh\nexec /bin/cat >> out\n").unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let launch = launch_in(dir.path(), "echo quick");
        for _ in 0..20 {
            let (mut child, _) = spawn_logged(&launch, &writer(fake.clone())).unwrap();
            assert!(child.wait().await.unwrap().success());
        }
        let out = dir.path().join("logs/out");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&out).unwrap_or_default() != "quick\n".repeat(20) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                fs::read_to_string(&out)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_component_whose_log_writer_cannot_start_is_not_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let launch = launch_in(dir.path(), "exec sleep 30");
        let missing = dir.path().join("no-such-sandpit");
        let error = spawn_logged(&launch, &writer(missing)).unwrap_err();
        assert!(
            error.to_string().contains("cannot start its log writer"),
            "{error}"
        );
        // The component was killed (a zombie has no working directory).
        let dir = fs::canonicalize(dir.path()).unwrap();
        let in_dir = || {
            fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|entry| fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while in_dir() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the component still runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
