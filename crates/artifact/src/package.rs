//! Deterministic packaging: a directory tree becomes a zip whose bytes depend only on the tree's
//! content, so the same commit gives the same digest on any machine.
//!
//! What is fixed: entry order (byte order of the `/`-separated path), timestamps (1980-01-01
//! 00:00:00), permissions (0o644, or 0o755 when any exec bit is set; 0o755 for directories),
//! compression (raw deflate by zlib-rs at level 6, each file its own stream; a file whose first
//! 256 KiB deflate saves less than a fifth of is stored as it is, [`worth_deflating`]), no extra
//! fields beyond zip64 ones where sizes need them, no comments. Directories are stored as entries so
//! empty directories survive the round trip. Symlinks are stored only when they resolve inside
//! the tree; special files are refused.
//!
//! How: the walk lists and checks everything first (nothing is written for a tree that is
//! refused); then files are deflated on every core while the calling thread writes the finished
//! entries strictly in archive order, hashing the bytes as they go out. Each entry is compressed
//! on its own, so the bytes do not depend on how many workers there are or which finishes first.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress, Status};
use sandpit_domain::{ByteSize, Digest};
use sha2::{Digest as _, Sha256};

use crate::confinement::resolve_link;
use crate::ordered_pipeline::run_in_order;
use crate::zip_records::{central_directory_and_end, EntryRecord, Method, MAX_NAME_BYTES};

/// The deflate level every artifact is written with. Changing it (or the deflate implementation)
/// changes every digest, so it is part of the packaging format (see
/// `sandpit_build::plan::PACKAGING_FORMAT`).
pub const DEFLATE_LEVEL: u32 = 6;

/// Compressed bytes held in memory by all entries waiting to be written, at most (roughly):
/// an entry whose compressed form outgrows its share spills to an unnamed file beside the output.
const IN_FLIGHT_BUDGET: u64 = 64 * 1024 * 1024;
/// Entries claimed but not yet written, per worker: enough to keep every core busy while a large
/// entry is being written.
const WINDOW_PER_WORKER: usize = 4;
/// Input read per deflate call; reads fill it completely, so the calls depend on the content
/// alone.
const READ_CHUNK: usize = 256 * 1024;
const WRITE_BUFFER: usize = 1024 * 1024;

/// What [`package_dir`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    /// Regular files packaged.
    pub files: u64,
    /// Directories packaged (not counting the root).
    pub directories: u64,
    /// Symlinks packaged.
    pub symlinks: u64,
    /// Bytes of file content plus symlink targets, before compression.
    pub uncompressed_bytes: u64,
    /// Size of the zip file written.
    pub zip_bytes: u64,
    /// sha256 of the zip file written.
    pub digest: Digest,
}

/// How [`package_dir_with`] spreads the work. Neither field changes the bytes written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// Threads compressing entries (the calling thread writes).
    pub workers: NonZeroUsize,
    /// A compressed entry larger than this waits for its turn in a file beside the output
    /// instead of in memory.
    pub spill_above: u64,
}

impl PackOptions {
    /// `workers` compressing threads, with the in-memory budget shared between their window.
    pub fn with_workers(workers: NonZeroUsize) -> PackOptions {
        let window = (workers.get() * WINDOW_PER_WORKER) as u64;
        PackOptions {
            workers,
            spill_above: (IN_FLIGHT_BUDGET / window).max(1024 * 1024),
        }
    }
}

impl Default for PackOptions {
    /// One worker per core.
    fn default() -> PackOptions {
        PackOptions::with_workers(std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }
}

/// Where packaging spent its time, for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackPhases {
    /// Listing and checking the tree.
    pub walk: Duration,
    /// Reading and deflating: wall time inside the workers, summed over them.
    pub compress: Duration,
    /// Writing headers and compressed bytes, hashing them on the way.
    pub write_and_hash: Duration,
    /// Making the written file durable.
    pub sync: Duration,
}

/// Why a directory could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("`{path}` is not a directory; nothing to package")]
    NotADirectory { path: PathBuf },
    #[error("could not read `{path}` while packaging: {source}")]
    ReadInput { path: PathBuf, source: io::Error },
    #[error("`{path}` has a name that is not valid UTF-8; rename it so the artifact can be unpacked anywhere")]
    NonUtf8Name { path: PathBuf },
    #[error(
        "`{path}` has a path of {length} bytes below the packaged directory, more than a zip \
         entry name can hold ({MAX_NAME_BYTES}); shorten it"
    )]
    NameTooLong { path: PathBuf, length: usize },
    #[error(
        "`{path}` is a symlink to `{target}`, which leaves the packaged directory ({reason}); \
         replace it with a copy of what it points to or with a link inside the directory"
    )]
    SymlinkEscapes {
        path: PathBuf,
        target: String,
        reason: &'static str,
    },
    #[error("`{path}` is a {kind}; only regular files, directories and symlinks can be packaged")]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error(
        "`{dir}` holds more than {limit} ({size} bytes counted so far); make the output smaller \
         or raise `[project] max_artifact_size` in sandpit.toml"
    )]
    TooLarge {
        dir: PathBuf,
        limit: ByteSize,
        size: u64,
    },
    #[error("the artifact `{out}` would be written inside the directory being packaged `{dir}`; write it elsewhere")]
    OutputInsideInput { out: PathBuf, dir: PathBuf },
    #[error("could not write the artifact `{path}`: {source}")]
    WriteOutput { path: PathBuf, source: io::Error },
}

enum EntryKind {
    Directory,
    File { executable: bool, len: u64 },
    Symlink { target: String },
}

struct Entry {
    /// The name as stored in the zip: `/`-separated, directories end with `/`.
    zip_name: String,
    path: PathBuf,
    kind: EntryKind,
}

/// Writes a deterministic zip of everything below `dir` to `out`, refusing trees larger than
/// `limit` (file bytes plus symlink targets). `out` is written through a temporary file beside
/// it, so a failure never leaves a partial artifact behind.
pub fn package_dir(
    dir: &Path,
    out: &Path,
    limit: ByteSize,
) -> Result<PackageSummary, PackageError> {
    package_dir_with(dir, out, limit, &PackOptions::default()).map(|(summary, _)| summary)
}

/// [`package_dir`] with the work spread as `options` says, also telling where the time went.
pub fn package_dir_with(
    dir: &Path,
    out: &Path,
    limit: ByteSize,
    options: &PackOptions,
) -> Result<(PackageSummary, PackPhases), PackageError> {
    let walk_started = Instant::now();
    let metadata = fs::metadata(dir).map_err(|source| PackageError::ReadInput {
        path: dir.to_owned(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(PackageError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    refuse_output_inside(dir, out)?;

    let mut entries = Vec::new();
    let mut counted = 0u64;
    collect(dir, dir, &mut Vec::new(), &mut entries, &mut counted, limit)?;
    // Byte order of the stored name: independent of the file system's directory order.
    entries.sort_by(|a, b| a.zip_name.cmp(&b.zip_name));
    let walk = walk_started.elapsed();

    let out_dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let write_error = |source| PackageError::WriteOutput {
        path: out.to_owned(),
        source,
    };
    fs::create_dir_all(&out_dir).map_err(write_error)?;
    let temporary = tempfile::Builder::new()
        .prefix(".sandpit-package-")
        .tempfile_in(&out_dir)
        .map_err(write_error)?;

    let budget = SizeBudget {
        root: dir,
        limit,
        measured: counted,
        grown: AtomicU64::new(0),
    };
    let packer = Packer {
        entries: &entries,
        budget: &budget,
        spill_dir: &out_dir,
        spill_above: options.spill_above,
        out,
    };
    let (summary, mut phases) = packer.write(temporary.as_file(), options.workers)?;
    phases.walk = walk;
    let sync_started = Instant::now();
    temporary.as_file().sync_all().map_err(write_error)?;
    phases.sync = sync_started.elapsed();
    temporary
        .persist(out)
        .map_err(|error| write_error(error.error))?;
    Ok((summary, phases))
}

fn refuse_output_inside(dir: &Path, out: &Path) -> Result<(), PackageError> {
    let Ok(canonical_dir) = dir.canonicalize() else {
        return Ok(());
    };
    let Some(out_parent) = out.parent() else {
        return Ok(());
    };
    let out_parent = if out_parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        out_parent
    };
    if let Ok(canonical_parent) = out_parent.canonicalize() {
        if canonical_parent.starts_with(&canonical_dir) {
            return Err(PackageError::OutputInsideInput {
                out: out.to_owned(),
                dir: dir.to_owned(),
            });
        }
    }
    Ok(())
}

fn collect(
    root: &Path,
    directory: &Path,
    below_root: &mut Vec<String>,
    entries: &mut Vec<Entry>,
    counted: &mut u64,
    limit: ByteSize,
) -> Result<(), PackageError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::ReadInput { path, source }
    };
    let listing = fs::read_dir(directory).map_err(read_error(directory))?;
    for item in listing {
        let item = item.map_err(read_error(directory))?;
        let path = item.path();
        let Ok(file_name) = item.file_name().into_string() else {
            return Err(PackageError::NonUtf8Name { path });
        };
        let metadata = fs::symlink_metadata(&path).map_err(read_error(&path))?;
        let file_type = metadata.file_type();
        below_root.push(file_name);
        let name = below_root.join("/");
        // Directories get a trailing `/`, so count it.
        if name.len() + 1 > MAX_NAME_BYTES {
            return Err(PackageError::NameTooLong {
                path,
                length: name.len(),
            });
        }
        if file_type.is_dir() {
            entries.push(Entry {
                zip_name: format!("{name}/"),
                path: path.clone(),
                kind: EntryKind::Directory,
            });
            collect(root, &path, below_root, entries, counted, limit)?;
        } else if file_type.is_file() {
            let len = metadata.len();
            add_to_size(counted, len, root, limit)?;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            entries.push(Entry {
                zip_name: name,
                path,
                kind: EntryKind::File { executable, len },
            });
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(read_error(&path))?;
            let Some(target) = target.to_str().map(str::to_owned) else {
                return Err(PackageError::NonUtf8Name { path });
            };
            check_link(root, &below_root[..below_root.len() - 1], &path, &target)?;
            add_to_size(counted, target.len() as u64, root, limit)?;
            entries.push(Entry {
                zip_name: name,
                path,
                kind: EntryKind::Symlink { target },
            });
        } else {
            let kind = if file_type.is_fifo() {
                "named pipe (fifo)"
            } else if file_type.is_socket() {
                "socket"
            } else if file_type.is_block_device() {
                "block device"
            } else if file_type.is_char_device() {
                "character device"
            } else {
                "special file"
            };
            return Err(PackageError::SpecialFile { path, kind });
        }
        below_root.pop();
    }
    Ok(())
}

fn add_to_size(
    counted: &mut u64,
    more: u64,
    root: &Path,
    limit: ByteSize,
) -> Result<(), PackageError> {
    *counted = counted.saturating_add(more);
    if *counted > limit.0 {
        return Err(PackageError::TooLarge {
            dir: root.to_owned(),
            limit,
            size: *counted,
        });
    }
    Ok(())
}

fn check_link(
    root: &Path,
    link_parent: &[String],
    path: &Path,
    target: &str,
) -> Result<(), PackageError> {
    let lookup = |below: &[String]| -> Option<String> {
        let candidate = below
            .iter()
            .fold(root.to_path_buf(), |acc, part| acc.join(part));
        let metadata = fs::symlink_metadata(&candidate).ok()?;
        if !metadata.file_type().is_symlink() {
            return None;
        }
        fs::read_link(&candidate)
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    };
    resolve_link(link_parent, target, &lookup)
        .map(|_| ())
        .map_err(|escape| PackageError::SymlinkEscapes {
            path: path.to_owned(),
            target: target.to_owned(),
            reason: escape.describe(),
        })
}

/// The size limit while files are read: the walk measured `measured` bytes; files that have
/// grown since then spend what is left up to `limit`, shared between all workers.
struct SizeBudget<'a> {
    root: &'a Path,
    limit: ByteSize,
    measured: u64,
    grown: AtomicU64,
}

impl SizeBudget<'_> {
    /// How many bytes a file measured at `len` may still yield.
    fn allowance(&self, len: u64) -> u64 {
        let spent = self
            .measured
            .saturating_add(self.grown.load(Ordering::SeqCst));
        len.saturating_add(self.limit.0.saturating_sub(spent))
    }

    /// Records that a file measured at `len` yielded `read` bytes.
    fn account(&self, len: u64, read: u64) -> Result<(), PackageError> {
        let Some(growth) = read.checked_sub(len).filter(|growth| *growth > 0) else {
            return Ok(());
        };
        let grown = self.grown.fetch_add(growth, Ordering::SeqCst) + growth;
        let size = self.measured.saturating_add(grown);
        if size > self.limit.0 {
            return Err(PackageError::TooLarge {
                dir: self.root.to_owned(),
                limit: self.limit,
                size,
            });
        }
        Ok(())
    }
}

/// One entry ready to be written: everything its local header says, and its data.
struct ReadyEntry {
    method: Method,
    mode: u32,
    crc32: u32,
    uncompressed_size: u64,
    data: Spool,
}

/// Compressed bytes waiting for their turn: in memory, or in an unnamed file once too large.
enum Spool {
    Memory(Vec<u8>),
    Spilled { file: BufWriter<File>, len: u64 },
}

impl Spool {
    fn len(&self) -> u64 {
        match self {
            Spool::Memory(bytes) => bytes.len() as u64,
            Spool::Spilled { len, .. } => *len,
        }
    }

    fn append(&mut self, bytes: &[u8], spill_above: u64, spill_dir: &Path) -> io::Result<()> {
        if let Spool::Memory(held) = self {
            if (held.len() + bytes.len()) as u64 > spill_above {
                let mut file = BufWriter::new(tempfile::tempfile_in(spill_dir)?);
                file.write_all(held)?;
                *self = Spool::Spilled {
                    file,
                    len: held.len() as u64,
                };
            }
        }
        match self {
            Spool::Memory(held) => held.extend_from_slice(bytes),
            Spool::Spilled { file, len } => {
                file.write_all(bytes)?;
                *len += bytes.len() as u64;
            }
        }
        Ok(())
    }

    fn copy_to(self, sink: &mut impl Write) -> io::Result<()> {
        match self {
            Spool::Memory(bytes) => sink.write_all(&bytes),
            Spool::Spilled { file, len } => {
                let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.rewind()?;
                let copied = io::copy(&mut file, sink)?;
                if copied != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("a spilled entry shrank from {len} to {copied} bytes"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What each worker reuses from one entry to the next.
struct Worker {
    deflate: DeflateStream,
    input: Vec<u8>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            deflate: DeflateStream {
                // Raw deflate (no zlib header), as zip entries hold it.
                compress: Compress::new(Compression::new(DEFLATE_LEVEL), false),
                output: Vec::with_capacity(READ_CHUNK),
            },
            input: vec![0; READ_CHUNK],
        }
    }
}

/// One deflate stream at a time, reset between entries (a reset stream writes what a new one
/// would).
struct DeflateStream {
    compress: Compress,
    output: Vec<u8>,
}

impl DeflateStream {
    /// Deflates `input` into `spool`; `finish` ends the stream.
    fn feed(
        &mut self,
        mut input: &[u8],
        finish: bool,
        spool: &mut Spool,
        spill_above: u64,
        spill_dir: &Path,
    ) -> io::Result<()> {
        let flush = if finish {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        loop {
            self.output.clear();
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(input, &mut self.output, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.compress.total_in() - before) as usize..];
            spool.append(&self.output, spill_above, spill_dir)?;
            let done = if finish {
                status == Status::StreamEnd
            } else {
                input.is_empty()
            };
            if done {
                return Ok(());
            }
        }
    }
}

/// Fills `buffer` as far as the reader allows, so chunk boundaries depend on the content only.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Counts and hashes every byte on its way to `inner`.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Packer<'a> {
    entries: &'a [Entry],
    budget: &'a SizeBudget<'a>,
    spill_dir: &'a Path,
    spill_above: u64,
    out: &'a Path,
}

impl Packer<'_> {
    fn write_error(&self) -> impl Fn(io::Error) -> PackageError + '_ {
        |source| PackageError::WriteOutput {
            path: self.out.to_owned(),
            source,
        }
    }

    /// Compresses the entries on `workers` threads and writes them to `file` in order.
    fn write(
        &self,
        file: &File,
        workers: NonZeroUsize,
    ) -> Result<(PackageSummary, PackPhases), PackageError> {
        let mut sink = HashingWriter {
            inner: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha256::new(),
            written: 0,
        };
        let mut records = Vec::with_capacity(self.entries.len());
        let mut summary = PackageSummary {
            files: 0,
            directories: 0,
            symlinks: 0,
            uncompressed_bytes: 0,
            zip_bytes: 0,
            digest: Digest::of(b""),
        };
        let times = run_in_order(
            self.entries.len(),
            workers.get(),
            workers.get() * WINDOW_PER_WORKER,
            Worker::new,
            |worker, index, abandoned| self.prepare(worker, &self.entries[index], abandoned),
            |index, ready| {
                let entry = &self.entries[index];
                match entry.kind {
                    EntryKind::Directory => summary.directories += 1,
                    EntryKind::File { .. } => summary.files += 1,
                    EntryKind::Symlink { .. } => summary.symlinks += 1,
                }
                summary.uncompressed_bytes += ready.uncompressed_size;
                let record = EntryRecord {
                    name: entry.zip_name.clone(),
                    method: ready.method,
                    mode: ready.mode,
                    crc32: ready.crc32,
                    compressed_size: ready.data.len(),
                    uncompressed_size: ready.uncompressed_size,
                    offset: sink.written,
                };
                sink.write_all(&record.local_header())
                    .and_then(|()| ready.data.copy_to(&mut sink))
                    .map_err(self.write_error())?;
                records.push(record);
                Ok(())
            },
        )?;
        let closing_started = Instant::now();
        let central_start = sink.written;
        sink.write_all(&central_directory_and_end(&records, central_start))
            .and_then(|()| sink.flush())
            .map_err(self.write_error())?;
        summary.zip_bytes = sink.written;
        summary.digest = Digest::from_hasher(sink.hasher);
        let phases = PackPhases {
            walk: Duration::ZERO,
            compress: times.working,
            write_and_hash: times.consuming + closing_started.elapsed(),
            sync: Duration::ZERO,
        };
        Ok((summary, phases))
    }

    /// Reads and compresses one entry (on a worker thread).
    fn prepare(
        &self,
        worker: &mut Worker,
        entry: &Entry,
        abandoned: &AtomicBool,
    ) -> Result<ReadyEntry, PackageError> {
        match &entry.kind {
            EntryKind::Directory => Ok(ReadyEntry {
                method: Method::Stored,
                mode: 0o040755,
                crc32: 0,
                uncompressed_size: 0,
                data: Spool::Memory(Vec::new()),
            }),
            // A link target is short and rarely compressible: stored as it is.
            EntryKind::Symlink { target } => Ok(ReadyEntry {
                method: Method::Stored,
                mode: 0o120777,
                crc32: crc32fast::hash(target.as_bytes()),
                uncompressed_size: target.len() as u64,
                data: Spool::Memory(target.as_bytes().to_vec()),
            }),
            EntryKind::File { executable, len } => {
                let read_error = |source| PackageError::ReadInput {
                    path: entry.path.clone(),
                    source,
                };
                let source = File::open(&entry.path).map_err(read_error)?;
                // The file may have grown since it was measured: never read past the limit.
                let mut reader = source.take(self.budget.allowance(*len).saturating_add(1));
                let mut crc = crc32fast::Hasher::new();
                let mut spool = Spool::Memory(Vec::new());
                let mut read_total = 0u64;
                // The first chunk decides how the whole file is kept (see `worth_deflating`):
                // deflated as a finished stream of its own, which for a file of one chunk is
                // already the entry's data.
                let read = read_full(&mut reader, &mut worker.input).map_err(read_error)?;
                let mut last = read < worker.input.len();
                let mut trial = Spool::Memory(Vec::new());
                worker.deflate.compress.reset();
                worker
                    .deflate
                    .feed(
                        &worker.input[..read],
                        true,
                        &mut trial,
                        u64::MAX,
                        self.spill_dir,
                    )
                    .map_err(self.write_error())?;
                let deflate = worth_deflating(read as u64, trial.len());
                let method = if deflate {
                    Method::Deflated
                } else {
                    Method::Stored
                };
                let mut chunk_len = read;
                if last && deflate {
                    spool = trial;
                    crc.update(&worker.input[..read]);
                    read_total += read as u64;
                } else {
                    worker.deflate.compress.reset();
                    loop {
                        if abandoned.load(Ordering::Relaxed) {
                            return Err(read_error(io::Error::other("packaging was abandoned")));
                        }
                        let chunk = &worker.input[..chunk_len];
                        crc.update(chunk);
                        read_total += chunk_len as u64;
                        if deflate {
                            worker
                                .deflate
                                .feed(chunk, last, &mut spool, self.spill_above, self.spill_dir)
                                .map_err(self.write_error())?;
                        } else {
                            spool
                                .append(chunk, self.spill_above, self.spill_dir)
                                .map_err(self.write_error())?;
                        }
                        if last {
                            break;
                        }
                        chunk_len =
                            read_full(&mut reader, &mut worker.input).map_err(read_error)?;
                        last = chunk_len < worker.input.len();
                    }
                }
                self.budget.account(*len, read_total)?;
                Ok(ReadyEntry {
                    method,
                    mode: if *executable { 0o100755 } else { 0o100644 },
                    crc32: crc.finalize(),
                    uncompressed_size: read_total,
                    data: spool,
                })
            }
        }
    }
}

/// Whether a file is kept deflated: when deflating its first [`READ_CHUNK`] bytes (the whole
/// file if smaller, `sample_len` of them) as a finished stream gives `deflated_len` bytes that
/// save at least a fifth. Otherwise it is stored as it is: archives and media barely shrink and
/// model weights (float tensors) by 5–10%, while deflating them costs most of packaging and
/// inflating them three times what creating the model's session does; source, text and
/// executables save half or more and stay deflated. The
/// decision depends on the content only, so the bytes stay a function of the tree. Part of the
/// packaging format.
pub fn worth_deflating(sample_len: u64, deflated_len: u64) -> bool {
    deflated_len.saturating_mul(5) < sample_len.saturating_mul(4)
}

/// How many bytes of a file [`worth_deflating`] looks at.
pub const DEFLATE_SAMPLE: usize = READ_CHUNK;

/// sha256 and length of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut reader = io::BufReader::new(File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((Digest::from_hasher(hasher), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64, measured: u64) -> SizeBudget<'static> {
        SizeBudget {
            root: Path::new("tree"),
            limit: ByteSize(limit),
            measured,
            grown: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_file_may_grow_into_what_the_limit_leaves() {
        let budget = budget(100, 90);
        assert_eq!(budget.allowance(40), 50);
        budget.account(40, 45).unwrap();
        // The growth is spent for every later file.
        assert_eq!(budget.allowance(10), 15);
        budget.account(10, 15).unwrap();
        assert_eq!(budget.allowance(10), 10);
    }

    #[test]
    fn growth_past_the_limit_is_refused_with_the_size_counted() {
        let budget = budget(100, 90);
        budget.account(40, 45).unwrap();
        match budget.account(5, 11) {
            Err(PackageError::TooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (101, ByteSize(100)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shrinking_files_change_nothing() {
        let budget = budget(100, 100);
        budget.account(50, 10).unwrap();
        assert_eq!(budget.allowance(7), 7);
    }
}
