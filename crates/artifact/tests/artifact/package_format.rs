//! Packaging's bytes: the same whatever the worker count or spilling, hashed as written, laid out
//! as the `zip` crate's writer would lay them out, and pinned to the packaging format.

use std::fs;
use std::io::{Cursor, Write};
use std::num::NonZeroUsize;
use std::path::Path;

use sandpit_artifact::package::{worth_deflating, DEFLATE_SAMPLE};
use sandpit_artifact::{extract, package_dir, package_dir_with, PackOptions};
use sandpit_domain::{ByteSize, Digest};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::fixtures::{epoch_plus, listing, make_tree, Node};

const BIG: ByteSize = ByteSize(1 << 30);

/// Deterministic bytes that deflate poorly.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// A tree with entries of every kind and file sizes around the 256 KiB read chunk, so that
/// chunk boundaries, empty files, incompressible and compressible data are all covered.
fn varied_tree(root: &Path) {
    make_tree(
        root,
        &[
            Node::File("empty", "", 0o644),
            Node::File("bin/tool", "#!/bin/sh\nexit 0\n", 0o755),
            Node::File("café/menu.txt", "crème brûlée\n", 0o644),
            Node::Dir("nothing-here"),
            Node::Link("latest", "bin"),
            Node::Link("café/tool-link", "../bin/tool"),
        ],
        epoch_plus(0),
    );
    let chunk = 256 * 1024;
    for (name, len, seed) in [
        ("data/one-byte", 1, 1),
        ("data/exact-chunk.bin", chunk, 2),
        ("data/chunk-and-one.bin", chunk + 1, 3),
        ("data/two-chunks.bin", 2 * chunk, 4),
    ] {
        fs::create_dir_all(root.join("data")).unwrap();
        fs::write(root.join(name), noise(len, seed)).unwrap();
    }
    let text = "line of fairly repetitive text, number 12345\n".repeat(12_000);
    fs::write(root.join("data/text.txt"), text).unwrap();
    for index in 0..40 {
        fs::write(
            root.join(format!("data/small-{index:02}.py")),
            format!("def f{index}():\n    return {index}\n").repeat(index + 1),
        )
        .unwrap();
    }
}

fn options(workers: usize, spill_above: Option<u64>) -> PackOptions {
    let mut options = PackOptions::with_workers(NonZeroUsize::new(workers).unwrap());
    if let Some(spill_above) = spill_above {
        options.spill_above = spill_above;
    }
    options
}

#[test]
fn bytes_do_not_depend_on_worker_count_or_spilling() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    varied_tree(&tree);
    let cases = [
        ("one worker", options(1, None)),
        ("two workers", options(2, None)),
        ("seven workers", options(7, None)),
        // Every entry over 1 KiB waits in a spill file instead of memory.
        ("three workers, spilling", options(3, Some(1024))),
        ("one worker, spilling all", options(1, Some(0))),
    ];
    let mut first: Option<(Vec<u8>, Digest)> = None;
    for (label, options) in cases {
        let out = temp.path().join(format!("{label}.zip"));
        let (summary, _) = package_dir_with(&tree, &out, BIG, &options).unwrap();
        let bytes = fs::read(&out).unwrap();
        match &first {
            None => first = Some((bytes, summary.digest)),
            Some((want_bytes, want_digest)) => {
                assert_eq!(&summary.digest, want_digest, "{label}");
                assert!(&bytes == want_bytes, "{label}: bytes differ");
            }
        }
    }
    // And what was written unpacks to the tree.
    let dest = temp.path().join("unpacked");
    extract(
        &temp.path().join("one worker, spilling all.zip"),
        &dest,
        BIG,
    )
    .unwrap();
    assert_eq!(listing(&tree), listing(&dest));
    for name in [
        "data/two-chunks.bin",
        "data/text.txt",
        "empty",
        "café/menu.txt",
    ] {
        assert_eq!(
            fs::read(tree.join(name)).unwrap(),
            fs::read(dest.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_digest_is_the_sha256_of_the_file_written() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    varied_tree(&tree);
    let out = temp.path().join("out.zip");
    let summary = package_dir(&tree, &out, BIG).unwrap();
    let written = fs::read(&out).unwrap();
    assert_eq!(summary.digest, Digest::of(&written));
    assert_eq!(summary.zip_bytes, written.len() as u64);
}

/// Whether deflating the first `DEFLATE_SAMPLE` bytes of `content` (as a finished raw stream
/// at level 6, the way packaging tries it) saves enough to keep the file deflated.
fn deflate_sample_helps(content: &[u8]) -> bool {
    let sample = &content[..content.len().min(DEFLATE_SAMPLE)];
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    deflater.write_all(sample).unwrap();
    let deflated = deflater.finish().unwrap();
    worth_deflating(sample.len() as u64, deflated.len() as u64)
}

/// The same tree written entry by entry through the `zip` crate's own writer.
fn zip_crate_archive(tree: &Path) -> Vec<u8> {
    let mut names = Vec::new();
    fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) {
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                names.push(format!("{name}/"));
                walk(root, &path, names);
            } else {
                names.push(name);
            }
        }
    }
    walk(tree, tree, &mut names);
    names.sort();
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(DateTime::default());
    for name in names {
        let path = tree.join(name.trim_end_matches('/'));
        let metadata = fs::symlink_metadata(&path).unwrap();
        if name.ends_with('/') {
            writer
                .add_directory(name, base.unix_permissions(0o755))
                .unwrap();
        } else if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            writer
                .add_symlink(name, target.to_str().unwrap(), base.unix_permissions(0o777))
                .unwrap();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let mode = if metadata.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let content = fs::read(&path).unwrap();
            // The same content rule as packaging: stored when deflating the sample barely helps.
            let options = if deflate_sample_helps(&content) {
                base
            } else {
                base.compression_method(CompressionMethod::Stored)
                    .compression_level(None)
            };
            writer
                .start_file(name, options.unix_permissions(mode))
                .unwrap();
            writer.write_all(&content).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn the_layout_is_what_the_zip_crate_writes() {
    // Both sides deflate with the same backend (flate2 on zlib-rs), so any difference is in the
    // hand-written headers, central directory or end record.
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    varied_tree(&tree);
    let out = temp.path().join("out.zip");
    package_dir(&tree, &out, BIG).unwrap();
    let ours = fs::read(&out).unwrap();
    let theirs = zip_crate_archive(&tree);
    let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
    assert!(
        ours == theirs,
        "ours {} bytes, the zip crate's {} bytes, first difference at {first_difference:?}",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn the_packaging_format_is_pinned() {
    // If this digest changes, every artifact's digest changes: bump
    // `sandpit_build::plan::PACKAGING_FORMAT` and update the digest here. It changes with the
    // deflate level, the rule for storing what barely compresses (`worth_deflating`), the
    // deflate implementation (including a C zlib backend of flate2 enabled anywhere in the
    // workspace, which takes precedence over zlib-rs) or the record layout.
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    varied_tree(&tree);
    let summary = package_dir(&tree, &temp.path().join("out.zip"), BIG).unwrap();
    assert_eq!(
        summary.digest.hex(),
        "c086ef337e076f260c36634f5fd4fb083c8ab087daf8b00d268460eec8794b10"
    );
}

#[test]
fn what_barely_compresses_is_stored_and_the_rest_deflated() {
    // The rule itself: saving at least a fifth keeps a file deflated.
    assert!(worth_deflating(100, 79));
    assert!(!worth_deflating(100, 80));
    assert!(!worth_deflating(0, 0), "an empty file has nothing to save");
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    // Random bytes (weights, say) larger than the sample, random bytes in one chunk, text, and
    // a file that is text for its first chunk and noise after (the sample decides).
    fs::write(tree.join("weights.bin"), noise(3 * DEFLATE_SAMPLE + 17, 7)).unwrap();
    fs::write(tree.join("small.bin"), noise(1000, 8)).unwrap();
    fs::write(tree.join("app.py"), "print('hello')\n".repeat(5000)).unwrap();
    let mut mixed = "x = 1\n".repeat(DEFLATE_SAMPLE / 6 + 1).into_bytes();
    mixed.truncate(DEFLATE_SAMPLE);
    mixed.extend(noise(DEFLATE_SAMPLE, 9));
    fs::write(tree.join("mixed.dat"), &mixed).unwrap();
    let out = temp.path().join("out.zip");
    package_dir(&tree, &out, BIG).unwrap();
    let mut archive = zip::ZipArchive::new(fs::File::open(&out).unwrap()).unwrap();
    let method = |archive: &mut zip::ZipArchive<fs::File>, name: &str| {
        archive.by_name(name).unwrap().compression()
    };
    assert_eq!(
        method(&mut archive, "weights.bin"),
        CompressionMethod::Stored
    );
    assert_eq!(method(&mut archive, "small.bin"), CompressionMethod::Stored);
    assert_eq!(method(&mut archive, "app.py"), CompressionMethod::Deflated);
    assert_eq!(
        method(&mut archive, "mixed.dat"),
        CompressionMethod::Deflated
    );
    // Whatever the method, the bytes come back as they were.
    let unpacked = temp.path().join("unpacked");
    extract(&out, &unpacked, BIG).unwrap();
    for name in ["weights.bin", "small.bin", "app.py", "mixed.dat"] {
        assert_eq!(
            fs::read(unpacked.join(name)).unwrap(),
            fs::read(tree.join(name)).unwrap(),
            "{name}"
        );
    }
}
