//! `sandpit logs [BIOME] [COMPONENT]`: a biome's logs, every component interleaved in time (or
//! one component's), within a window (`--since`, `--tail`), optionally followed.
//!
//! The logs are found through the daemon's status of the biome; following then reads the files
//! alone: each as it grows and rotates, and (for a whole biome) logs that appear in the biome's
//! log directory meanwhile, i.e. components added by a later `up`.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sandpit_domain::Name;
use sandpit_runtime::logs::{self, Follower, Record, Window};

use crate::Context;

/// The lines shown before following when neither `--tail` nor `--since` says otherwise.
pub const DEFAULT_TAIL: usize = 100;

/// How often a followed log is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How many polls between two looks for logs of new components.
const POLLS_PER_DISCOVERY: u32 = 5;

/// One line of output: the component that wrote it, and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub component: Name,
    pub record: Record,
}

/// The logs one `sandpit logs` reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub biome: Name,
    /// Each component (in the biome's order) and its log.
    pub components: Vec<(Name, PathBuf)>,
    /// The whole biome (no component named): logs of components added later are followed too.
    pub whole_biome: bool,
}

/// Which lines to show first: at or after `since`, of those the last `tail` (over all the
/// components together) — [`DEFAULT_TAIL`] unless either is given.
pub fn window(since: Option<SystemTime>, tail: Option<usize>) -> Window {
    Window {
        since,
        tail: tail.or(if since.is_some() {
            None
        } else {
            Some(DEFAULT_TAIL)
        }),
    }
}

/// Finds the logs through the daemon's status of the biome (the current branch's when `None`),
/// all of them or the named component's.
pub async fn sources(
    context: &Context,
    biome: Option<&str>,
    component: Option<&str>,
) -> anyhow::Result<Sources> {
    let status = crate::status::status(context, biome).await?;
    let all: Vec<(Name, PathBuf)> = status
        .components
        .iter()
        .map(|c| (c.name.clone(), c.log.clone()))
        .collect();
    let Some(component) = component else {
        // An overlay biome's borrowed services log into their lender's logs: named, they are
        // shown; the whole biome is what it runs itself.
        let own = status
            .components
            .iter()
            .filter(|c| c.borrowed_from.is_none())
            .map(|c| (c.name.clone(), c.log.clone()))
            .collect();
        return Ok(Sources {
            biome: status.biome,
            components: own,
            whole_biome: true,
        });
    };
    match all.iter().find(|(name, _)| name.as_str() == component) {
        Some(found) => Ok(Sources {
            biome: status.biome.clone(),
            components: vec![found.clone()],
            whole_biome: false,
        }),
        None => crate::fail!(
            NotFound,
            "biome `{}` has no component `{component}`; it has: {}\nhint: `sandpit logs {}` shows all of them",
            status.biome,
            all.iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            status.biome
        ),
    }
}

/// Hands `print` the lines within `window` in time order, then (when `follow`) every line
/// written afterwards, batch by batch, until interrupted or `print` fails (a closed pipe ends
/// it quietly).
pub async fn show(
    sources: Sources,
    window: Window,
    follow: bool,
    mut print: impl FnMut(&[Line]) -> io::Result<()>,
) -> anyhow::Result<()> {
    let log_dir = sources
        .components
        .first()
        .and_then(|(_, log)| log.parent())
        .map(|dir| dir.to_path_buf())
        .filter(|_| sources.whole_biome);
    // Followers are placed at the logs' ends first and read back from there, so a line written
    // meanwhile is shown once: either in the backlog or when followed.
    let mut followers: Vec<(Name, Follower)> = sources
        .components
        .iter()
        .map(|(name, log)| (name.clone(), Follower::at_end(log)))
        .collect();
    let mut backlog = Vec::new();
    for (name, follower) in &mut followers {
        let records = follower
            .backlog(window)
            .with_context(|| format!("cannot read {}", follower.path().display()))?;
        backlog.push((name.clone(), records));
    }
    let mut lines = into_lines(logs::merge(backlog));
    // The tail is over all the components together.
    if let Some(tail) = window.tail {
        if lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
    }
    if !printed(print(&lines))? || !follow {
        return Ok(());
    }
    // Logs in the directory that belong to no component of the biome now (one removed from
    // the biome) are not news; any other new file is a component's that just started.
    let mut known: BTreeSet<PathBuf> = match &log_dir {
        Some(dir) => log_files(dir).into_iter().map(|(_, path)| path).collect(),
        None => BTreeSet::new(),
    };
    known.extend(sources.components.iter().map(|(_, log)| log.clone()));
    let mut polls_to_discovery = POLLS_PER_DISCOVERY;
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        polls_to_discovery -= 1;
        let discover = polls_to_discovery == 0;
        if discover {
            polls_to_discovery = POLLS_PER_DISCOVERY;
        }
        if let Some(dir) = log_dir.as_ref().filter(|_| discover) {
            for (name, path) in log_files(dir) {
                if known.insert(path.clone()) {
                    followers.push((name, Follower::from_start(&path)));
                }
            }
        }
        let mut news = Vec::new();
        for (name, follower) in &mut followers {
            // A log that cannot be read now (removed with its biome) may come back later.
            let records = follower.poll().unwrap_or_default();
            news.push((name.clone(), records));
        }
        let lines = into_lines(logs::merge(news));
        if !lines.is_empty() && !printed(print(&lines))? {
            return Ok(());
        }
    }
}

/// Where a reader of a log page got to, for the next page (`logs -f` against a server, which
/// keeps no state between requests): the time of the last line read and how many lines of that
/// very time were read. Spelled `<microseconds since the epoch>.<count>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: SystemTime,
    pub seen_at_time: usize,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let micros = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        format!("{micros}.{}", self.seen_at_time)
    }

    pub fn parse(raw: &str) -> anyhow::Result<Cursor> {
        let parsed = raw.split_once('.').and_then(|(micros, seen)| {
            Some((micros.parse::<u64>().ok()?, seen.parse::<usize>().ok()?))
        });
        let Some((micros, seen_at_time)) = parsed else {
            crate::fail!(
                InvalidInput,
                "`{raw}` is not a log cursor (`<microseconds>.<count>`)\nhint: pass back the `cursor` of the previous page"
            );
        };
        Ok(Cursor {
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
            seen_at_time,
        })
    }
}

/// One page of a biome's logs: the lines, and the cursor the next page starts from.
#[derive(Debug, Clone)]
pub struct Page {
    pub lines: Vec<Line>,
    pub cursor: Cursor,
}

/// The lines within `window` (no `after`), or the lines written after `after`, and the cursor
/// after them. Reads the files from the window's (or cursor's) time on, rotated generations
/// included; a line is returned once as long as each log is in time order.
pub fn page(sources: &Sources, window: Window, after: Option<Cursor>) -> anyhow::Result<Page> {
    let read_window = match after {
        Some(cursor) => Window {
            since: Some(cursor.time),
            tail: None,
        },
        None => window,
    };
    let mut all = Vec::new();
    for (name, log) in &sources.components {
        let records = Follower::at_end(log)
            .backlog(read_window)
            .with_context(|| format!("cannot read {}", log.display()))?;
        all.push((name.clone(), records));
    }
    let merged = into_lines(logs::merge(all));
    Ok(select_page(
        merged,
        window.tail.filter(|_| after.is_none()),
        after,
        SystemTime::now(),
    ))
}

/// [`page`]'s choice among the lines read (in time order): those after the cursor (skipping the
/// ones of its very time already read), of those the last `tail`; and the next cursor, which
/// counts every line of the last line's time (the tail may have cut some: they were read too).
/// With nothing to show the cursor stays, or starts at `now` for a first page.
fn select_page(
    mut lines: Vec<Line>,
    tail: Option<usize>,
    after: Option<Cursor>,
    now: SystemTime,
) -> Page {
    if let Some(cursor) = after {
        let mut skipped = 0;
        lines.retain(|line| {
            if line.record.time < cursor.time {
                return false;
            }
            if line.record.time == cursor.time && skipped < cursor.seen_at_time {
                skipped += 1;
                return false;
            }
            true
        });
    }
    let cursor = match lines.last() {
        None => after.unwrap_or(Cursor {
            time: now,
            seen_at_time: 0,
        }),
        Some(last) => {
            let time = last.record.time;
            let new_at_time = lines.iter().filter(|l| l.record.time == time).count();
            let earlier = after
                .filter(|c| c.time == time)
                .map_or(0, |c| c.seen_at_time);
            Cursor {
                time,
                seen_at_time: earlier + new_at_time,
            }
        }
    };
    if let Some(tail) = tail {
        if lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
    }
    Page { lines, cursor }
}

fn into_lines(merged: Vec<(Name, Record)>) -> Vec<Line> {
    merged
        .into_iter()
        .map(|(component, record)| Line { component, record })
        .collect()
}

/// Whether printing worked; a reader that went away (`logs -f | head`) is not an error.
fn printed(result: io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("cannot write the logs"),
    }
}

/// The components' logs in a biome's log directory (`<component>.log`), sorted by name.
fn log_files(dir: &std::path::Path) -> Vec<(Name, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Name, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let component = file_name.to_str()?.strip_suffix(".log")?;
            Some((Name::parse(component).ok()?, entry.path()))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandpit_runtime::logs::Stream;
    use std::io::Write as _;

    #[test]
    fn the_default_window_is_the_last_lines_unless_a_time_is_given() {
        let since = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60));
        let cases = [
            ((None, None), (None, Some(DEFAULT_TAIL))),
            ((None, Some(5)), (None, Some(5))),
            ((since, None), (since, None)),
            ((since, Some(5)), (since, Some(5))),
            ((None, Some(0)), (None, Some(0))),
        ];
        for ((since, tail), (want_since, want_tail)) in cases {
            assert_eq!(
                window(since, tail),
                Window {
                    since: want_since,
                    tail: want_tail
                },
                "{since:?} {tail:?}"
            );
        }
    }

    fn append(log: &std::path::Path, seconds: u64, text: &str) {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds);
        let mut file = logs::open_for_append(log).unwrap();
        file.write_all(&logs::format_record(time, Stream::Stdout, text.as_bytes()))
            .unwrap();
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn a_whole_biome_is_interleaved_and_its_tail_is_over_all_components() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.log");
        let worker = dir.path().join("worker.log");
        append(&web, 1, "w1");
        append(&worker, 2, "k2");
        append(&web, 3, "w3");
        append(&worker, 4, "k4");
        let sources = Sources {
            biome: name("alice"),
            components: vec![(name("web"), web), (name("worker"), worker)],
            whole_biome: true,
        };
        let shown = |window: Window| {
            let sources = sources.clone();
            async move {
                let mut shown = Vec::new();
                show(sources, window, false, |lines| {
                    shown.extend(
                        lines
                            .iter()
                            .map(|l| format!("{} {}", l.component, l.record.text)),
                    );
                    Ok(())
                })
                .await
                .unwrap();
                shown
            }
        };
        assert_eq!(
            shown(window(None, None)).await,
            ["web w1", "worker k2", "web w3", "worker k4"]
        );
        assert_eq!(
            shown(window(None, Some(3))).await,
            ["worker k2", "web w3", "worker k4"]
        );
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_003);
        assert_eq!(
            shown(window(Some(since), None)).await,
            ["web w3", "worker k4"]
        );
        assert_eq!(shown(window(Some(since), Some(1))).await, ["worker k4"]);
    }

    #[test]
    fn a_cursor_reads_back_as_itself_and_refuses_what_it_is_not() {
        let cursor = Cursor {
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            seen_at_time: 3,
        };
        assert_eq!(cursor.encode(), "1700000000123456.3");
        assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "12", "a.b", "1.-1", "1.2.3"] {
            let error = Cursor::parse(bad).unwrap_err();
            assert_eq!(
                crate::error::kind_of(&error),
                crate::error::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn pages_after_a_cursor_show_each_line_once_even_with_equal_times() {
        let at = |seconds: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        let line = |seconds: u64, text: &str| Line {
            component: name("web"),
            record: Record {
                time: at(seconds),
                stream: Stream::Stdout,
                text: text.to_owned(),
            },
        };
        let texts = |page: &Page| -> Vec<String> {
            page.lines.iter().map(|l| l.record.text.clone()).collect()
        };
        let cursor = |seconds: u64, seen_at_time: usize| Cursor {
            time: at(seconds),
            seen_at_time,
        };
        let now = at(100);
        // (lines read, tail, after) → (shown, next cursor)
        type Case<'a> = (
            Vec<Line>,
            Option<usize>,
            Option<Cursor>,
            Vec<&'a str>,
            Cursor,
        );
        let cases: Vec<Case> = vec![
            (vec![], Some(10), None, vec![], cursor(100, 0)),
            (vec![], None, Some(cursor(5, 1)), vec![], cursor(5, 1)),
            (
                vec![line(1, "a"), line(2, "b"), line(2, "c")],
                Some(1),
                None,
                vec!["c"],
                cursor(2, 2),
            ),
            (
                vec![line(2, "b"), line(2, "c"), line(2, "d"), line(3, "e")],
                None,
                Some(cursor(2, 2)),
                vec!["d", "e"],
                cursor(3, 1),
            ),
            (
                vec![line(2, "b"), line(2, "c"), line(2, "d")],
                None,
                Some(cursor(2, 2)),
                vec!["d"],
                cursor(2, 3),
            ),
            (
                vec![line(1, "old"), line(4, "new")],
                None,
                Some(cursor(2, 0)),
                vec!["new"],
                cursor(4, 1),
            ),
        ];
        for (lines, tail, after, shown, next) in cases {
            let page = select_page(lines, tail, after, now);
            assert_eq!(texts(&page), shown, "{after:?}");
            assert_eq!(page.cursor, next, "{after:?}");
        }
    }

    #[tokio::test]
    async fn a_reader_that_went_away_ends_following_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.log");
        append(&web, 1, "w1");
        let sources = Sources {
            biome: name("alice"),
            components: vec![(name("web"), web)],
            whole_biome: false,
        };
        let result = show(sources, window(None, None), true, |_| {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
    }
}
