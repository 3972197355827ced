//! Safe extraction: unpacks an artifact into a fresh directory, refusing anything that could
//! write outside it (zip-slip), expand past a size limit (zip bombs, lying headers) or smuggle in
//! special files.
//!
//! Every entry name and symlink target is validated before the first byte is written (names
//! listed twice, entries below a file or a symlink of the same archive and names the file
//! system would refuse included, so a refusal names the entry rather than an OS error); the
//! archive is unpacked into a temporary directory beside the destination and renamed into place
//! only when everything succeeded, so a failure leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sandpit_domain::{quoted, ByteSize};
use zip::ZipArchive;

use crate::confinement::{entry_components, resolve_link};

/// What [`extract`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractSummary {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of file content and symlink targets written.
    pub bytes: u64,
}

/// Why an archive could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("could not open the archive `{path}`: {source}")]
    OpenArchive { path: PathBuf, source: io::Error },
    #[error("`{path}` is not a readable zip archive: {source}")]
    ReadArchive {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("the archive `{archive}` holds an entry named {}, which is refused: {reason}; the archive is unsafe to unpack", quoted(name))]
    UnsafeEntryName {
        archive: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("the archive `{archive}` holds the symlink {} -> {}, which is refused: {reason}; the archive is unsafe to unpack", quoted(name), quoted(target))]
    SymlinkEscapes {
        archive: PathBuf,
        name: String,
        target: String,
        reason: &'static str,
    },
    #[error(
        "the archive `{archive}` holds {} more than once; the archive is malformed",
        quoted(name)
    )]
    DuplicateEntry { archive: PathBuf, name: String },
    #[error("the archive `{archive}` lists {listed} entries but only {distinct} distinct names (names that decode alike, or a repeated record); the archive is malformed")]
    HiddenEntries {
        archive: PathBuf,
        listed: usize,
        distinct: usize,
    },
    #[error("the archive `{archive}` holds {} below {}, which is a {what} in the same archive; the archive is malformed", quoted(name), quoted(ancestor))]
    PathClash {
        archive: PathBuf,
        name: String,
        ancestor: String,
        what: &'static str,
    },
    #[error("the archive `{archive}` holds {}, which is {what}; only files, directories and symlinks are unpacked", quoted(name))]
    UnsupportedEntry {
        archive: PathBuf,
        name: String,
        what: &'static str,
    },
    #[error(
        "the archive `{archive}` expands to more than {limit} ({size} bytes); refusing to unpack it\n\
         hint: if it is legitimate, raise `[project] max_artifact_size` in sandpit.toml"
    )]
    TooLarge {
        archive: PathBuf,
        limit: ByteSize,
        size: u64,
    },
    #[error("cannot unpack into `{path}`: it already exists and is not an empty directory; remove it or choose another destination")]
    DestinationNotEmpty { path: PathBuf },
    #[error("could not write `{path}` while unpacking: {source}")]
    WriteOutput { path: PathBuf, source: io::Error },
}

/// The longest file name Linux file systems take (`NAME_MAX`), in bytes.
const MAX_COMPONENT_BYTES: usize = 255;
/// The longest entry name unpacked, in bytes: below `PATH_MAX` (4096) with room for the
/// destination's own path.
const MAX_NAME_BYTES: usize = 3072;

enum Planned {
    Directory,
    File { mode: u32 },
    Symlink { target: String },
}

struct PlannedEntry {
    index: usize,
    components: Vec<String>,
    kind: Planned,
}

/// Unpacks `zip` into `dest`, which must not exist yet (or be an empty directory). Refuses the
/// whole archive when any entry is unsafe, and stops as soon as more than `limit` bytes would be
/// written, whatever the headers claim.
pub fn extract(zip: &Path, dest: &Path, limit: ByteSize) -> Result<ExtractSummary, ExtractError> {
    let file = File::open(zip).map_err(|source| ExtractError::OpenArchive {
        path: zip.to_owned(),
        source,
    })?;
    let read_error = |source| ExtractError::ReadArchive {
        path: zip.to_owned(),
        source,
    };
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(read_error)?;

    check_every_entry_is_listed_once(&archive, zip)?;
    let plan = validate(&mut archive, zip, limit)?;
    check_destination(dest)?;

    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let write_error = |path: &Path, source| ExtractError::WriteOutput {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(&parent).map_err(|source| write_error(&parent, source))?;
    let staging = tempfile::Builder::new()
        .prefix(".sandpit-extract-")
        .tempdir_in(&parent)
        .map_err(|source| write_error(&parent, source))?;

    let summary = unpack(&mut archive, zip, &plan, staging.path(), dest, limit)?;

    // An empty destination directory is replaced by rename(2); anything else was refused above.
    fs::rename(staging.path(), dest).map_err(|source| write_error(dest, source))?;
    // The staging directory has moved; dropping the handle must not try to delete `dest`.
    let _ = staging.keep();
    Ok(summary)
}

enum CopyFailure {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that tells a failed read (a damaged archive) from a failed write (a full disk).
fn copy_entry(reader: &mut impl Read, writer: &mut impl Write) -> Result<u64, CopyFailure> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyFailure::Read(error)),
        };
        writer
            .write_all(&buffer[..read])
            .map_err(CopyFailure::Write)?;
        copied += read as u64;
    }
}

fn check_destination(dest: &Path) -> Result<(), ExtractError> {
    match fs::symlink_metadata(dest) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ExtractError::WriteOutput {
            path: dest.to_owned(),
            source,
        }),
        Ok(metadata) if metadata.is_dir() => {
            let mut listing = fs::read_dir(dest).map_err(|source| ExtractError::WriteOutput {
                path: dest.to_owned(),
                source,
            })?;
            if listing.next().is_none() {
                Ok(())
            } else {
                Err(ExtractError::DestinationNotEmpty {
                    path: dest.to_owned(),
                })
            }
        }
        Ok(_) => Err(ExtractError::DestinationNotEmpty {
            path: dest.to_owned(),
        }),
    }
}

/// Refuses an archive whose central directory lists a name twice. The `zip` reader keeps one
/// entry per decoded name (the later record wins), so without this a duplicate would be unpacked
/// silently as whichever copy came last; the records are counted here, by walking them.
fn check_every_entry_is_listed_once<R: Read + io::Seek>(
    archive: &ZipArchive<R>,
    zip: &Path,
) -> Result<(), ExtractError> {
    let read_error = |source: io::Error| ExtractError::ReadArchive {
        path: zip.to_owned(),
        source: source.into(),
    };
    let file = File::open(zip).map_err(|source| ExtractError::OpenArchive {
        path: zip.to_owned(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    reader
        .seek(io::SeekFrom::Start(archive.central_directory_start()))
        .map_err(read_error)?;
    let mut names = BTreeSet::new();
    let mut listed = 0usize;
    loop {
        let mut header = [0u8; 46];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(read_error(error)),
        }
        if header[..4] != 0x0201_4b50u32.to_le_bytes() {
            break; // the end of central directory record (or its zip64 form)
        }
        let field = |at: usize| usize::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let mut name = vec![0u8; field(28)];
        reader.read_exact(&mut name).map_err(read_error)?;
        let skip = (field(30) + field(32)) as i64;
        reader.seek_relative(skip).map_err(read_error)?;
        listed += 1;
        if !names.insert(name.clone()) {
            return Err(ExtractError::DuplicateEntry {
                archive: zip.to_owned(),
                name: String::from_utf8_lossy(&name).into_owned(),
            });
        }
    }
    if listed > archive.len() {
        return Err(ExtractError::HiddenEntries {
            archive: zip.to_owned(),
            listed,
            distinct: archive.len(),
        });
    }
    Ok(())
}

/// Checks every entry before anything is written: names, kinds, symlink targets, declared size.
fn validate<R: Read + io::Seek>(
    archive: &mut ZipArchive<R>,
    zip: &Path,
    limit: ByteSize,
) -> Result<Vec<PlannedEntry>, ExtractError> {
    let read_error = |source| ExtractError::ReadArchive {
        path: zip.to_owned(),
        source,
    };
    let mut plan = Vec::new();
    let mut seen = BTreeSet::new();
    let mut declared = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(read_error)?;
        let raw_name = entry.name_raw().to_vec();
        let name = String::from_utf8(raw_name).map_err(|error| ExtractError::UnsafeEntryName {
            archive: zip.to_owned(),
            name: String::from_utf8_lossy(error.as_bytes()).into_owned(),
            reason: "the name is not valid UTF-8",
        })?;
        let components: Vec<String> = entry_components(&name)
            .map_err(|reason| ExtractError::UnsafeEntryName {
                archive: zip.to_owned(),
                name: name.clone(),
                reason,
            })?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !seen.insert(components.clone()) {
            return Err(ExtractError::DuplicateEntry {
                archive: zip.to_owned(),
                name,
            });
        }
        if entry.encrypted() {
            return Err(ExtractError::UnsupportedEntry {
                archive: zip.to_owned(),
                name,
                what: "encrypted",
            });
        }
        declared = declared.saturating_add(entry.size());
        if declared > limit.0 {
            return Err(ExtractError::TooLarge {
                archive: zip.to_owned(),
                limit,
                size: declared,
            });
        }
        let mode = entry.unix_mode();
        let file_type = mode.map(|mode| mode & 0o170000).unwrap_or(0);
        let kind = if entry.is_dir() {
            Planned::Directory
        } else if file_type == 0o120000 {
            Planned::Symlink {
                target: String::new(),
            }
        } else if file_type == 0 || file_type == 0o100000 {
            Planned::File {
                mode: mode.map(|mode| mode & 0o777).unwrap_or(0o644),
            }
        } else {
            return Err(ExtractError::UnsupportedEntry {
                archive: zip.to_owned(),
                name,
                what: "a special file",
            });
        };
        // Refused here rather than by the file system half-way through, so the message names
        // the entry instead of an OS error about a staging directory.
        let unsafe_name = |reason| ExtractError::UnsafeEntryName {
            archive: zip.to_owned(),
            name: name.clone(),
            reason,
        };
        if components
            .iter()
            .any(|part| part.len() > MAX_COMPONENT_BYTES)
        {
            return Err(unsafe_name("a path component is longer than 255 bytes"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(unsafe_name("the name is longer than 3072 bytes"));
        }
        plan.push(PlannedEntry {
            index,
            components,
            kind,
        });
    }

    // Symlink targets are the entries' contents; they are small, and read (bounded) up front so
    // that links can be checked against each other before anything is written.
    let mut links = BTreeMap::new();
    for planned in plan.iter_mut() {
        if let Planned::Symlink { target } = &mut planned.kind {
            let entry = archive.by_index(planned.index).map_err(read_error)?;
            let mut bytes = Vec::new();
            entry
                .take(4096 + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| ExtractError::ReadArchive {
                    path: zip.to_owned(),
                    source: source.into(),
                })?;
            let name = planned.components.join("/");
            *target = String::from_utf8(bytes).map_err(|_| ExtractError::SymlinkEscapes {
                archive: zip.to_owned(),
                name: name.clone(),
                target: "<not UTF-8>".to_owned(),
                reason: "the target is not valid UTF-8",
            })?;
            if target.len() > 4096 || target.contains('\0') {
                return Err(ExtractError::SymlinkEscapes {
                    archive: zip.to_owned(),
                    name,
                    target: target.chars().take(80).collect(),
                    reason: "the target is not a usable path",
                });
            }
            links.insert(planned.components.clone(), target.clone());
        }
    }
    let lookup = |path: &[String]| links.get(path).cloned();
    for planned in &plan {
        if let Planned::Symlink { target } = &planned.kind {
            let parent = &planned.components[..planned.components.len() - 1];
            resolve_link(parent, target, &lookup).map_err(|escape| {
                ExtractError::SymlinkEscapes {
                    archive: zip.to_owned(),
                    name: planned.components.join("/"),
                    target: target.clone(),
                    reason: escape.describe(),
                }
            })?;
        }
    }
    // After the links are checked, so a link that leads out is reported as such.
    // Nothing may sit below a file (it could not be written) or below a symlink (it would be
    // written through the link, or the link would then fail to be made).
    let kinds: BTreeMap<&[String], &Planned> = plan
        .iter()
        .map(|planned| (planned.components.as_slice(), &planned.kind))
        .collect();
    for planned in &plan {
        for depth in 1..planned.components.len() {
            let ancestor = &planned.components[..depth];
            let what = match kinds.get(ancestor) {
                Some(Planned::File { .. }) => "file",
                Some(Planned::Symlink { .. }) => "symlink",
                Some(Planned::Directory) | None => continue,
            };
            return Err(ExtractError::PathClash {
                archive: zip.to_owned(),
                name: planned.components.join("/"),
                ancestor: ancestor.join("/"),
                what,
            });
        }
    }

    Ok(plan)
}

/// Writes `plan` below `root` (the staging directory); errors name the path under `dest`, where
/// the user will look, since the staging directory is removed on failure.
fn unpack<R: Read + io::Seek>(
    archive: &mut ZipArchive<R>,
    zip: &Path,
    plan: &[PlannedEntry],
    root: &Path,
    dest: &Path,
    limit: ByteSize,
) -> Result<ExtractSummary, ExtractError> {
    let write_error = |path: &Path| {
        let path = dest.join(path.strip_prefix(root).unwrap_or(path));
        move |source| ExtractError::WriteOutput { path, source }
    };
    let mut summary = ExtractSummary {
        files: 0,
        directories: 0,
        symlinks: 0,
        bytes: 0,
    };
    let path_of = |components: &[String]| {
        components
            .iter()
            .fold(root.to_path_buf(), |acc, part| acc.join(part))
    };

    // Directories and files first, symlinks last: no write ever goes through a link.
    for planned in plan {
        let path = path_of(&planned.components);
        match &planned.kind {
            Planned::Directory => {
                fs::create_dir_all(&path).map_err(write_error(&path))?;
                summary.directories += 1;
            }
            Planned::File { mode } => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(write_error(parent))?;
                }
                let entry = archive.by_index(planned.index).map_err(|source| {
                    ExtractError::ReadArchive {
                        path: zip.to_owned(),
                        source,
                    }
                })?;
                let mut output = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(write_error(&path))?;
                // Headers can lie about sizes: count what is actually decompressed.
                let remaining = limit.0.saturating_sub(summary.bytes);
                let written = copy_entry(&mut entry.take(remaining.saturating_add(1)), &mut output)
                    .map_err(|failure| match failure {
                        CopyFailure::Read(source) => ExtractError::ReadArchive {
                            path: zip.to_owned(),
                            source: source.into(),
                        },
                        // A full disk is the destination's problem, not the archive's.
                        CopyFailure::Write(source) => ExtractError::WriteOutput {
                            path: path.clone(),
                            source,
                        },
                    })?;
                summary.bytes += written;
                if summary.bytes > limit.0 {
                    return Err(ExtractError::TooLarge {
                        archive: zip.to_owned(),
                        limit,
                        size: summary.bytes,
                    });
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                    .map_err(write_error(&path))?;
                summary.files += 1;
            }
            Planned::Symlink { .. } => {}
        }
    }
    for planned in plan {
        if let Planned::Symlink { target } = &planned.kind {
            let path = path_of(&planned.components);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(write_error(parent))?;
            }
            std::os::unix::fs::symlink(target, &path).map_err(write_error(&path))?;
            summary.symlinks += 1;
            // Counted like file bytes: headers may claim less than the targets hold.
            summary.bytes += target.len() as u64;
            if summary.bytes > limit.0 {
                return Err(ExtractError::TooLarge {
                    archive: zip.to_owned(),
                    limit,
                    size: summary.bytes,
                });
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt deflate stream",
            ))
        }
    }

    #[test]
    fn a_full_disk_is_a_write_failure_not_a_damaged_archive() {
        // /dev/full answers every write with ENOSPC.
        let mut full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        match copy_entry(&mut &b"some bytes"[..], &mut full) {
            Err(CopyFailure::Write(error)) => {
                assert_eq!(error.kind(), io::ErrorKind::StorageFull)
            }
            Err(CopyFailure::Read(error)) => panic!("a write failure read as {error}"),
            Ok(n) => panic!("wrote {n} bytes to /dev/full"),
        }
        assert!(matches!(
            copy_entry(&mut Broken, &mut Vec::new()),
            Err(CopyFailure::Read(_))
        ));
        let mut copied = Vec::new();
        assert_eq!(copy_entry(&mut &b"abc"[..], &mut copied).ok(), Some(3));
        assert_eq!(copied, b"abc");
    }
}
