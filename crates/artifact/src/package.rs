//! Deterministic packaging: a directory tree becomes a zip whose bytes depend only on the tree's
//! content, so the same commit gives the same digest on any machine.
//!
//! What is fixed: entry order (byte order of the `/`-separated path), timestamps (1980-01-01
//! 00:00:00), permissions (0o644, or 0o755 when any exec bit is set; 0o755 for directories),
//! compression (deflate, level 6), no extra fields, no comments. Directories are stored as
//! entries so empty directories survive the round trip. Symlinks are stored only when they
//! resolve inside the tree; special files are refused.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sandpit_domain::{ByteSize, Digest};
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::confinement::resolve_link;

/// The deflate level every artifact is written with. Changing it changes every digest, so it is
/// part of the packaging format (see `sandpit_build::plan::PACKAGING_FORMAT`).
pub const DEFLATE_LEVEL: i64 = 6;

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
    #[error("could not write the artifact `{path}`: {source}")]
    WriteZip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
}

enum EntryKind {
    Directory,
    File { executable: bool, len: u64 },
    Symlink { target: String },
}

struct Entry {
    /// `/`-separated path below the root, no trailing slash.
    name: String,
    path: PathBuf,
    kind: EntryKind,
}

impl Entry {
    /// The name as stored in the zip; directories end with `/`.
    fn zip_name(&self) -> String {
        match self.kind {
            EntryKind::Directory => format!("{}/", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Writes a deterministic zip of everything below `dir` to `out`, refusing trees larger than
/// `limit` (file bytes plus symlink targets). `out` is written through a temporary file beside
/// it, so a failure never leaves a partial artifact behind.
pub fn package_dir(
    dir: &Path,
    out: &Path,
    limit: ByteSize,
) -> Result<PackageSummary, PackageError> {
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
    entries.sort_by_key(Entry::zip_name);

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

    let mut summary = write_zip(dir, &entries, temporary.as_file(), out, limit)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    let (digest, zip_bytes) = hash_file(temporary.path()).map_err(write_error)?;
    summary.digest = digest;
    summary.zip_bytes = zip_bytes;
    temporary
        .persist(out)
        .map_err(|error| write_error(error.error))?;
    Ok(summary)
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
        if file_type.is_dir() {
            entries.push(Entry {
                name,
                path: path.clone(),
                kind: EntryKind::Directory,
            });
            collect(root, &path, below_root, entries, counted, limit)?;
        } else if file_type.is_file() {
            let len = metadata.len();
            add_to_size(counted, len, root, limit)?;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            entries.push(Entry {
                name,
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
                name,
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

fn write_zip(
    root: &Path,
    entries: &[Entry],
    file: &File,
    out: &Path,
    limit: ByteSize,
) -> Result<PackageSummary, PackageError> {
    let zip_error = |source| PackageError::WriteZip {
        path: out.to_owned(),
        source,
    };
    let mut writer = ZipWriter::new(BufWriter::new(file));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(DateTime::default());
    let mut summary = PackageSummary {
        files: 0,
        directories: 0,
        symlinks: 0,
        uncompressed_bytes: 0,
        zip_bytes: 0,
        digest: Digest::of(b""),
    };
    for entry in entries {
        match &entry.kind {
            EntryKind::Directory => {
                writer
                    .add_directory(entry.zip_name(), base.unix_permissions(0o755))
                    .map_err(zip_error)?;
                summary.directories += 1;
            }
            EntryKind::Symlink { target } => {
                writer
                    .add_symlink(entry.zip_name(), target, base.unix_permissions(0o777))
                    .map_err(zip_error)?;
                summary.symlinks += 1;
                summary.uncompressed_bytes += target.len() as u64;
            }
            EntryKind::File { executable, len } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                // Zip64 headers only when needed: the choice depends on the size alone, so it
                // stays deterministic.
                let options = base
                    .unix_permissions(mode)
                    .large_file(*len >= u64::from(u32::MAX));
                writer
                    .start_file(entry.zip_name(), options)
                    .map_err(zip_error)?;
                let source = File::open(&entry.path).map_err(|source| PackageError::ReadInput {
                    path: entry.path.clone(),
                    source,
                })?;
                // The file may have grown since it was measured: never copy past the limit.
                let remaining = limit.0.saturating_sub(summary.uncompressed_bytes);
                let copied = io::copy(
                    &mut BufReader::new(source).take(remaining.saturating_add(1)),
                    &mut writer,
                )
                .map_err(|source| PackageError::ReadInput {
                    path: entry.path.clone(),
                    source,
                })?;
                summary.uncompressed_bytes += copied;
                if summary.uncompressed_bytes > limit.0 {
                    return Err(PackageError::TooLarge {
                        dir: root.to_owned(),
                        limit,
                        size: summary.uncompressed_bytes,
                    });
                }
                summary.files += 1;
            }
        }
    }
    let mut buffered = writer.finish().map_err(zip_error)?;
    buffered
        .flush()
        .map_err(|source| PackageError::WriteOutput {
            path: out.to_owned(),
            source,
        })?;
    Ok(summary)
}

/// sha256 and length of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
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
