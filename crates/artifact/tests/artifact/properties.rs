//! Property tests of extraction: archives with arbitrary entries (hostile names, symlinks to
//! anywhere, duplicates, file/directory clashes, sizes around the limit, lying headers) never
//! panic, never write outside the destination, and either unpack exactly what they hold or are
//! refused with a typed, readable error.
//!
//! The archives are written by [`raw_zip`], not by the `zip` crate's writer, which refuses
//! duplicate names and cannot write non-UTF-8 names, special files or lying sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sandpit_artifact::{extract, ExtractError};
use sandpit_domain::ByteSize;

use crate::fixtures::{listing, raw_zip, RawEntry};

/// Small, so that sizes around it are cheap to write.
const LIMIT: u64 = 2048;

/// A fixed seed unless `PROPTEST_RNG_SEED` says otherwise, so a failure seen once (in CI or
/// locally) is seen again by the same command; no persistence files: a failure found becomes a
/// named regression test in `extract.rs` instead.
fn config() -> Config {
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x5a4d_0917),
        chosen => chosen,
    };
    Config {
        failure_persistence: None,
        rng_seed,
        ..defaults
    }
}

// ---- inputs ----------------------------------------------------------------------------------

/// Path components an attacker (or a broken packager) would use.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        24 => prop::sample::select(vec!["a", "b", "d", "sub"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec![
            "..", ".", "", "a\\..\\..\\b", "x\0y", "é✓", " ", "\u{1b}[31m", "~", "C:",
        ])
        .prop_map(str::to_owned),
        1 => (1usize..300).prop_map(|n| "n".repeat(n)),
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(component(), 1..4),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(parts, absolute, trailing)| {
            let mut path = parts.join("/");
            if absolute {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

/// Sizes around [`LIMIT`] (one file of exactly the limit fits, one byte more does not).
fn size() -> impl Strategy<Value = usize> {
    let limit = LIMIT as usize;
    prop_oneof![
        3 => 0usize..64,
        1 => prop::sample::select(vec![limit / 2, limit - 1, limit, limit + 1]),
        1 => 0usize..=limit + 64,
    ]
}

#[derive(Debug, Clone)]
enum Shape {
    File(usize),
    Dir,
    Symlink(String),
    /// A mode the archive claims: special files, odd permission bits, no type at all.
    Mode(u32, usize),
}

fn shape() -> impl Strategy<Value = Shape> {
    let target = prop_oneof![
        4 => path(),
        1 => prop::sample::select(vec!["..", "../..", "/", "/etc/passwd", "a/../..", "", "."])
            .prop_map(str::to_owned),
    ];
    prop_oneof![
        8 => size().prop_map(Shape::File),
        3 => Just(Shape::Dir),
        3 => target.prop_map(Shape::Symlink),
        1 => (any::<u16>(), 0usize..16).prop_map(|(mode, size)| Shape::Mode(u32::from(mode), size)),
    ]
}

/// Entries built from paths and shapes; most have a name of their own (so that clashes and
/// duplicates are occasional and many archives are valid), some claim a smaller size than they
/// hold, some names are not UTF-8, and some archives repeat an entry exactly.
fn entries() -> impl Strategy<Value = Vec<RawEntry>> {
    let entry = (
        path(),
        shape(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.6),
    );
    (
        prop::collection::vec(entry, 0..7),
        prop::option::weighted(0.2, any::<prop::sample::Index>()),
    )
        .prop_map(|(drawn, duplicate)| {
            let mut entries: Vec<RawEntry> = drawn
                .into_iter()
                .enumerate()
                .map(|(position, (name, shape, lies, not_utf8, unique))| {
                    let name = if unique {
                        let (stem, slash) = match name.strip_suffix('/') {
                            Some(stem) => (stem, "/"),
                            None => (name.as_str(), ""),
                        };
                        format!("{stem}-{position}{slash}")
                    } else {
                        name
                    };
                    let mut entry = match shape {
                        Shape::File(size) => {
                            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                            RawEntry::file(&name, &data)
                        }
                        Shape::Dir => RawEntry {
                            mode: 0o040755,
                            ..RawEntry::file(&format!("{}/", name.trim_end_matches('/')), b"")
                        },
                        Shape::Symlink(target) => RawEntry::symlink(&name, &target),
                        Shape::Mode(mode, size) => RawEntry {
                            mode,
                            ..RawEntry::file(&name, &vec![b'm'; size])
                        },
                    };
                    if lies {
                        entry.declared_size /= 4;
                    }
                    if not_utf8 {
                        entry.name.push(0xff);
                    }
                    entry
                })
                .collect();
            if let (Some(index), false) = (duplicate, entries.is_empty()) {
                let copy = entries[index.index(entries.len())].clone();
                entries.push(copy);
            }
            entries
        })
}

// ---- checks ----------------------------------------------------------------------------------

/// Everything under `root`, with each file's bytes and each link's target, so that "untouched"
/// can be checked exactly.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    listing(root)
        .into_iter()
        .map(|relative| {
            let path = root.join(&relative);
            let metadata = fs::symlink_metadata(&path).unwrap();
            let content = if metadata.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if metadata.is_file() {
                format!("{} bytes {:?}", metadata.len(), fs::read(&path).unwrap())
            } else {
                "dir".to_owned()
            };
            (relative, content)
        })
        .collect()
}

/// Whether `link` (below `root`, possibly dangling) resolves inside `root`, the way the kernel
/// would: following links that exist, treating missing components lexically.
fn stays_inside(root: &Path, link: &Path) -> bool {
    let mut current: PathBuf = root.to_path_buf();
    let relative = link.strip_prefix(root).unwrap();
    let mut pending: Vec<Component<'static>> = Vec::new();
    let own = |path: &Path| -> Vec<Component<'static>> {
        let leaked: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
        leaked.components().rev().collect()
    };
    pending.extend(own(relative));
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part {
            Component::Normal(name) => {
                let next = current.join(name);
                match fs::symlink_metadata(&next) {
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        hops += 1;
                        if hops > 64 {
                            return true; // a loop: the kernel refuses it, nothing escapes
                        }
                        pending.extend(own(&fs::read_link(&next).unwrap()));
                    }
                    _ => current = next,
                }
            }
            Component::ParentDir => {
                if current == root {
                    return false;
                }
                current.pop();
            }
            Component::RootDir | Component::Prefix(_) => return false,
            Component::CurDir => {}
        }
    }
    current.starts_with(root)
}

fn check_error(error: &ExtractError) -> Result<(), TestCaseError> {
    let message = error.to_string();
    prop_assert!(!message.is_empty());
    let (message, hint) = message
        .split_once("\nhint: ")
        .unwrap_or((message.as_str(), ""));
    prop_assert!(
        !message.chars().chain(hint.chars()).any(char::is_control),
        "a raw control character in {message:?} (hint {hint:?})"
    );
    prop_assert!(!message.ends_with('.') && !hint.ends_with('.'), "{message}");
    prop_assert!(
        !message.contains(".sandpit-extract-"),
        "the message names the staging directory, which is gone: {message}"
    );
    prop_assert!(message.chars().count() < 1200, "too long: {message}");
    Ok(())
}

/// What a successful extraction must have written: each entry's bytes, links as archived, and
/// no link that leads out.
fn check_success(
    entries: &[RawEntry],
    dest: &Path,
    summary: &sandpit_artifact::ExtractSummary,
) -> Result<(), TestCaseError> {
    prop_assert!(summary.bytes <= LIMIT, "{summary:?} is over the limit");
    let mut expected_paths = BTreeSet::new();
    for entry in entries {
        let name = String::from_utf8(entry.name.clone()).unwrap();
        let relative = name.trim_end_matches('/');
        let mut ancestor = Path::new(relative).parent();
        while let Some(dir) = ancestor.filter(|dir| !dir.as_os_str().is_empty()) {
            expected_paths.insert(dir.to_string_lossy().into_owned());
            ancestor = dir.parent();
        }
        expected_paths.insert(relative.to_owned());
        let path = dest.join(relative);
        let metadata = fs::symlink_metadata(&path).unwrap();
        match entry.mode & 0o170000 {
            _ if name.ends_with('/') => prop_assert!(metadata.is_dir(), "{name}"),
            0o120000 => {
                prop_assert!(metadata.file_type().is_symlink(), "{name}");
                prop_assert_eq!(
                    fs::read_link(&path).unwrap(),
                    PathBuf::from(String::from_utf8(entry.data.clone()).unwrap())
                );
                prop_assert!(
                    stays_inside(dest, &path),
                    "{name} leads out of the destination"
                );
            }
            _ => prop_assert_eq!(&fs::read(&path).unwrap(), &entry.data, "{}", name),
        }
    }
    let written: BTreeSet<String> = listing(dest).into_iter().collect();
    prop_assert_eq!(
        written,
        expected_paths,
        "unpacked something the archive does not hold"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_archives_unpack_exactly_or_are_refused_without_writing_outside(
        entries in entries()
    ) {
        let temp = tempfile::tempdir().unwrap();
        let zip = temp.path().join("archive.zip");
        fs::write(&zip, raw_zip(&entries)).unwrap();
        let area = temp.path().join("area");
        fs::create_dir_all(area.join("neighbour")).unwrap();
        fs::write(area.join("neighbour/keep.txt"), "keep").unwrap();
        let dest = area.join("dest");
        let before = snapshot(temp.path());

        let outcome = extract(&zip, &dest, ByteSize(LIMIT));

        let mut after = snapshot(temp.path());
        after.retain(|path, _| path != "area/dest" && !path.starts_with("area/dest/"));
        prop_assert_eq!(&after, &before, "something outside the destination changed");
        match outcome {
            Ok(summary) => check_success(&entries, &dest, &summary)?,
            Err(error) => {
                check_error(&error)?;
                prop_assert!(!dest.exists(), "a refused archive left {}", dest.display());
            }
        }
    }

    #[test]
    fn damaged_archives_are_refused_without_panicking(
        entries in entries(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let mut bytes = raw_zip(&entries);
        if !bytes.is_empty() {
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
        }
        let temp = tempfile::tempdir().unwrap();
        let zip = temp.path().join("archive.zip");
        fs::write(&zip, &bytes).unwrap();
        let dest = temp.path().join("area/dest");
        match extract(&zip, &dest, ByteSize(LIMIT)) {
            Ok(summary) => prop_assert!(summary.bytes <= LIMIT),
            Err(error) => {
                check_error(&error)?;
                prop_assert!(!dest.exists());
            }
        }
        let outside: Vec<String> = listing(temp.path())
            .into_iter()
            .filter(|path| path != "area/dest" && !path.starts_with("area/dest/"))
            .collect();
        let expected = ["archive.zip", "area"].map(str::to_owned);
        prop_assert!(outside.iter().all(|path| expected.contains(path)), "{outside:?}");
    }
}

#[test]
fn the_raw_writer_writes_archives_that_extract() {
    let temp = tempfile::tempdir().unwrap();
    let zip = temp.path().join("ok.zip");
    fs::write(
        &zip,
        raw_zip(&[
            RawEntry::file("a/b.txt", b"hello"),
            RawEntry::symlink("a/link", "b.txt"),
        ]),
    )
    .unwrap();
    let dest = temp.path().join("dest");
    let summary = extract(&zip, &dest, ByteSize(LIMIT)).unwrap();
    assert_eq!((summary.files, summary.symlinks), (1, 1));
    assert_eq!(fs::read_to_string(dest.join("a/link")).unwrap(), "hello");
}

/// The oracle itself: a link that leads out is seen as leading out, directly or through others.
#[test]
fn the_escape_check_sees_links_that_lead_out() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    let link = |name: &str, target: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        root.join(name)
    };
    assert!(stays_inside(&root, &link("in", "sub")));
    assert!(stays_inside(&root, &link("dangling", "sub/missing")));
    assert!(!stays_inside(&root, &link("up", "..")));
    assert!(!stays_inside(&root, &link("absolute", "/etc")));
    assert!(!stays_inside(&root, &link("sub/via", "../up/x")));
}
