//! Packaging: determinism, normalised metadata, symlink confinement, special files, size limit.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use sandpit_artifact::{extract, package_dir, PackageError};
use sandpit_domain::ByteSize;
use zip::ZipArchive;

use crate::fixtures::{epoch_plus, listing, make_tree, Node};

const BIG: ByteSize = ByteSize(1 << 30);

fn sample_tree() -> Vec<Node> {
    vec![
        Node::File("README.md", "hello\n", 0o644),
        Node::File("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755),
        Node::File("lib/a/b/deep.txt", "deep", 0o644),
        Node::File("lib/z.txt", "zzz", 0o644),
        Node::Dir("empty"),
        Node::Link("lib/readme-link", "../README.md"),
        Node::Link("current", "lib/a"),
    ]
}

#[test]
fn same_tree_packaged_twice_gives_the_same_digest() {
    let temp = tempfile::tempdir().unwrap();
    let forward = sample_tree();
    let mut backward = forward.clone();
    backward.reverse();
    // Different creation order, different mtimes, different (but equivalent) permission bits.
    make_tree(&temp.path().join("one"), &forward, epoch_plus(1_000_000));
    make_tree(
        &temp.path().join("two"),
        &backward,
        epoch_plus(1_700_000_000),
    );
    fs::set_permissions(
        temp.path().join("two/README.md"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        temp.path().join("two/bin/run.sh"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::set_permissions(
        temp.path().join("two/lib"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();

    let first = package_dir(&temp.path().join("one"), &temp.path().join("one.zip"), BIG).unwrap();
    let second = package_dir(&temp.path().join("two"), &temp.path().join("two.zip"), BIG).unwrap();
    assert_eq!(first.digest, second.digest);
    assert_eq!(
        fs::read(temp.path().join("one.zip")).unwrap(),
        fs::read(temp.path().join("two.zip")).unwrap()
    );
    assert_eq!((first.files, first.directories, first.symlinks), (4, 5, 2));

    // Content does matter.
    fs::write(temp.path().join("two/lib/z.txt"), "zzZ").unwrap();
    let third = package_dir(
        &temp.path().join("two"),
        &temp.path().join("three.zip"),
        BIG,
    )
    .unwrap();
    assert_ne!(first.digest, third.digest);
}

#[test]
fn metadata_is_normalised() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    make_tree(
        &tree,
        &[
            Node::File("plain", "x", 0o600),
            Node::File("user-exec", "x", 0o744),
            Node::File("group-exec", "x", 0o650),
            Node::File("setuid", "x", 0o4755),
            Node::Dir("private"),
        ],
        epoch_plus(1_600_000_000),
    );
    fs::set_permissions(tree.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    package_dir(&tree, &temp.path().join("out.zip"), BIG).unwrap();

    let mut archive =
        ZipArchive::new(fs::File::open(temp.path().join("out.zip")).unwrap()).unwrap();
    let cases = [
        ("group-exec", 0o100755),
        ("plain", 0o100644),
        ("private/", 0o040755),
        ("setuid", 0o100755),
        ("user-exec", 0o100755),
    ];
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are stored in byte order");
    for (name, mode) in cases {
        let entry = archive.by_name(name).unwrap();
        assert_eq!(entry.unix_mode(), Some(mode), "{name}");
        assert_eq!(entry.last_modified().unwrap().year(), 1980, "{name}");
        assert!(
            entry.extra_data().is_none_or(|extra| extra.is_empty()),
            "{name}"
        );
    }
    assert!(archive.comment().is_empty());
}

#[test]
fn symlinks_are_kept_only_inside_the_tree() {
    // (link path, target, refused reason fragment or None when accepted)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("link", "file.txt", None),
        ("sub/link", "../file.txt", None),
        ("sub/dir-link", ".", None),
        ("dangling", "not-there-yet", None),
        ("outside", "../outside.txt", Some("climbs above the root")),
        (
            "sub/outside",
            "../../etc/passwd",
            Some("climbs above the root"),
        ),
        ("absolute", "/etc/passwd", Some("absolute path")),
        // `sub/up` is the root itself, so `sub/up/..` is above it even though it looks inside.
        (
            "sub/sneaky",
            "up/../outside.txt",
            Some("climbs above the root"),
        ),
    ];
    for (link, target, refused) in cases {
        let temp = tempfile::tempdir().unwrap();
        let tree = temp.path().join("tree");
        make_tree(
            &tree,
            &[
                Node::File("file.txt", "data", 0o644),
                Node::Link("sub/up", ".."),
                Node::Link(link, target),
            ],
            epoch_plus(0),
        );
        fs::write(temp.path().join("outside.txt"), "secret").unwrap();
        let out = temp.path().join("out.zip");
        match (package_dir(&tree, &out, BIG), refused) {
            (Ok(_), None) => {
                let dest = temp.path().join("unpacked");
                extract(&out, &dest, BIG).unwrap();
                assert_eq!(
                    fs::read_link(dest.join(link)).unwrap().to_str().unwrap(),
                    *target,
                    "{link}"
                );
            }
            (Err(error @ PackageError::SymlinkEscapes { .. }), Some(fragment)) => {
                let message = error.to_string();
                assert!(
                    message.contains(link) && message.contains(target),
                    "{message}"
                );
                assert!(message.contains(fragment), "{message}");
                assert!(!out.exists(), "no artifact is left behind");
            }
            (got, want) => panic!("{link} -> {target}: got {got:?}, want refused={want:?}"),
        }
    }
}

#[test]
fn special_files_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(tree.join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let error = package_dir(&tree, &temp.path().join("out.zip"), BIG).unwrap_err();
    assert!(
        matches!(error, PackageError::SpecialFile { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("pipe") && error.to_string().contains("fifo"),
        "{error}"
    );
}

#[test]
fn trees_over_the_limit_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    make_tree(
        &tree,
        &[
            Node::File("a", "0123456789", 0o644),
            Node::File("b", "0123456789", 0o644),
        ],
        epoch_plus(0),
    );
    let out = temp.path().join("out.zip");
    let cases = [
        (ByteSize(20), true),
        (ByteSize(19), false),
        (ByteSize(0), false),
    ];
    for (limit, accepted) in cases {
        match package_dir(&tree, &out, limit) {
            Ok(summary) => {
                assert!(accepted, "{limit} should be refused");
                assert_eq!(summary.uncompressed_bytes, 20);
            }
            Err(PackageError::TooLarge {
                limit: reported, ..
            }) => {
                assert!(!accepted, "{limit} should be accepted");
                assert_eq!(reported, limit);
            }
            Err(other) => panic!("{other}"),
        }
        let _ = fs::remove_file(&out);
    }
}

#[test]
fn output_inside_the_input_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    make_tree(temp.path(), &[Node::File("a", "x", 0o644)], epoch_plus(0));
    let error = package_dir(temp.path(), &temp.path().join("self.zip"), BIG).unwrap_err();
    assert!(
        matches!(error, PackageError::OutputInsideInput { .. }),
        "{error:?}"
    );
}

#[test]
fn round_trip_restores_content_modes_and_links() {
    let temp = tempfile::tempdir().unwrap();
    let tree = temp.path().join("tree");
    make_tree(&tree, &sample_tree(), epoch_plus(0));
    let out = temp.path().join("out.zip");
    let summary = package_dir(&tree, &out, BIG).unwrap();
    let dest = temp.path().join("unpacked");
    let extracted = extract(&out, &dest, BIG).unwrap();
    assert_eq!(extracted.files, summary.files);
    assert_eq!(extracted.symlinks, summary.symlinks);
    assert_eq!(extracted.bytes, summary.uncompressed_bytes);
    assert_eq!(listing(&tree), listing(&dest));
    assert_eq!(
        fs::read_to_string(dest.join("lib/readme-link")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        fs::read_link(dest.join("current")).unwrap().to_str(),
        Some("lib/a")
    );
    let mode = |path: &str| fs::metadata(dest.join(path)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("README.md"), 0o644);
    assert!(dest.join("empty").is_dir());
}
