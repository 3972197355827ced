//! The log writer (`sandpit log-writer`, hidden): one small process per running component that
//! reads the component's stdout and stderr pipes and appends every line to its log as a
//! timestamped record (see [`crate::logs`]).
//!
//! [`crate::process::spawn_logged`] starts it next to the component, in the component's process
//! group, so it outlives a crash of the daemon exactly as the component does, is adopted with it
//! (a new daemon adopts process groups) and stopped with it. It ignores the polite signals sent
//! to the group and exits when both pipes are closed, so it writes the last words of a component
//! that is being stopped; SIGKILL, after the grace period, ends it with the rest of the group.
//!
//! What the component writes is taken as bytes: a line is cut at each newline; a line longer
//! than [`MAX_LINE`] is cut into several records; a partial line (no newline yet) is written
//! once the component has said nothing more for [`PARTIAL_LINE_WAIT`], or when the pipe closes.
//! A stream closed early (a component that closes its stdout) ends only that stream's reading.
//! A write that fails (a full disk) drops that record and carries on reading, so the component
//! never blocks on a full pipe or dies of a broken one because its log cannot be written.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;

use crate::logs::{self, Stream};

/// The longest line written as one record; longer ones continue in the next record.
pub const MAX_LINE: usize = 16 * 1024;

/// How long a line without its newline waits for the rest before it is written as it is.
pub const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(500);

/// Splits a stream of bytes into lines (without their newlines), cutting lines longer than
/// `max_line` at a character boundary where the bytes are UTF-8.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max_line: max_line.max(4),
        }
    }

    /// The lines that `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        loop {
            match self.pending.iter().position(|b| *b == b'\n') {
                Some(newline) if newline <= self.max_line => {
                    let mut line: Vec<u8> = self.pending.drain(..=newline).collect();
                    line.pop();
                    lines.push(line);
                }
                _ if self.pending.len() > self.max_line => {
                    let cut = char_boundary(&self.pending, self.max_line);
                    lines.push(self.pending.drain(..cut).collect());
                }
                _ => return lines,
            }
        }
    }

    /// Whether a line without its newline is waiting.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The line without its newline, if any: the stream ended or paused mid-line.
    pub fn take_partial(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// Where to cut `bytes` at most `max` bytes in: before a UTF-8 continuation byte never, unless
/// there is no character start within the last three bytes (then the bytes are not UTF-8).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|cut| *cut > 0 && !bytes.get(*cut).copied().is_some_and(is_continuation))
        .unwrap_or(max)
}

/// The log, shared by the two streams: one record per write, the cap checked after each, so
/// a rotation never falls between the writer's own copy and truncation.
#[derive(Debug)]
struct Sink {
    log: File,
    path: PathBuf,
    max_bytes: u64,
}

impl Sink {
    fn write(&mut self, stream: Stream, line: &[u8]) {
        let record = logs::format_record(SystemTime::now(), stream, line);
        // A failed write loses this record only; the component must not wait on its log.
        let _ = self.log.write_all(&record);
        if self.log.metadata().is_ok_and(|m| m.len() > self.max_bytes) {
            let _ = logs::enforce_cap(&self.path, self.max_bytes);
        }
    }
}

/// What the writer is given: the read ends of the component's pipes and its log.
#[derive(Debug)]
pub struct Pipes {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The log, opened for appending.
    pub log: File,
    /// Its path, for rotating it.
    pub path: PathBuf,
    pub max_bytes: u64,
}

/// Copies both pipes into the log until both are closed.
pub async fn run(pipes: Pipes) -> io::Result<()> {
    // Registering a handler replaces the default action (terminate): the group's SIGTERM and
    // SIGINT reach the component, and this process keeps reading its last words.
    let _ignored = [
        tokio::signal::unix::SignalKind::terminate(),
        tokio::signal::unix::SignalKind::interrupt(),
        tokio::signal::unix::SignalKind::hangup(),
    ]
    .map(tokio::signal::unix::signal);
    let stdout = pipe::Receiver::from_owned_fd(pipes.stdout).map_err(|error| {
        io::Error::new(error.kind(), format!("the component's stdout: {error}"))
    })?;
    let stderr = pipe::Receiver::from_owned_fd(pipes.stderr).map_err(|error| {
        io::Error::new(error.kind(), format!("the component's stderr: {error}"))
    })?;
    let sink = Arc::new(Mutex::new(Sink {
        log: pipes.log,
        path: pipes.path,
        max_bytes: pipes.max_bytes,
    }));
    tokio::join!(
        copy(stdout, Stream::Stdout, Arc::clone(&sink)),
        copy(stderr, Stream::Stderr, sink),
    );
    Ok(())
}

async fn copy(mut from: pipe::Receiver, stream: Stream, sink: Arc<Mutex<Sink>>) {
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buffer = vec![0u8; 64 * 1024];
    let write = |line: &[u8]| sink.lock().expect("log sink poisoned").write(stream, line);
    loop {
        let read = if splitter.has_partial() {
            match tokio::time::timeout(PARTIAL_LINE_WAIT, from.read(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => {
                    if let Some(partial) = splitter.take_partial() {
                        write(&partial);
                    }
                    continue;
                }
            }
        } else {
            from.read(&mut buffer).await
        };
        match read {
            Ok(0) => break,
            Ok(count) => {
                for line in splitter.push(&buffer[..count]) {
                    write(&line);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            // A pipe that cannot be read any more is as good as closed.
            Err(_) => break,
        }
    }
    if let Some(partial) = splitter.take_partial() {
        write(&partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{Follower, Record, Window};

    fn check(max_line: usize, chunks: &[&[u8]], expected: &[&[u8]], partial: Option<&[u8]>) {
        let mut splitter = LineSplitter::new(max_line);
        let mut lines = Vec::new();
        for chunk in chunks {
            lines.extend(splitter.push(chunk));
        }
        let expected: Vec<Vec<u8>> = expected.iter().map(|l| l.to_vec()).collect();
        assert_eq!(lines, expected, "{chunks:?}");
        assert_eq!(splitter.take_partial().as_deref(), partial, "{chunks:?}");
    }

    #[test]
    fn output_is_split_into_lines_with_long_ones_cut() {
        check(100, &[b"one\ntwo\n"], &[b"one", b"two"], None);
        check(100, &[b"o", b"ne\ntw", b"o\n"], &[b"one", b"two"], None);
        check(100, &[b"\n\n"], &[b"", b""], None);
        check(100, &[b"prompt: "], &[], Some(b"prompt: "));
        check(100, &[b"a\r\nb"], &[b"a\r"], Some(b"b"));
        check(100, &[b"bin\xff\x00\n"], &[b"bin\xff\x00"], None);
        check(4, &[b"abcdefghij\n"], &[b"abcd", b"efgh", b"ij"], None);
        check(4, &[b"abcd\n"], &[b"abcd"], None);
        check(4, &[b"abcde"], &[b"abcd"], Some(b"e"));
        // `é` is two bytes: a cut never splits it.
        check(
            5,
            &["abcdé fin\n".as_bytes()],
            &[b"abcd", "é fi".as_bytes(), b"n"],
            None,
        );
        // Not UTF-8 at all: cut where the limit says.
        check(
            4,
            &[b"\x80\x80\x80\x80\x80\x80\n"],
            &[b"\x80\x80\x80\x80", b"\x80\x80"],
            None,
        );
    }

    fn records(log: &std::path::Path) -> Vec<Record> {
        Follower::at_end(log).backlog(Window::default()).unwrap()
    }

    /// The real writer on real pipes: what a component writes on each stream, partial and
    /// binary lines included, ends up in the log as records of that stream.
    #[tokio::test]
    async fn both_pipes_are_copied_as_records_until_both_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let (stdout_read, stdout_write) = nix::unistd::pipe().unwrap();
        let (stderr_read, stderr_write) = nix::unistd::pipe().unwrap();
        let writer = tokio::spawn(run(Pipes {
            stdout: stdout_read,
            stderr: stderr_read,
            log: logs::open_for_append(&path).unwrap(),
            path: path.clone(),
            max_bytes: 1 << 20,
        }));
        let mut out = File::from(stdout_write);
        let mut err = File::from(stderr_write);
        out.write_all(b"hello\n").unwrap();
        err.write_all(b"oops\n").unwrap();
        // Closing stdout early leaves stderr working.
        out.write_all(b"bin\xff\x00 no newline").unwrap();
        drop(out);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while records(&path).len() < 3 {
            assert!(std::time::Instant::now() < deadline, "{:?}", records(&path));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        err.write_all(b"still here\nand a partial").unwrap();
        drop(err);
        writer.await.unwrap().unwrap();
        let mut written: Vec<(Stream, String)> = records(&path)
            .into_iter()
            .map(|r| (r.stream, r.text))
            .collect();
        // The two streams are read concurrently; within each, order is kept.
        let stdout: Vec<&String> = written
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(stdout, ["hello", "bin\u{fffd}\0 no newline"]);
        written.retain(|(s, _)| *s == Stream::Stderr);
        let stderr: Vec<&str> = written.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(stderr, ["oops", "still here", "and a partial"]);
    }

    #[tokio::test]
    async fn a_partial_line_is_written_when_the_component_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let (stdout_read, stdout_write) = nix::unistd::pipe().unwrap();
        let (stderr_read, stderr_write) = nix::unistd::pipe().unwrap();
        let writer = tokio::spawn(run(Pipes {
            stdout: stdout_read,
            stderr: stderr_read,
            log: logs::open_for_append(&path).unwrap(),
            path: path.clone(),
            max_bytes: 1 << 20,
        }));
        let mut out = File::from(stdout_write);
        out.write_all(b"password: ").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while records(&path).is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(records(&path)[0].text, "password: ");
        drop(out);
        drop(stderr_write);
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_writer_keeps_its_log_under_the_cap_without_losing_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let (stdout_read, stdout_write) = nix::unistd::pipe().unwrap();
        let (stderr_read, stderr_write) = nix::unistd::pipe().unwrap();
        let writer = tokio::spawn(run(Pipes {
            stdout: stdout_read,
            stderr: stderr_read,
            log: logs::open_for_append(&path).unwrap(),
            path: path.clone(),
            max_bytes: 4000,
        }));
        drop(stderr_write);
        let mut out = File::from(stdout_write);
        // 100 records of about 40 bytes each: the log rotates once.
        for i in 0..100 {
            writeln!(out, "line {i:03}").unwrap();
        }
        drop(out);
        writer.await.unwrap().unwrap();
        let current = std::fs::metadata(&path).unwrap().len();
        let rotated = std::fs::metadata(logs::rotated_path(&path)).unwrap().len();
        assert!(current <= 4000 && rotated <= 4000, "{current} {rotated}");
        let texts: Vec<String> = records(&path).into_iter().map(|r| r.text).collect();
        let expected: Vec<String> = (100 - texts.len()..100)
            .map(|i| format!("line {i:03}"))
            .collect();
        assert_eq!(texts, expected, "the newest records, none missing");
        assert!(texts.len() > 90, "{}", texts.len());
    }
}
