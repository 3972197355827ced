//! Component logs: the record format, reading records back (tails, time windows, several
//! components interleaved in time), following a log as it grows, and size caps.
//!
//! A component's output reaches its log through its log writer ([`crate::log_writer`]), which
//! appends one record per line: `<time> <stream> <text>\n`, the time in RFC 3339 (UTC,
//! microseconds), the stream `stdout` or `stderr`, the text the line's bytes as written (without
//! its newline). The supervisor appends its own marks (starts, restarts, stops) as stream
//! `sandpit`. Each record is one `write` on a file opened with `O_APPEND`, so records of the
//! writer and the supervisor never tear each other. A line that is not a record (a log written
//! before records existed, a writer's own panic message, an instance's log) is kept as stream
//! `unknown`, with the time of the record before it.
//!
//! The cap is kept the way logrotate's `copytruncate` does: when a file outgrows the cap its
//! newest bytes (from a line start) move to `<file>.1` and the file is truncated in place.
//! Writers open with `O_APPEND`, so they carry on at the new end. The log writer rotates its own
//! log between two of its writes, so nothing it writes falls between the copy and the truncation.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// Where a line of a log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A mark the supervisor wrote (the component started, restarted, stopped).
    Sandpit,
    /// A line that is not a record: written before logs had records, or by something else.
    Unknown,
}

impl Stream {
    /// The word in a record, and in `logs --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Sandpit => "sandpit",
            Stream::Unknown => "unknown",
        }
    }

    fn parse(word: &[u8]) -> Option<Stream> {
        match word {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            b"sandpit" => Some(Stream::Sandpit),
            _ => None,
        }
    }
}

/// One line of a log, with when it was written and by which stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: SystemTime,
    pub stream: Stream,
    /// The line as written; invalid UTF-8 is replaced (logs are for humans).
    pub text: String,
}

impl Record {
    /// How a person reads it: a mark as `sandpit: …`, output as the component wrote it.
    pub fn display_text(&self) -> Cow<'_, str> {
        match self.stream {
            Stream::Sandpit => Cow::Owned(format!("sandpit: {}", self.text)),
            _ => Cow::Borrowed(&self.text),
        }
    }
}

/// `2024-05-01T12:00:00.123456Z`: the time of a record, and of `logs --json`'s `ts`.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// One record, newline included, ready for a single `write`. A newline in `text` would end the
/// record early, so callers hand over single lines (the log writer splits at newlines).
pub fn format_record(time: SystemTime, stream: Stream, text: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(text.len() + 40);
    record.extend_from_slice(format_time(time).as_bytes());
    record.push(b' ');
    record.extend_from_slice(stream.as_str().as_bytes());
    record.push(b' ');
    record.extend_from_slice(text);
    record.push(b'\n');
    record
}

/// Parses one line (without its newline) as a record; `None` when it is not one.
pub fn parse_record(line: &[u8]) -> Option<Record> {
    let (time, rest) = split_word(line)?;
    let (stream, text) = split_word(rest).unwrap_or((rest, b""));
    let stream = Stream::parse(stream)?;
    // Timestamps are ASCII; anything else is not a record.
    let time = humantime::parse_rfc3339(std::str::from_utf8(time).ok()?).ok()?;
    Some(Record {
        time,
        stream,
        text: String::from_utf8_lossy(text).into_owned(),
    })
}

fn split_word(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().position(|b| *b == b' ')?;
    Some((&bytes[..space], &bytes[space + 1..]))
}

/// The records of a run of complete lines. A line that is not a record becomes one of stream
/// `unknown` with the time of the record before it (or, before the first record, the first
/// record's time; `fallback` when there is none at all).
pub fn parse_records(bytes: &[u8], fallback: SystemTime) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut first_unknown_without_time = None;
    let mut last_time = None;
    for line in bytes.split(|b| *b == b'\n') {
        match parse_record(line) {
            Some(record) => {
                if let Some(start) = first_unknown_without_time.take() {
                    for earlier in &mut records[start..] {
                        earlier.time = record.time;
                    }
                }
                last_time = Some(record.time);
                records.push(record);
            }
            None => {
                if last_time.is_none() && first_unknown_without_time.is_none() {
                    first_unknown_without_time = Some(records.len());
                }
                records.push(Record {
                    time: last_time.unwrap_or(fallback),
                    stream: Stream::Unknown,
                    text: String::from_utf8_lossy(line).into_owned(),
                });
            }
        }
    }
    // `split` yields an empty piece after the final newline; it is no line.
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        records.pop();
    }
    records
}

/// Appends one record to a log (creating it owner-only): the supervisor's marks.
pub fn append(log: &Path, stream: Stream, text: &str) -> io::Result<()> {
    let mut file = open_for_append(log)?;
    // One line per record: a newline in a mark would start something that is not a record.
    let text = text.replace('\n', " ");
    file.write_all(&format_record(SystemTime::now(), stream, text.as_bytes()))
}

/// Opens a log for appending, creating it (and its directory) owner-only: a process may print
/// the secrets in its environment.
pub fn open_for_append(log: &Path) -> io::Result<File> {
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::owner_only::FILE_MODE)
        .open(log)?;
    crate::owner_only::repair(log, crate::owner_only::FILE_MODE)?;
    Ok(file)
}

/// The previous generation of a log file.
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates `log` if it is larger than `max_bytes`. Returns whether it rotated. The log writer
/// and the daemon may both try at once: an exclusive lock on the file makes one of them wait
/// and then find nothing left to do.
pub fn enforce_cap(log: &Path, max_bytes: u64) -> io::Result<bool> {
    let size = match fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    if size <= max_bytes {
        return Ok(false);
    }
    let file = OpenOptions::new().read(true).write(true).open(log)?;
    let mut file =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))?;
    let size = file.metadata()?.len();
    if size <= max_bytes {
        return Ok(false);
    }
    // Keep only the newest `max_bytes` in the rotated file so the pair never exceeds twice the
    // cap, starting at a line so the rotated generation begins with a whole record.
    let start = line_start_at_or_after(&mut file, size - max_bytes, size)?;
    file.seek(SeekFrom::Start(start))?;
    let mut rotated = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(crate::owner_only::FILE_MODE)
        .open(rotated_path(log))?;
    io::copy(&mut (&*file).take(size - start), &mut rotated)?;
    file.set_len(0)?;
    Ok(true)
}

/// The first offset at or after `from` where a line begins; `from` itself when no line begins
/// after it within 64 KiB (a single huge line is cut rather than dropped).
fn line_start_at_or_after(file: &mut File, from: u64, size: u64) -> io::Result<u64> {
    if from == 0 {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(from - 1))?;
    let mut window = Vec::new();
    file.take(64 * 1024).read_to_end(&mut window)?;
    Ok(match window.iter().position(|b| *b == b'\n') {
        Some(newline) if from + (newline as u64) < size => from + newline as u64,
        _ => from,
    })
}

/// Which records of a log to read: those at or after `since`, of those the last `tail`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<SystemTime>,
    pub tail: Option<usize>,
}

impl Window {
    /// Applies the window to records in time order.
    pub fn select(&self, mut records: Vec<Record>) -> Vec<Record> {
        if let Some(since) = self.since {
            records.retain(|r| r.time >= since);
        }
        if let Some(tail) = self.tail {
            if records.len() > tail {
                records.drain(..records.len() - tail);
            }
        }
        records
    }
}

/// The last `lines` lines of a log as a person reads them (marks as `sandpit: …`), reading the
/// rotated generation too when the current one is short: what an error message quotes.
pub fn tail(log: &Path, lines: usize) -> String {
    let window = Window {
        since: None,
        tail: Some(lines),
    };
    Follower::at_end(log)
        .backlog(window)
        .unwrap_or_default()
        .iter()
        .map(|r| r.display_text().into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a log from a point on, as it grows: across copy-truncate rotations (what was written
/// after the last read and before the cut is read back from `<log>.1`) and re-creation (a biome
/// brought down and up again). A line still being written is held back until its newline.
///
/// A rotation shows as a file shorter than what was read, or, when it has grown past that point
/// again before the next look, as different bytes before that point than were read there.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// How far the current file has been read.
    position: u64,
    inode: Option<u64>,
    /// The time of the last record returned, to tell what a rotation moved away unread.
    last_time: Option<SystemTime>,
    /// What counts as unread before any record was returned.
    floor: SystemTime,
    /// Bytes after the last newline read.
    partial: Vec<u8>,
    /// The last bytes read before `position` (at most [`SEEN_END`]), to recognise the file.
    seen_end: Vec<u8>,
}

/// How many of the bytes last read a follower keeps to tell that its file was rotated.
const SEEN_END: usize = 64;

impl Follower {
    /// Follows the log from its current end.
    pub fn at_end(path: &Path) -> Follower {
        let meta = fs::metadata(path).ok();
        let position = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        Follower {
            path: path.to_path_buf(),
            position,
            inode: meta.map(|m| m.ino()),
            last_time: None,
            floor: SystemTime::now(),
            partial: Vec::new(),
            seen_end: bytes_before(path, position).unwrap_or_default(),
        }
    }

    /// Follows the log from its first byte (one that appeared after following began).
    pub fn from_start(path: &Path) -> Follower {
        let mut follower = Follower::at_end(path);
        follower.position = 0;
        follower.floor = UNIX_EPOCH;
        follower.seen_end.clear();
        follower
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records before the point this follower starts from (the rotated generation first)
    /// within `window`. Without `since` only the end of each file is read.
    pub fn backlog(&mut self, window: Window) -> io::Result<Vec<Record>> {
        let current = read_range(&self.path, self.position, window)?;
        let mut bytes = match window.tail {
            Some(tail) if window.since.is_none() && count_lines(&current) >= tail => Vec::new(),
            _ => {
                let rotated = rotated_path(&self.path);
                let size = fs::metadata(&rotated).map(|m| m.len()).unwrap_or(0);
                read_range(&rotated, size, window)?
            }
        };
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&current);
        // A line still being written at the end of the current file is finished by `poll`.
        let complete = bytes.len() - trailing_partial_len(&bytes);
        self.partial = bytes[complete..].to_vec();
        let records = window.select(parse_records(&bytes[..complete], self.fallback_time()));
        if let Some(last) = records.last() {
            self.last_time = Some(last.time);
        }
        Ok(records)
    }

    /// The records appended since the last poll.
    pub fn poll(&mut self) -> io::Result<Vec<Record>> {
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut records = Vec::new();
        let rotated = meta.len() < self.position
            || (self.position > 0
                && bytes_before(&self.path, self.position).ok().as_ref() != Some(&self.seen_end));
        if self.inode != Some(meta.ino()) {
            // A new file under the same name: all of it is new.
            self.inode = Some(meta.ino());
            self.position = 0;
            self.partial.clear();
            self.seen_end.clear();
        } else if rotated {
            // Rotated: what came after our position went to `.1` with the rest of the file.
            let seen = self.last_time.unwrap_or(self.floor);
            let rotated = fs::read(rotated_path(&self.path)).unwrap_or_default();
            let complete = rotated.len() - trailing_partial_len(&rotated);
            records.extend(
                parse_records(&rotated[..complete], seen)
                    .into_iter()
                    .filter(|r| r.time > seen),
            );
            self.position = 0;
            self.partial.clear();
            self.seen_end.clear();
        }
        if meta.len() > self.position {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(self.position))?;
            let mut bytes = std::mem::take(&mut self.partial);
            let held = bytes.len();
            let read = file
                .take(meta.len() - self.position)
                .read_to_end(&mut bytes)?;
            self.position += read as u64;
            self.seen_end.extend_from_slice(&bytes[held..]);
            let excess = self.seen_end.len().saturating_sub(SEEN_END);
            self.seen_end.drain(..excess);
            let complete = bytes.len() - trailing_partial_len(&bytes);
            self.partial = bytes.split_off(complete);
            records.extend(parse_records(&bytes, self.fallback_time()));
        }
        if let Some(last) = records.last() {
            self.last_time = Some(last.time);
        }
        Ok(records)
    }

    fn fallback_time(&self) -> SystemTime {
        self.last_time
            .or_else(|| fs::metadata(&self.path).and_then(|m| m.modified()).ok())
            .unwrap_or(UNIX_EPOCH)
    }
}

/// The bytes of `path` just before `position` (at most [`SEEN_END`]).
fn bytes_before(path: &Path, position: u64) -> io::Result<Vec<u8>> {
    let start = position.saturating_sub(SEEN_END as u64);
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(SEEN_END);
    file.take(position - start).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

fn trailing_partial_len(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|b| **b != b'\n').count()
}

/// The bytes of `path` before `end`: all of them with `since`, else (with `tail`) just enough
/// complete lines from the end.
fn read_range(path: &Path, end: u64, window: Window) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let end = end.min(file.metadata()?.len());
    let wanted = match window.tail {
        Some(tail) if window.since.is_none() => tail,
        _ => {
            let mut bytes = Vec::new();
            file.take(end).read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    };
    // Read backwards in chunks until the part read holds `wanted` complete lines.
    const CHUNK: u64 = 64 * 1024;
    let mut start = end;
    let mut bytes: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        file.seek(SeekFrom::Start(from))?;
        let mut chunk = Vec::with_capacity((start - from) as usize);
        (&mut file).take(start - from).read_to_end(&mut chunk)?;
        chunk.extend_from_slice(&bytes);
        bytes = chunk;
        start = from;
        // One more newline than lines wanted: the line before them must be complete too.
        if count_lines(&bytes) > wanted {
            break;
        }
    }
    if start > 0 {
        // Drop the (partial) line the last chunk began in.
        let first_newline = bytes.iter().position(|b| *b == b'\n').unwrap_or(0);
        bytes.drain(..=first_newline);
    }
    Ok(bytes)
}

/// Interleaves several logs in time. The records of each source keep their order (a source is
/// in time order, give or take a mark written by another process in the same instant); on
/// equal times the earlier source goes first.
pub fn merge<K: Clone>(sources: Vec<(K, Vec<Record>)>) -> Vec<(K, Record)> {
    let total = sources.iter().map(|(_, records)| records.len()).sum();
    let mut merged = Vec::with_capacity(total);
    let mut heads: Vec<(K, std::iter::Peekable<std::vec::IntoIter<Record>>)> = sources
        .into_iter()
        .map(|(key, records)| (key, records.into_iter().peekable()))
        .collect();
    loop {
        let next = heads
            .iter_mut()
            .enumerate()
            .filter_map(|(index, (_, records))| Some((records.peek()?.time, index)))
            .min();
        let Some((_, index)) = next else {
            return merged;
        };
        let (key, records) = &mut heads[index];
        merged.push((key.clone(), records.next().expect("peeked")));
    }
}

/// What `--since` says: a duration back from `now` (`10m`, `1h 30m`) or an RFC 3339 time
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`).
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now
            .checked_sub(ago)
            .filter(|since| *since >= UNIX_EPOCH)
            .unwrap_or(UNIX_EPOCH));
    }
    let looks_like_a_time = text.len() >= 10 && text.as_bytes()[4] == b'-';
    if !looks_like_a_time {
        return Err(format!(
            "`{text}` is neither a duration nor a time\nhint: say how long ago (`10m`, `2h`, `1h 30m`) or when (`2024-05-01T12:00:00Z`)"
        ));
    }
    parse_rfc3339_with_offset(text).ok_or_else(|| {
        format!(
            "`{text}` is not an RFC 3339 time\nhint: write it like `2024-05-01T12:00:00Z` (UTC) or `2024-05-01T14:00:00+02:00`"
        )
    })
}

/// RFC 3339 with any offset (humantime reads only UTC ones).
fn parse_rfc3339_with_offset(text: &str) -> Option<SystemTime> {
    let upper = text.to_ascii_uppercase();
    if let Some(utc) = upper.strip_suffix('Z') {
        return humantime::parse_rfc3339(&format!("{utc}Z")).ok();
    }
    // `±HH:MM` at the end, after the seconds.
    let split = upper.len().checked_sub(6)?;
    let (local, offset) = (upper.get(..split)?, upper.get(split..)?);
    let sign: i64 = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u64, u64) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let as_if_utc = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let offset = Duration::from_secs(hours * 3600 + minutes * 60);
    // Local time = UTC + offset, so UTC = local - offset.
    if sign > 0 {
        as_if_utc.checked_sub(offset)
    } else {
        as_if_utc.checked_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn record(time: &str, stream: Stream, text: &str) -> Record {
        Record {
            time: at(time),
            stream,
            text: text.to_owned(),
        }
    }

    #[test]
    fn records_are_formatted_and_parsed_back() {
        let time = at("2024-05-01T12:00:00.123456Z");
        let bytes = format_record(time, Stream::Stderr, b"boom: it broke");
        assert_eq!(
            bytes,
            b"2024-05-01T12:00:00.123456Z stderr boom: it broke\n"
        );
        type Expected<'a> = Option<(&'a str, Stream, &'a str)>;
        let cases: &[(&[u8], Expected)] = &[
            (
                b"2024-05-01T12:00:00.123456Z stdout hello world",
                Some(("2024-05-01T12:00:00.123456Z", Stream::Stdout, "hello world")),
            ),
            (
                b"2024-05-01T12:00:00Z sandpit restarting web (killed by SIGKILL) in 1s",
                Some((
                    "2024-05-01T12:00:00Z",
                    Stream::Sandpit,
                    "restarting web (killed by SIGKILL) in 1s",
                )),
            ),
            // An empty line, with and without the separating space.
            (
                b"2024-05-01T12:00:00Z stdout ",
                Some(("2024-05-01T12:00:00Z", Stream::Stdout, "")),
            ),
            (
                b"2024-05-01T12:00:00Z stdout",
                Some(("2024-05-01T12:00:00Z", Stream::Stdout, "")),
            ),
            // Spaces inside the text are the text's.
            (
                b"2024-05-01T12:00:00Z stdout   indented  ",
                Some(("2024-05-01T12:00:00Z", Stream::Stdout, "  indented  ")),
            ),
            // Bytes that are not UTF-8 are replaced, not refused.
            (
                b"2024-05-01T12:00:00Z stdout bin\xff\x00end",
                Some(("2024-05-01T12:00:00Z", Stream::Stdout, "bin\u{fffd}\0end")),
            ),
            (b"plain output from an older sandpit", None),
            (b"2024-05-01T12:00:00Z chatter hello", None),
            (b"2024-13-01T12:00:00Z stdout bad month", None),
            (b"", None),
            (b"\xff\xfe stdout x", None),
        ];
        for (line, expected) in cases {
            let parsed = parse_record(line);
            let expected = expected.map(|(time, stream, text)| record(time, stream, text));
            assert_eq!(parsed, expected, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn lines_that_are_not_records_take_the_time_of_their_neighbours() {
        let fallback = at("2000-01-01T00:00:00Z");
        let check = |bytes: &[u8], expected: &[(&str, Stream, &str)]| {
            let expected: Vec<Record> = expected
                .iter()
                .map(|(time, stream, text)| record(time, *stream, text))
                .collect();
            assert_eq!(
                parse_records(bytes, fallback),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        check(b"", &[]);
        check(b"\n", &[("2000-01-01T00:00:00Z", Stream::Unknown, "")]);
        check(
            b"old line\n2024-05-01T12:00:00Z stdout new\npanic message\n2024-05-01T12:00:01Z stderr late\n",
            &[
                ("2024-05-01T12:00:00Z", Stream::Unknown, "old line"),
                ("2024-05-01T12:00:00Z", Stream::Stdout, "new"),
                ("2024-05-01T12:00:00Z", Stream::Unknown, "panic message"),
                ("2024-05-01T12:00:01Z", Stream::Stderr, "late"),
            ],
        );
        check(
            b"only\nold lines\n",
            &[
                ("2000-01-01T00:00:00Z", Stream::Unknown, "only"),
                ("2000-01-01T00:00:00Z", Stream::Unknown, "old lines"),
            ],
        );
    }

    #[test]
    fn merging_interleaves_in_time_and_keeps_each_sources_order() {
        let check = |sources: Vec<(&str, Vec<Record>)>, expected: &[(&str, &str)]| {
            let merged: Vec<(&str, String)> = merge(sources)
                .into_iter()
                .map(|(key, record)| (key, record.text))
                .collect();
            let expected: Vec<(&str, String)> = expected
                .iter()
                .map(|(key, text)| (*key, text.to_string()))
                .collect();
            assert_eq!(merged, expected);
        };
        let out = Stream::Stdout;
        check(vec![], &[]);
        check(vec![("a", vec![]), ("b", vec![])], &[]);
        check(
            vec![
                (
                    "web",
                    vec![
                        record("2024-05-01T12:00:01Z", out, "w1"),
                        record("2024-05-01T12:00:03Z", out, "w3"),
                    ],
                ),
                (
                    "worker",
                    vec![
                        record("2024-05-01T12:00:02Z", out, "k2"),
                        record("2024-05-01T12:00:04Z", out, "k4"),
                    ],
                ),
            ],
            &[
                ("web", "w1"),
                ("worker", "k2"),
                ("web", "w3"),
                ("worker", "k4"),
            ],
        );
        // Equal times: the earlier source first, each source in its own order.
        check(
            vec![
                (
                    "a",
                    vec![
                        record("2024-05-01T12:00:00Z", out, "a1"),
                        record("2024-05-01T12:00:00Z", out, "a2"),
                    ],
                ),
                ("b", vec![record("2024-05-01T12:00:00Z", out, "b1")]),
            ],
            &[("a", "a1"), ("a", "a2"), ("b", "b1")],
        );
        // A source slightly out of order (a mark written in the same instant by another
        // process) keeps its order rather than being sorted apart.
        check(
            vec![
                (
                    "a",
                    vec![
                        record("2024-05-01T12:00:05Z", out, "a5"),
                        record("2024-05-01T12:00:04Z", out, "a4"),
                    ],
                ),
                ("b", vec![record("2024-05-01T12:00:06Z", out, "b6")]),
            ],
            &[("a", "a5"), ("a", "a4"), ("b", "b6")],
        );
    }

    #[test]
    fn since_is_a_duration_back_from_now_or_an_rfc3339_time() {
        let now = at("2024-05-01T12:00:00Z");
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("10m", Ok("2024-05-01T11:50:00Z")),
            ("1h 30m", Ok("2024-05-01T10:30:00Z")),
            ("90s", Ok("2024-05-01T11:58:30Z")),
            ("0s", Ok("2024-05-01T12:00:00Z")),
            ("2024-05-01T11:00:00Z", Ok("2024-05-01T11:00:00Z")),
            ("2024-05-01T11:00:00.25Z", Ok("2024-05-01T11:00:00.25Z")),
            ("2024-05-01t11:00:00z", Ok("2024-05-01T11:00:00Z")),
            ("2024-05-01T13:30:00+02:00", Ok("2024-05-01T11:30:00Z")),
            ("2024-05-01T13:30:00.5+02:00", Ok("2024-05-01T11:30:00.5Z")),
            ("2024-05-01T06:00:00-05:00", Ok("2024-05-01T11:00:00Z")),
            ("2024-05-01T11:00:00+00:00", Ok("2024-05-01T11:00:00Z")),
            ("yesterday", Err("neither a duration nor a time")),
            ("10 parsecs", Err("neither a duration nor a time")),
            ("", Err("neither a duration nor a time")),
            ("2024-05-01T11:00:00", Err("not an RFC 3339 time")),
            ("2024-05-01", Err("not an RFC 3339 time")),
            ("2024-05-01T11:00:00+25:00", Err("not an RFC 3339 time")),
            ("2024-02-30T11:00:00Z", Err("not an RFC 3339 time")),
        ];
        for (text, expected) in cases {
            match (parse_since(text, now), expected) {
                (Ok(time), Ok(expected)) => assert_eq!(time, at(expected), "{text}"),
                (Err(error), Err(expected)) => {
                    assert!(error.contains(expected), "{text}: {error}");
                    assert!(error.contains("\nhint: "), "{text}: {error}");
                }
                (got, _) => panic!("{text}: {got:?}, expected {expected:?}"),
            }
        }
        // Far back is the beginning of time, not an error.
        assert_eq!(
            parse_since("1000000years", now).unwrap(),
            UNIX_EPOCH,
            "clamped"
        );
    }

    #[test]
    fn a_window_selects_since_then_the_last_lines() {
        let records = vec![
            record("2024-05-01T12:00:01Z", Stream::Stdout, "1"),
            record("2024-05-01T12:00:02Z", Stream::Stdout, "2"),
            record("2024-05-01T12:00:03Z", Stream::Stdout, "3"),
        ];
        let texts = |window: Window| -> Vec<String> {
            window
                .select(records.clone())
                .into_iter()
                .map(|r| r.text)
                .collect()
        };
        assert_eq!(texts(Window::default()), ["1", "2", "3"]);
        let since = Some(at("2024-05-01T12:00:02Z"));
        assert_eq!(texts(Window { since, tail: None }), ["2", "3"]);
        assert_eq!(
            texts(Window {
                since,
                tail: Some(1)
            }),
            ["3"]
        );
        assert_eq!(
            texts(Window {
                since: None,
                tail: Some(0)
            }),
            Vec::<String>::new()
        );
    }

    fn write_records(log: &Path, lines: &[(&str, Stream, &str)]) {
        let mut file = open_for_append(log).unwrap();
        for (time, stream, text) in lines {
            file.write_all(&format_record(at(time), *stream, text.as_bytes()))
                .unwrap();
        }
    }

    #[test]
    fn cap_rotates_from_a_line_start_and_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        let mut writer = open_for_append(&log).unwrap();
        for i in 0..100 {
            writeln!(writer, "line {i:03}").unwrap();
        }
        assert!(!enforce_cap(&log, 10_000).unwrap());
        // 95 bytes from the end fall inside a line: the rotated file starts at the next one.
        assert!(enforce_cap(&log, 95).unwrap());
        assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        let rotated = fs::read_to_string(rotated_path(&log)).unwrap();
        assert!(rotated.starts_with("line 090\n"), "{rotated}");
        assert!(rotated.ends_with("line 099\n"), "{rotated}");
        // The writer keeps appending at the (new) end of the truncated file.
        writeln!(writer, "after rotation").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "after rotation\n");
        let tail = tail(&log, 3);
        assert_eq!(tail, "line 098\nline 099\nafter rotation");
        assert!(!enforce_cap(&dir.path().join("missing.log"), 1).unwrap());
    }

    #[test]
    fn tail_of_a_missing_log_is_empty() {
        assert_eq!(tail(Path::new("/nonexistent/sandpit.log"), 5), "");
    }

    #[test]
    fn tails_read_both_generations_and_show_marks_as_sandpit_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web.log");
        write_records(
            &rotated_path(&log),
            &[
                ("2024-05-01T12:00:00Z", Stream::Sandpit, "starting web"),
                ("2024-05-01T12:00:01Z", Stream::Stdout, "one"),
            ],
        );
        write_records(
            &log,
            &[
                ("2024-05-01T12:00:02Z", Stream::Stderr, "two"),
                ("2024-05-01T12:00:03Z", Stream::Stdout, "three"),
            ],
        );
        assert_eq!(tail(&log, 2), "two\nthree");
        assert_eq!(tail(&log, 10), "sandpit: starting web\none\ntwo\nthree");
        let mut follower = Follower::at_end(&log);
        let since = follower
            .backlog(Window {
                since: Some(at("2024-05-01T12:00:01Z")),
                tail: None,
            })
            .unwrap();
        let texts: Vec<&str> = since.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
    }

    #[test]
    fn a_long_tail_is_read_backwards_across_many_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("big.log");
        let mut file = open_for_append(&log).unwrap();
        let time = at("2024-05-01T12:00:00Z");
        for i in 0..20_000 {
            file.write_all(&format_record(
                time,
                Stream::Stdout,
                format!("{i:05}").as_bytes(),
            ))
            .unwrap();
        }
        let records = Follower::at_end(&log)
            .backlog(Window {
                since: None,
                tail: Some(5000),
            })
            .unwrap();
        assert_eq!(records.len(), 5000);
        assert_eq!(records[0].text, "15000");
        assert_eq!(records[4999].text, "19999");
    }

    #[test]
    fn a_follower_sees_appends_partial_lines_rotations_and_recreation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web.log");
        write_records(&log, &[("2024-05-01T12:00:00Z", Stream::Stdout, "before")]);
        let mut follower = Follower::at_end(&log);
        assert_eq!(follower.poll().unwrap(), vec![]);
        write_records(&log, &[("2024-05-01T12:00:01Z", Stream::Stdout, "first")]);
        let texts =
            |records: Vec<Record>| -> Vec<String> { records.into_iter().map(|r| r.text).collect() };
        assert_eq!(texts(follower.poll().unwrap()), ["first"]);

        // Half a record waits for its newline.
        let mut file = open_for_append(&log).unwrap();
        file.write_all(b"2024-05-01T12:00:02Z stdout sec").unwrap();
        assert_eq!(texts(follower.poll().unwrap()), Vec::<String>::new());
        file.write_all(b"ond\n").unwrap();
        assert_eq!(texts(follower.poll().unwrap()), ["second"]);

        // Written, then rotated away before the next poll: read back from `.1`.
        write_records(&log, &[("2024-05-01T12:00:03Z", Stream::Stderr, "third")]);
        assert!(enforce_cap(&log, 60).unwrap());
        write_records(&log, &[("2024-05-01T12:00:04Z", Stream::Stdout, "fourth")]);
        assert_eq!(texts(follower.poll().unwrap()), ["third", "fourth"]);

        // Rotated and grown past the point read before the next poll: recognised all the same.
        for i in 0..4 {
            write_records(
                &log,
                &[(
                    "2024-05-01T12:00:04Z",
                    Stream::Stdout,
                    &format!("filler {i}"),
                )],
            );
        }
        assert_eq!(follower.poll().unwrap().len(), 4);
        write_records(&log, &[("2024-05-01T12:00:04.5Z", Stream::Stdout, "fifth")]);
        assert!(enforce_cap(&log, 60).unwrap());
        for text in [
            "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth",
        ] {
            write_records(&log, &[("2024-05-01T12:00:05Z", Stream::Stdout, text)]);
        }
        assert_eq!(
            texts(follower.poll().unwrap()),
            ["fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth"]
        );

        // The biome went down and came up again: a new file under the same name (`file` keeps
        // the old inode alive, so the new file cannot reuse its number).
        fs::remove_file(&log).unwrap();
        assert_eq!(texts(follower.poll().unwrap()), Vec::<String>::new());
        write_records(
            &log,
            &[("2024-05-01T12:00:06Z", Stream::Sandpit, "starting web")],
        );
        assert_eq!(texts(follower.poll().unwrap()), ["starting web"]);

        // A log that appears later is followed from its start.
        let late = dir.path().join("late.log");
        let mut from_start = Follower::from_start(&late);
        assert_eq!(texts(from_start.poll().unwrap()), Vec::<String>::new());
        write_records(&late, &[("2024-05-01T12:00:07Z", Stream::Stdout, "hello")]);
        assert_eq!(texts(from_start.poll().unwrap()), ["hello"]);
    }

    #[test]
    fn marks_are_single_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/web.log");
        append(&log, Stream::Sandpit, "stopping web\nnow").unwrap();
        let records = Follower::from_start(&log).poll().unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].stream, Stream::Sandpit);
        assert_eq!(records[0].text, "stopping web now");
        assert_eq!(records[0].display_text(), "sandpit: stopping web now");
    }
}
