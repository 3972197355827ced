//! Who holds a loopback port: the listening sockets of `/proc/net/tcp{,6}`, the processes whose
//! descriptors point at them, and whether those are ours.
//!
//! Ports are kept for a biome's life, so a crashed service's port is free until it restarts and
//! anyone may take it meanwhile. The supervisor asks here before it starts a process (is the port
//! free, or held by a leftover of ours that it may stop?) and whenever a health check passes (is
//! the answer coming from our own process group, or from a squatter?).

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

/// The environment variable naming the polite stop signal of a process the supervisor started
/// (PostgreSQL's fast shutdown is SIGINT); absent means SIGTERM. A daemon that lost its state can
/// still stop such a process the way it wants to be stopped.
pub const STOP_SIGNAL_VARIABLE: &str = "SANDPIT_STOP_SIGNAL";

/// A listening socket that connections to `127.0.0.1:<port>` can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub inode: u64,
    /// The owner of the socket, as the kernel reports it (visible to every user).
    pub uid: u32,
}

/// Parses a `/proc/net/tcp` or `/proc/net/tcp6` table: the listening sockets on `port` bound to
/// an address that receives connections to 127.0.0.1 (127.0.0.1, 0.0.0.0, `::`, `::ffff:127.0.0.1`).
pub fn parse_listeners(table: &str, port: u16) -> Vec<Listener> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (address, local_port) = fields.get(1)?.split_once(':')?;
            const LISTEN: &str = "0A";
            if *fields.get(3)? != LISTEN || u16::from_str_radix(local_port, 16).ok()? != port {
                return None;
            }
            if !reaches_loopback(address)? {
                return None;
            }
            Some(Listener {
                uid: fields.get(7)?.parse().ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host byte order.
fn reaches_loopback(hex: &str) -> Option<bool> {
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_ne_bytes)
        })
        .collect::<Option<_>>()?;
    match words.as_slice() {
        [v4] => {
            let address = Ipv4Addr::from(*v4);
            Some(address == Ipv4Addr::LOCALHOST || address.is_unspecified())
        }
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, word) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(*word);
            }
            let address = Ipv6Addr::from(bytes);
            Some(
                address.is_unspecified()
                    || address.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST)
                    || address.to_ipv4_mapped() == Some(Ipv4Addr::UNSPECIFIED),
            )
        }
        _ => None,
    }
}

/// The listening sockets on `port`; `None` when the tables cannot be read at all (then nobody
/// can tell who answers, and the caller trusts the probe as before).
pub fn listeners(port: u16) -> Option<Vec<Listener>> {
    let mut found = Vec::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(contents) = fs::read_to_string(table) {
            readable = true;
            found.extend(parse_listeners(&contents, port));
        }
    }
    readable.then_some(found)
}

/// Whether `127.0.0.1:<port>` can be bound right now (with `SO_REUSEADDR`, as servers do, so
/// connections of a previous run waiting in TIME_WAIT do not count).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// What is known about a process that holds a listening socket on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `None` when no visible process holds the socket (another user's, seen by a non-root daemon).
    pub pid: Option<u32>,
    pub uid: u32,
    pub process_group: Option<u32>,
    /// Carries this supervisor's `SANDPIT_SUPERVISOR` marker.
    pub marked: bool,
    /// Its `SANDPIT_STOP_SIGNAL`, if any.
    pub stop_signal: Option<String>,
    /// Its command line, argument by argument.
    pub command: Vec<String>,
}

impl Holder {
    /// "pid 999 (user nobody)", or the user alone when the pid is not visible.
    pub fn describe(&self) -> String {
        let user = user_name(self.uid);
        match self.pid {
            Some(pid) => format!("pid {pid} (user {user})"),
            None => format!("a process of user {user} (its pid is not visible to the daemon)"),
        }
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// Every process holding one of the listeners on `port`, described with `marker` in mind.
/// `None` when the socket tables cannot be read.
pub fn holders(port: u16, marker: &str) -> Option<Vec<Holder>> {
    let listeners = listeners(port)?;
    if listeners.is_empty() {
        return Some(Vec::new());
    }
    let inodes: BTreeSet<u64> = listeners.iter().map(|l| l.inode).collect();
    let mut holders = Vec::new();
    let mut seen = BTreeSet::new();
    for pid in all_pids() {
        for inode in sockets_of(pid).intersection(&inodes) {
            seen.insert(*inode);
            let uid = listeners
                .iter()
                .find(|l| l.inode == *inode)
                .map(|l| l.uid)
                .unwrap_or_default();
            holders.push(describe_process(pid, uid, marker));
        }
    }
    // Sockets no visible process holds still have an owner the kernel tells everyone.
    for listener in listeners.iter().filter(|l| !seen.contains(&l.inode)) {
        holders.push(Holder {
            pid: None,
            uid: listener.uid,
            process_group: None,
            marked: false,
            stop_signal: None,
            command: Vec::new(),
        });
    }
    holders.dedup();
    Some(holders)
}

/// Who answers on `port` compared with the process group `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answering {
    /// Every listener belongs to a member of the group.
    Group,
    /// Nothing listens (a moment ago something did, or the process is still binding).
    Nobody,
    /// Someone else holds (one of) the listeners.
    Other(Holder),
    /// The socket tables are unreadable: nobody can tell.
    Unknown,
}

/// Whether the listener on `port` is the group's own. Cheap in the usual case: only the group's
/// members' descriptors are read; the whole process table only when a stranger must be named.
pub fn answering(port: u16, group: u32, marker: &str) -> Answering {
    let Some(listeners) = listeners(port) else {
        return Answering::Unknown;
    };
    if listeners.is_empty() {
        return Answering::Nobody;
    }
    let mut missing: BTreeSet<u64> = listeners.iter().map(|l| l.inode).collect();
    for member in crate::process::group_members(group) {
        for inode in sockets_of(member) {
            missing.remove(&inode);
        }
        if missing.is_empty() {
            return Answering::Group;
        }
    }
    let strangers = holders(port, marker).unwrap_or_default();
    match strangers
        .into_iter()
        .find(|h| h.process_group != Some(group))
    {
        Some(stranger) => Answering::Other(stranger),
        // The socket changed hands between the two looks; ask again next time.
        None => Answering::Nobody,
    }
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// The socket inodes among a process's descriptors (`socket:[<inode>]`).
fn sockets_of(pid: u32) -> BTreeSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|entry| {
            let target = fs::read_link(entry.ok()?.path()).ok()?;
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

fn describe_process(pid: u32, uid: u32, marker: &str) -> Holder {
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let variables: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    let stop_prefix = format!("{STOP_SIGNAL_VARIABLE}=");
    let stop_signal = variables.iter().find_map(|var| {
        std::str::from_utf8(var)
            .ok()?
            .strip_prefix(&stop_prefix)
            .map(str::to_owned)
    });
    let command = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    Holder {
        pid: Some(pid),
        uid,
        process_group: crate::process::stat(pid).map(|s| s.process_group as u32),
        marked: variables.contains(&marker.as_bytes()),
        stop_signal,
        command,
    }
}

/// What to do about a port that is not free before starting a process on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Every holder is a leftover of ours (it carries our marker, or runs exactly the command
    /// about to be started — an instance started by an older daemon): stop these process groups,
    /// each with its polite signal, then start.
    StopLeftovers(Vec<(u32, Option<String>)>),
    /// Someone else holds it: do not start, say who.
    HeldBy(Holder),
}

/// Decides about the holders of a port that could not be bound. `supervised` are the process
/// groups the supervisor currently runs (a sibling that holds the port is not a leftover, and is
/// never stopped for it); `own_command` is the command line about to be started, when a process
/// running exactly it counts as ours (instances, whose command names their data under this home).
pub fn claim(
    holders: &[Holder],
    supervised: &BTreeSet<u32>,
    own_command: Option<&[String]>,
) -> Claim {
    let mut leftovers: Vec<(u32, Option<String>)> = Vec::new();
    for holder in holders {
        let ours = holder.marked || own_command.is_some_and(|c| c == holder.command.as_slice());
        match (holder.pid, holder.process_group) {
            (Some(_), Some(group)) if ours && !supervised.contains(&group) => {
                if !leftovers.iter().any(|(g, _)| *g == group) {
                    leftovers.push((group, holder.stop_signal.clone()));
                }
            }
            _ => return Claim::HeldBy(holder.clone()),
        }
    }
    Claim::StopLeftovers(leftovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A0D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 00000000:A0D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 222 1 0 100 0 0 10 0
   2: 0200007F:A0D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 0100007F:A0D2 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0
   4: 0100007F:A0D3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:A0D2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 666 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:A0D2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0 100 0 0 10 0
   2: 00000000000000000000000001000000:A0D2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 888 1 0 100 0 0 10 0
";

    #[test]
    fn listeners_reaching_loopback_on_the_port_are_found() {
        // 0xA0D2 = 41170. 127.0.0.2 (333), a connection (444), another port (555) and ::1 (888)
        // do not receive connections to 127.0.0.1:41170.
        let inodes = |table: &str| -> Vec<(u64, u32)> {
            parse_listeners(table, 41170)
                .into_iter()
                .map(|l| (l.inode, l.uid))
                .collect()
        };
        assert_eq!(inodes(TCP), [(111, 0), (222, 65534)]);
        assert_eq!(inodes(TCP6), [(666, 1000), (777, 1000)]);
        assert_eq!(parse_listeners(TCP, 1), []);
        assert_eq!(parse_listeners("garbage\nmore garbage here", 41170), []);
    }

    fn holder(pid: u32, group: u32, marked: bool, command: &[&str]) -> Holder {
        Holder {
            pid: Some(pid),
            uid: 0,
            process_group: Some(group),
            marked,
            stop_signal: None,
            command: command.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_leftovers_of_ours_are_stopped_to_free_a_port() {
        let postgres: Vec<String> = ["/usr/bin/postgres", "-D", "/home/data"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let supervised = BTreeSet::from([50]);
        let unseen = Holder {
            pid: None,
            uid: 65534,
            process_group: None,
            marked: false,
            stop_signal: None,
            command: Vec::new(),
        };
        let mut signalled = holder(30, 30, true, &["postgres"]);
        signalled.stop_signal = Some("SIGINT".into());
        // (what, holders, the command that counts as ours, decision)
        type Case<'a> = (&'a str, Vec<Holder>, Option<&'a [String]>, Claim);
        let cases: Vec<Case> = vec![
            (
                "a marked orphan",
                vec![
                    holder(10, 10, true, &["sh"]),
                    holder(11, 10, true, &["python3"]),
                ],
                None,
                Claim::StopLeftovers(vec![(10, None)]),
            ),
            (
                "its stop signal is kept",
                vec![signalled],
                None,
                Claim::StopLeftovers(vec![(30, Some("SIGINT".into()))]),
            ),
            (
                "a stranger",
                vec![holder(20, 20, false, &["python3"])],
                None,
                Claim::HeldBy(holder(20, 20, false, &["python3"])),
            ),
            (
                "a stranger beside an orphan",
                vec![
                    holder(10, 10, true, &["sh"]),
                    holder(20, 20, false, &["nc"]),
                ],
                None,
                Claim::HeldBy(holder(20, 20, false, &["nc"])),
            ),
            (
                "a sibling the supervisor runs",
                vec![holder(50, 50, true, &["sh"])],
                None,
                Claim::HeldBy(holder(50, 50, true, &["sh"])),
            ),
            (
                "an unmarked instance running exactly our command",
                vec![holder(
                    40,
                    40,
                    false,
                    &["/usr/bin/postgres", "-D", "/home/data"],
                )],
                Some(&postgres),
                Claim::StopLeftovers(vec![(40, None)]),
            ),
            (
                "an unmarked process running another command",
                vec![holder(
                    40,
                    40,
                    false,
                    &["/usr/bin/postgres", "-D", "/elsewhere"],
                )],
                Some(&postgres),
                Claim::HeldBy(holder(
                    40,
                    40,
                    false,
                    &["/usr/bin/postgres", "-D", "/elsewhere"],
                )),
            ),
            (
                "a process nobody can see",
                vec![unseen.clone()],
                None,
                Claim::HeldBy(unseen),
            ),
        ];
        for (what, holders, own_command, expected) in cases {
            assert_eq!(
                claim(&holders, &supervised, own_command),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn holders_are_described_by_pid_and_user() {
        let mut squatter = holder(999, 999, false, &["python3"]);
        squatter.uid = 0;
        assert_eq!(squatter.describe(), "pid 999 (user root)");
        squatter.pid = None;
        squatter.uid = 4_000_000;
        assert_eq!(
            squatter.describe(),
            "a process of user uid 4000000 (its pid is not visible to the daemon)"
        );
    }

    #[test]
    fn a_port_held_by_this_process_is_not_free_and_is_found_as_its_own() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(port));
        let me = std::process::id();
        let group = crate::process::stat(me).unwrap().process_group as u32;
        assert_eq!(
            answering(port, group, "SANDPIT_SUPERVISOR=test"),
            Answering::Group
        );
        let found = holders(port, "SANDPIT_SUPERVISOR=test").unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, Some(me));
        assert!(!found[0].marked);
        drop(listener);
        assert!(is_free(port));
        assert_eq!(
            answering(port, group, "SANDPIT_SUPERVISOR=test"),
            Answering::Nobody
        );
    }
}
