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
