//! What a biome's processes cost now: how many run, the CPU time they have used and the memory
//! they hold, read from `/proc` for every process of the biome's supervised process groups.
//!
//! Every component runs in a process group of its own whose id is the component's pid, and its
//! `sandpit log-writer` joins that group ([`crate::process::spawn_logged`]), so a group is the
//! unit counted: whatever the component's command forks stays in it too. One request (a `list`
//! of hundreds of biomes) reads `/proc` once, however many groups it asks about; a request about
//! no running group (every biome asleep) reads nothing at all.
//!
//! The parsing ([`parse_stat`]) and the summing ([`sum_by_group`]) are pure; [`scan`] and
//! [`attach`] do the reading.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use nix::unistd::{sysconf, SysconfVar};

use crate::protocol::{BiomeStatus, Usage};

/// The fields of one `/proc/<pid>/stat` that cost is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// Field 3: `R`, `S`, `Z`, …
    pub state: char,
    /// Field 5.
    pub process_group: i32,
    /// Fields 14–17: user and system time of the process and of its children it has waited for,
    /// in clock ticks. A worker that a component's command forked and reaped is part of what the
    /// biome cost, and once reaped it is only counted in its parent's `cutime`/`cstime`.
    pub cpu_ticks: u64,
    /// Field 24: resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses the contents of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses (`(a b) (c)`), so fields are counted from the last `)`.
pub fn parse_stat(contents: &str) -> Option<ProcessSample> {
    let after_name = &contents[contents.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state); field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    let number = |n: usize| field(n)?.parse::<u64>().ok();
    Some(ProcessSample {
        state: field(3)?.chars().next()?,
        process_group: field(5)?.parse().ok()?,
        cpu_ticks: [14, 15, 16, 17]
            .into_iter()
            .map(number)
            .sum::<Option<u64>>()?,
        // A negative or absurd value (never seen from the kernel) counts as nothing rather than
        // making the process unreadable.
        rss_pages: field(24)?.parse::<i64>().ok()?.max(0) as u64,
    })
}

/// What the processes of one group add up to, in the kernel's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTotals {
    pub processes: u32,
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

/// Sums the live processes of each group in `groups`; zombies (exited, not yet reaped) hold no
/// memory and do no work, so they are not counted. A group with no live process is absent.
pub fn sum_by_group(
    samples: impl IntoIterator<Item = ProcessSample>,
    groups: &BTreeSet<i32>,
) -> BTreeMap<i32, GroupTotals> {
    let mut totals: BTreeMap<i32, GroupTotals> = BTreeMap::new();
    for sample in samples {
        if matches!(sample.state, 'Z' | 'X') || !groups.contains(&sample.process_group) {
            continue;
        }
        let group = totals.entry(sample.process_group).or_default();
        group.processes += 1;
        group.cpu_ticks += sample.cpu_ticks;
        group.rss_pages += sample.rss_pages;
    }
    totals
}

/// How the kernel's units convert: clock ticks per second and bytes per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub ticks_per_second: u64,
    pub page_bytes: u64,
}

impl Units {
    /// This machine's, from `sysconf` (Linux's usual 100 ticks and 4 KiB pages if it cannot say).
    pub fn of_this_machine() -> Units {
        let read = |var: SysconfVar, fallback: u64| match sysconf(var) {
            Ok(Some(value)) if value > 0 => value as u64,
            _ => fallback,
        };
        Units {
            ticks_per_second: read(SysconfVar::CLK_TCK, 100),
            page_bytes: read(SysconfVar::PAGE_SIZE, 4096),
        }
    }

    /// The totals of several groups (one biome's components) as a biome's usage.
    pub fn usage<'a>(&self, groups: impl IntoIterator<Item = &'a GroupTotals>) -> Usage {
        let mut sum = GroupTotals::default();
        for group in groups {
            sum.processes += group.processes;
            sum.cpu_ticks += group.cpu_ticks;
            sum.rss_pages += group.rss_pages;
        }
        Usage {
            processes: sum.processes,
            cpu_seconds: sum.cpu_ticks as f64 / self.ticks_per_second as f64,
            rss_bytes: sum.rss_pages * self.page_bytes,
        }
    }
}

/// One pass over `/proc`: the totals of every group in `groups`. Nothing is read when `groups`
/// is empty. A process that exits while it is read is simply not counted.
pub fn scan(groups: &BTreeSet<i32>) -> BTreeMap<i32, GroupTotals> {
    if groups.is_empty() {
        return BTreeMap::new();
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    let samples = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?));
    sum_by_group(samples, groups)
}

/// Fills in each biome's [`BiomeStatus::usage`] from one [`scan`] of the groups its components
/// run in (a component's pid is its group's id). A biome with nothing running gets zeros.
pub fn attach(biomes: &mut [BiomeStatus]) {
    let group_of = |pid: Option<u32>| pid.and_then(|pid| i32::try_from(pid).ok());
    let groups: BTreeSet<i32> = biomes
        .iter()
        .flat_map(|b| b.components.iter().filter_map(|c| group_of(c.pid)))
        .collect();
    let totals = scan(&groups);
    let units = Units::of_this_machine();
    for biome in biomes {
        let mine: BTreeSet<i32> = biome
            .components
            .iter()
            .filter_map(|c| group_of(c.pid))
            .collect();
        biome.usage = Some(units.usage(mine.iter().filter_map(|group| totals.get(group))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/<pid>/stat` line with the given command name, state, group, times and rss.
    fn stat_line(comm: &str, state: char, group: i32, times: [u64; 4], rss: i64) -> String {
        let [utime, stime, cutime, cstime] = times;
        format!(
            "4242 ({comm}) {state} 1 {group} {group} 0 -1 4194560 120 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0 98765 12345678 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn stat_lines_parse_whatever_the_command_name_holds() {
        let check = |line: &str, expect: Option<ProcessSample>| {
            assert_eq!(parse_stat(line), expect, "{line}");
        };
        let sample = |state, process_group, cpu_ticks, rss_pages| {
            Some(ProcessSample {
                state,
                process_group,
                cpu_ticks,
                rss_pages,
            })
        };
        check(
            &stat_line("python3", 'S', 4242, [150, 30, 0, 0], 2560),
            sample('S', 4242, 180, 2560),
        );
        // Spaces and parentheses in the name: counted from the last `)`.
        check(
            &stat_line("a b) (c", 'R', 7, [1, 2, 3, 4], 10),
            sample('R', 7, 10, 10),
        );
        check(
            &stat_line("(a b) (c)", 'S', 7, [0, 0, 0, 0], 1),
            sample('S', 7, 0, 1),
        );
        check(
            &stat_line(") 9 9 9", 'S', 8, [5, 0, 0, 0], 3),
            sample('S', 8, 5, 3),
        );
        // Reaped children's time counts (`cutime`, `cstime`).
        check(
            &stat_line("sh", 'S', 9, [1, 1, 40, 8], 200),
            sample('S', 9, 50, 200),
        );
        // A zombie reads (with rss 0); it is the summing that leaves it out.
        check(
            &stat_line("web", 'Z', 9, [3, 0, 0, 0], 0),
            sample('Z', 9, 3, 0),
        );
        // A negative rss is taken as none, not as a reason to drop the process.
        check(
            &stat_line("odd", 'S', 9, [0, 0, 0, 0], -1),
            sample('S', 9, 0, 0),
        );
        check("", None);
        check("4242 (cut short) S 1", None);
        check("4242 no parentheses S 1 2 3", None);
        let not_a_number =
            stat_line("web", 'S', 9, [1, 2, 3, 4], 5).replacen(" 1 2 3 4 ", " 1 x 3 4 ", 1);
        check(&not_a_number, None);
        check(
            &stat_line("web", 'S', 9, [1, 2, 3, 4], 5).replace(" 9 9 ", " g 9 "),
            None,
        );
    }

    #[test]
    fn samples_are_summed_per_asked_group_and_zombies_are_left_out() {
        let sample = |state, process_group, cpu_ticks, rss_pages| ProcessSample {
            state,
            process_group,
            cpu_ticks,
            rss_pages,
        };
        let samples = [
            sample('S', 100, 250, 3000),  // a service
            sample('S', 100, 2, 400),     // its log writer
            sample('R', 100, 10, 600),    // a worker it forked
            sample('Z', 100, 99, 0),      // a worker that exited, not yet reaped
            sample('S', 200, 7, 100),     // another biome's service
            sample('S', 300, 1000, 9999), // someone else's process
            sample('X', 200, 5, 0),       // dead
        ];
        let groups = BTreeSet::from([100, 200, 400]);
        let totals = sum_by_group(samples, &groups);
        assert_eq!(
            totals,
            BTreeMap::from([
                (
                    100,
                    GroupTotals {
                        processes: 3,
                        cpu_ticks: 262,
                        rss_pages: 4000
                    }
                ),
                (
                    200,
                    GroupTotals {
                        processes: 1,
                        cpu_ticks: 7,
                        rss_pages: 100
                    }
                ),
            ])
        );
        assert_eq!(sum_by_group(samples, &BTreeSet::new()), BTreeMap::new());
    }

    #[test]
    fn a_biomes_groups_add_up_in_seconds_and_bytes() {
        let units = Units {
            ticks_per_second: 100,
            page_bytes: 4096,
        };
        let web = GroupTotals {
            processes: 2,
            cpu_ticks: 250,
            rss_pages: 1000,
        };
        let worker = GroupTotals {
            processes: 3,
            cpu_ticks: 5,
            rss_pages: 24,
        };
        assert_eq!(
            units.usage([&web, &worker]),
            Usage {
                processes: 5,
                cpu_seconds: 2.55,
                rss_bytes: 1024 * 4096
            }
        );
        assert_eq!(
            units.usage([]),
            Usage {
                processes: 0,
                cpu_seconds: 0.0,
                rss_bytes: 0
            }
        );
    }

    #[test]
    fn this_machine_has_units() {
        let units = Units::of_this_machine();
        assert!(
            units.ticks_per_second > 0 && units.page_bytes >= 4096,
            "{units:?}"
        );
    }

    #[test]
    fn a_scan_finds_this_test_process_in_its_own_group() {
        let own_group = nix::unistd::getpgrp().as_raw();
        let totals = scan(&BTreeSet::from([own_group]));
        let mine = totals
            .get(&own_group)
            .expect("this process is in its group");
        assert!(mine.processes >= 1, "{mine:?}");
        assert!(mine.rss_pages > 0, "{mine:?}");
        assert_eq!(scan(&BTreeSet::new()), BTreeMap::new());
    }
}
