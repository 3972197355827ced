//! Whether a process recorded in the store is still alive (Linux `/proc`).

use std::path::Path;

/// True when `/proc/<pid>` exists and the process is not a zombie (or dead) yet.
pub(crate) fn is_alive(pid: u32) -> bool {
    let dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return dir.exists();
    };
    // `pid (comm) S ...`: comm may contain spaces and parentheses, the state follows the last `)`.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => !matches!(state, "Z" | "X" | "x"),
        None => true,
    }
}

/// The machine this process runs on, recorded with every event beside the pid: with a state
/// database shared by servers on several machines, a pid only means something on its own host.
pub(crate) fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default()
    })
}

/// The process that recorded an event: its pid, and its host when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorder {
    pub(crate) pid: u32,
    /// `None` for events written before hosts were recorded (always this machine's then).
    pub(crate) host: Option<String>,
}

impl Recorder {
    pub(crate) fn of(pid: Option<i64>, host: Option<String>) -> Option<Recorder> {
        let pid = u32::try_from(pid?).ok()?;
        Some(Recorder { pid, host })
    }

    /// Whether it may still be running. A process of another host cannot be looked at from
    /// here, so it counts as alive: one server never fails another server's live work.
    pub(crate) fn is_alive(&self) -> bool {
        match &self.host {
            Some(host) if !host.is_empty() && host != this_host() => true,
            _ => is_alive(self.pid),
        }
    }
}
