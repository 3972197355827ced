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
