//! Extraction: malicious archives are refused before anything is written outside (or inside)
//! the destination.

use std::fs;

use sandpit_artifact::{extract, ExtractError};
use sandpit_domain::ByteSize;

use crate::fixtures::{craft_zip, listing, Crafted};

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
