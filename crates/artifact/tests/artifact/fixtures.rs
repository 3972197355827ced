//! Helpers shared by the tests: building trees and crafting zips by hand.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use zip::write::SimpleFileOptions;
use zip::ZipWriter;

/// One thing in a test tree.
#[derive(Clone, Copy)]
pub enum Node {
    File(&'static str, &'static str, u32),
    Dir(&'static str),
    Link(&'static str, &'static str),
}

/// Creates `nodes` under `root`, in the given order, with the given modification time.
pub fn make_tree(root: &Path, nodes: &[Node], mtime: SystemTime) {
    fs::create_dir_all(root).unwrap();
    for node in nodes {
        match *node {
            Node::Dir(path) => fs::create_dir_all(root.join(path)).unwrap(),
            Node::File(path, content, mode) => {
                let full = root.join(path);
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                fs::write(&full, content).unwrap();
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
                let file = fs::File::options().write(true).open(&full).unwrap();
                file.set_modified(mtime).unwrap();
            }
            Node::Link(path, target) => {
                let full = root.join(path);
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, full).unwrap();
            }
        }
    }
}

pub fn epoch_plus(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// What a crafted archive entry is.
pub enum Crafted<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Dir(&'a str),
}

/// Writes a zip with exactly these entries, no validation, as an attacker would.
pub fn craft_zip(path: &Path, entries: &[Crafted]) {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for entry in entries {
        match entry {
            Crafted::File(name, bytes) => {
                writer.start_file(*name, options).unwrap();
                writer.write_all(bytes).unwrap();
            }
            Crafted::Symlink(name, target) => writer.add_symlink(*name, *target, options).unwrap(),
            Crafted::Dir(name) => writer.add_directory(*name, options).unwrap(),
        }
    }
    let bytes = writer.finish().unwrap().into_inner();
    fs::write(path, bytes).unwrap();
}

/// Every path below `root`, relative, sorted.
pub fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// One entry as it is stored: raw name bytes, the Unix mode (type bits included), the bytes,
/// and the uncompressed size the headers claim.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub mode: u32,
    pub data: Vec<u8>,
    pub declared_size: u32,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> RawEntry {
        RawEntry {
            name: name.as_bytes().to_vec(),
            mode: 0o100644,
            data: data.to_vec(),
            declared_size: data.len() as u32,
        }
    }

    pub fn symlink(name: &str, target: &str) -> RawEntry {
        RawEntry {
            mode: 0o120777,
            ..RawEntry::file(name, target.as_bytes())
        }
    }
}

/// CRC-32 (IEEE), bit by bit: the archives here are a few kilobytes.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A stored (uncompressed) zip holding exactly `entries`, made by "Unix" so modes count: unlike
/// the `zip` crate's writer, it writes duplicate and non-UTF-8 names, any mode, and lying sizes.
pub fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u32;
        let crc = crc32(&entry.data);
        let name_len = entry.name.len() as u16;
        // Local header.
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(20u16.to_le_bytes()); // version needed
        out.extend(0x0800u16.to_le_bytes()); // flags: UTF-8 names
        out.extend(0u16.to_le_bytes()); // stored
        out.extend(0u16.to_le_bytes()); // time
        out.extend(0x21u16.to_le_bytes()); // date: 1980-01-01
        out.extend(crc.to_le_bytes());
        out.extend((entry.data.len() as u32).to_le_bytes());
        out.extend(entry.declared_size.to_le_bytes());
        out.extend(name_len.to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra
        out.extend(&entry.name);
        out.extend(&entry.data);
        // Central directory record.
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(((3u16 << 8) | 20).to_le_bytes()); // made by Unix
        central.extend(20u16.to_le_bytes());
        central.extend(0x0800u16.to_le_bytes());
        central.extend(0u16.to_le_bytes());
        central.extend(0u16.to_le_bytes());
        central.extend(0x21u16.to_le_bytes());
        central.extend(crc.to_le_bytes());
        central.extend((entry.data.len() as u32).to_le_bytes());
        central.extend(entry.declared_size.to_le_bytes());
        central.extend(name_len.to_le_bytes());
        central.extend(0u16.to_le_bytes()); // extra
        central.extend(0u16.to_le_bytes()); // comment
        central.extend(0u16.to_le_bytes()); // disk
        central.extend(0u16.to_le_bytes()); // internal attributes
        central.extend((entry.mode << 16).to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(&entry.name);
    }
    let central_offset = out.len() as u32;
    let central_len = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend(central_len.to_le_bytes());
    out.extend(central_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}
