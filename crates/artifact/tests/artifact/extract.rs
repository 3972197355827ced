//! Extraction: malicious archives are refused before anything is written outside (or inside)
//! the destination.

use std::fs;

use sandpit_artifact::{extract, ExtractError};
use sandpit_domain::ByteSize;

use crate::fixtures::{craft_zip, listing, raw_zip, Crafted, RawEntry};

const BIG: ByteSize = ByteSize(1 << 30);

#[test]
fn malicious_archives_are_refused_and_nothing_is_written() {
    // (what, entries, fragment of the refusal)
    let cases: Vec<(&str, Vec<Crafted>, &str)> = vec![
        (
            "parent traversal",
            vec![
                Crafted::File("ok.txt", b"fine"),
                Crafted::File("../evil", b"x"),
            ],
            "`..`",
        ),
        (
            "nested traversal",
            vec![Crafted::File("a/../../evil", b"x")],
            "`..`",
        ),
        (
            "absolute path",
            vec![Crafted::File("/tmp/sandpit-evil", b"x")],
            "absolute path",
        ),
        (
            "backslash",
            vec![Crafted::File("..\\evil", b"x")],
            "backslash",
        ),
        (
            "symlink to /etc",
            vec![Crafted::Symlink("etc", "/etc")],
            "absolute path",
        ),
        (
            "symlink above root",
            vec![Crafted::Symlink("up", "../..")],
            "climbs above the root",
        ),
        (
            "write through an escaping symlink",
            vec![
                Crafted::Symlink("dir", ".."),
                Crafted::File("dir/evil", b"x"),
            ],
            "climbs above the root",
        ),
        (
            "chained symlinks",
            vec![
                Crafted::Symlink("a/up", ".."),
                Crafted::Symlink("a/b", "up/../.."),
            ],
            "climbs above the root",
        ),
        (
            "duplicate entry",
            vec![Crafted::Dir("same/"), Crafted::File("same", b"2")],
            "more than once",
        ),
    ];
    for (what, entries, fragment) in cases {
        let temp = tempfile::tempdir().unwrap();
        let zip = temp.path().join("evil.zip");
        craft_zip(&zip, &entries);
        let area = temp.path().join("area");
        fs::create_dir_all(&area).unwrap();
        let dest = area.join("dest");
        let error = match extract(&zip, &dest, BIG) {
            Ok(summary) => panic!("{what}: extracted {summary:?}"),
            Err(error) => error,
        };
        assert!(error.to_string().contains(fragment), "{what}: {error}");
        assert_eq!(
            listing(&area),
            Vec::<String>::new(),
            "{what}: nothing written"
        );
        assert_eq!(
            listing(temp.path()),
            vec!["area".to_owned(), "evil.zip".to_owned()],
            "{what}"
        );
    }
}

#[test]
fn declared_size_over_the_limit_is_refused_before_writing() {
    let temp = tempfile::tempdir().unwrap();
    let zip = temp.path().join("big.zip");
    let content = vec![b'a'; 10_000];
    craft_zip(
        &zip,
        &[Crafted::File("a", &content), Crafted::File("b", &content)],
    );
    let dest = temp.path().join("dest");
    let error = extract(&zip, &dest, ByteSize(15_000)).unwrap_err();
    assert!(
        matches!(error, ExtractError::TooLarge { size: 20_000, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("max_artifact_size"), "{error}");
    assert!(!dest.exists());
    extract(&zip, &dest, ByteSize(20_000)).unwrap();
}

/// A zip whose headers claim a tiny entry that really inflates to much more.
#[test]
fn lying_size_headers_do_not_bypass_the_limit() {
    let temp = tempfile::tempdir().unwrap();
    let zip = temp.path().join("bomb.zip");
    let content = vec![b'a'; 1_000_000];
    craft_zip(&zip, &[Crafted::File("bomb", &content)]);
    let mut bytes = fs::read(&zip).unwrap();
    patch_uncompressed_sizes(&mut bytes, 10);
    fs::write(&zip, &bytes).unwrap();

    let dest = temp.path().join("dest");
    let error = extract(&zip, &dest, ByteSize(1000)).unwrap_err();
    assert!(
        matches!(error, ExtractError::TooLarge { size: 1001, .. }),
        "{error:?}"
    );
    assert!(!dest.exists());
    assert_eq!(listing(temp.path()), vec!["bomb.zip".to_owned()]);
}

/// Rewrites the uncompressed-size field of every local and central header.
fn patch_uncompressed_sizes(bytes: &mut [u8], size: u32) {
    let mut index = 0;
    while index + 4 <= bytes.len() {
        let signature = u32::from_le_bytes(bytes[index..index + 4].try_into().unwrap());
        let field = match signature {
            0x04034b50 => Some(index + 22),
            0x02014b50 => Some(index + 24),
            _ => None,
        };
        if let Some(offset) = field {
            bytes[offset..offset + 4].copy_from_slice(&size.to_le_bytes());
        }
        index += 1;
    }
}

#[test]
fn destination_must_be_new_or_empty() {
    let temp = tempfile::tempdir().unwrap();
    let zip = temp.path().join("ok.zip");
    craft_zip(&zip, &[Crafted::Dir("d/"), Crafted::File("d/f", b"x")]);
    let dest = temp.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    extract(&zip, &dest, BIG).unwrap();
    assert_eq!(fs::read_to_string(dest.join("d/f")).unwrap(), "x");
    let error = extract(&zip, &dest, BIG).unwrap_err();
    assert!(
        matches!(error, ExtractError::DestinationNotEmpty { .. }),
        "{error:?}"
    );
}

/// Extracts raw `entries` with `limit` into a fresh directory and returns the refusal.
fn refusal(entries: &[RawEntry], limit: u64) -> ExtractError {
    let temp = tempfile::tempdir().unwrap();
    let zip = temp.path().join("archive.zip");
    fs::write(&zip, raw_zip(entries)).unwrap();
    let dest = temp.path().join("dest");
    let error = match extract(&zip, &dest, ByteSize(limit)) {
        Ok(summary) => panic!("extracted {summary:?} from {entries:?}"),
        Err(error) => error,
    };
    assert_eq!(listing(temp.path()), vec!["archive.zip".to_owned()]);
    error
}

/// Regression: the `zip` reader keeps one entry per name (the later record), so an archive
/// listing `b` twice was unpacked as whichever copy came last, and `DuplicateEntry` never fired.
#[test]
fn duplicate_names_hidden_by_the_zip_reader_are_refused() {
    let error = refusal(
        &[RawEntry::symlink("b", "a"), RawEntry::symlink("b", "d")],
        BIG.0,
    );
    assert!(
        matches!(&error, ExtractError::DuplicateEntry { name, .. } if name == "b"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("holds `b` more than once"),
        "{error}"
    );
}

/// Regression: two names that are not UTF-8 decode to the same `a\u{fffd}` and were collapsed
/// the same way, byte-distinct as they are.
#[test]
fn names_that_decode_alike_are_refused() {
    let mut first = RawEntry::file("a", b"1");
    first.name.push(0xff);
    let mut second = RawEntry::file("a", b"2");
    second.name.push(0xfe);
    let error = refusal(&[first, second], BIG.0);
    assert!(
        matches!(
            error,
            ExtractError::HiddenEntries {
                listed: 2,
                distinct: 1,
                ..
            }
        ),
        "{error:?}"
    );
}

/// Regression: a name holding a NUL or an escape sequence was echoed raw, so the message
/// showed nothing where the problem was (or recoloured the terminal).
#[test]
fn control_characters_in_entry_names_are_escaped_in_errors() {
    let error = refusal(&[RawEntry::file("x\0y\u{1b}[31m", b"")], BIG.0);
    let message = error.to_string();
    assert!(
        message.contains("holds an entry named `x\\0y\\u{1b}[31m`, which is refused: the name contains a NUL byte"),
        "{message}"
    );
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

/// Regression: a file `a` and an entry `a/b` (or a symlink `l` and `l/x`) failed half-way with
/// an OS error naming the staging directory, which was gone by the time the user looked.
#[test]
fn an_entry_below_a_file_or_a_symlink_is_refused_before_writing() {
    let cases = [
        (
            vec![RawEntry::file("a", b"1"), RawEntry::file("a/b", b"2")],
            "holds `a/b` below `a`, which is a file in the same archive",
        ),
        (
            vec![RawEntry::file("a/b/c", b"2"), RawEntry::file("a/b", b"1")],
            "holds `a/b/c` below `a/b`, which is a file in the same archive",
        ),
        (
            vec![RawEntry::symlink("l", "d"), RawEntry::file("l/x", b"1")],
            "holds `l/x` below `l`, which is a symlink in the same archive",
        ),
    ];
    for (entries, fragment) in cases {
        let error = refusal(&entries, BIG.0);
        assert!(matches!(error, ExtractError::PathClash { .. }), "{error:?}");
        assert!(error.to_string().contains(fragment), "{error}");
    }
}

/// Regression: symlink targets were read whatever the headers claimed and counted after the
/// limit was checked, so lying headers could unpack up to 4 KiB per link past the limit.
#[test]
fn symlink_targets_count_against_the_limit() {
    let mut link = RawEntry::symlink("link", &"t".repeat(100));
    link.declared_size = 1;
    let error = refusal(&[RawEntry::file("f", &[b'x'; 10]), link], 50);
    assert!(
        matches!(error, ExtractError::TooLarge { size: 110, .. }),
        "{error:?}"
    );
}

/// Regression: a component longer than the file system allows failed mid-way with
/// `File name too long` about the staging directory.
#[test]
fn overlong_names_are_refused_before_writing() {
    let long = "n".repeat(256);
    let error = refusal(&[RawEntry::file(&format!("a/{long}"), b"")], BIG.0);
    assert!(
        error
            .to_string()
            .contains("which is refused: a path component is longer than 255 bytes"),
        "{error}"
    );
    let deep = vec!["d".repeat(200); 16].join("/");
    let error = refusal(&[RawEntry::file(&deep, b"")], BIG.0);
    assert!(
        error
            .to_string()
            .contains("the name is longer than 3072 bytes"),
        "{error}"
    );
}

/// Regression: a write that failed named the path inside the staging directory, which is
/// removed on failure; the message names where the entry was going instead.
#[test]
fn write_errors_name_the_destination_not_the_staging_directory() {
    let temp = tempfile::tempdir().unwrap();
    // A destination so deep that an entry of 16 x 150 bytes passes the name checks but not
    // PATH_MAX (4096 bytes) once joined to it.
    let mut area = temp.path().to_path_buf();
    for _ in 0..12 {
        area.push("p".repeat(150));
    }
    fs::create_dir_all(&area).unwrap();
    let name = vec!["e".repeat(150); 16].join("/");
    let zip = temp.path().join("archive.zip");
    fs::write(&zip, raw_zip(&[RawEntry::file(&name, b"x")])).unwrap();
    let dest = area.join("dest");
    let error = extract(&zip, &dest, BIG).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ExtractError::WriteOutput { .. }),
        "{error:?}"
    );
    assert!(!message.contains(".sandpit-extract-"), "{message}");
    assert!(
        message.contains(&format!("{}/eee", dest.display())),
        "{message}"
    );
    assert!(!dest.exists());
}
