//! The content-addressed store: put/get/list/alias/find_by_input, refusals, tamper detection,
//! imports that give each store its own bytes, and checks that report per artifact.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sandpit_artifact::{package_dir, ArtifactStore, Integrity, Provenance, StoreCheck, StoreError};
use sandpit_domain::{ArtifactName, ByteSize, CommitId, ComponentKind, Digest, Name, Version};

use crate::fixtures::{epoch_plus, make_tree, Node};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn name(component: &str, sha: &str) -> ArtifactName {
    ArtifactName::new(
        Name::parse(component).unwrap(),
        Version::clean(CommitId::parse(sha).unwrap()),
    )
}

fn provenance(name: &ArtifactName, digest: &Digest, size: u64, input_key: &str) -> Provenance {
    Provenance {
        component: name.component.clone(),
        kind: ComponentKind::Service,
        version: name.version.clone(),
        commit: name.version.commit().clone(),
        input_tree: "0".repeat(40),
        input_key: input_key.to_owned(),
        build_command: Some("make".to_owned()),
        builder: None,
        sandpit_version: "0.1.0".to_owned(),
        started_at: "2024-01-01T00:00:00Z".to_owned(),
        finished_at: "2024-01-01T00:00:01Z".to_owned(),
        digest: digest.clone(),
        size,
        reused_from: None,
    }
}

/// Packages a one-file tree with `content` and returns (zip path, digest, size).
fn artifact(dir: &Path, label: &str, content: &'static str) -> (std::path::PathBuf, Digest, u64) {
    let tree = dir.join(format!("tree-{label}"));
    make_tree(
        &tree,
        &[Node::File("app.txt", content, 0o644)],
        epoch_plus(0),
    );
    let zip = dir.join(format!("{label}.zip"));
    let summary = package_dir(&tree, &zip, ByteSize(1 << 20)).unwrap();
    (zip, summary.digest, summary.zip_bytes)
}

#[test]
fn put_get_list_alias_and_find_by_input() {
    let temp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(&temp.path().join("store")).unwrap();
    let (zip_api, digest_api, size_api) = artifact(temp.path(), "api", "api v1");
    let (zip_web, digest_web, size_web) = artifact(temp.path(), "web", "web v1");

    let api_a = name("api", SHA_A);
    let web_a = name("web", SHA_A);
    let stored = store
        .put(
            &api_a,
            &zip_api,
            provenance(&api_a, &digest_api, size_api, "key-api-1"),
        )
        .unwrap();
    assert_eq!(stored.digest, digest_api);
    assert_eq!(stored.size, size_api);
    assert_eq!(
        stored.file_path.file_name().unwrap().to_str().unwrap(),
        api_a.file_name()
    );
    assert_eq!(
        fs::read(&stored.file_path).unwrap(),
        fs::read(&zip_api).unwrap()
    );
    assert_eq!(
        stored.blob_path,
        temp.path()
            .join("store/blobs/sha256")
            .join(digest_api.hex())
    );
    assert_eq!(
        fs::metadata(&stored.blob_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o222,
        0,
        "blobs are read-only"
    );
    store
        .put(
            &web_a,
            &zip_web,
            provenance(&web_a, &digest_web, size_web, "key-web-1"),
        )
        .unwrap();

    // Putting the same thing again is a no-op.
    let again = store
        .put(
            &api_a,
            &zip_api,
            provenance(&api_a, &digest_api, size_api, "key-api-1"),
        )
        .unwrap();
    assert_eq!(again, stored);

    // An unchanged component at a new commit: same bytes, new name, stored once.
    let api_b = name("api", SHA_B);
    let mut reused = provenance(&api_b, &digest_api, size_api, "key-api-1");
    reused.reused_from = Some(api_a.file_name());
    let aliased = store.alias(&api_b, &stored, reused.clone()).unwrap();
    assert_eq!(aliased.digest, stored.digest);
    assert_eq!(
        aliased.provenance.reused_from.as_deref(),
        Some(api_a.file_name().as_str())
    );
    assert_eq!(
        store.alias(&api_b, &stored, reused).unwrap(),
        aliased,
        "alias is idempotent"
    );
    let blob_count = fs::read_dir(temp.path().join("store/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blob_count, 2, "bytes are stored once per digest");
    assert_eq!(
        fs::metadata(&aliased.file_path).unwrap().ino(),
        fs::metadata(&stored.blob_path).unwrap().ino(),
        "visible files are hard links to the blob"
    );

    assert_eq!(store.get(&api_b).unwrap().unwrap(), aliased);
    assert_eq!(store.get(&name("api", &"c".repeat(40))).unwrap(), None);

    let listed: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|a| a.name.file_name())
        .collect();
    assert_eq!(
        listed,
        vec![api_a.file_name(), api_b.file_name(), web_a.file_name()]
    );

    let api = Name::parse("api").unwrap();
    let found = store.find_by_input(&api, "key-api-1").unwrap().unwrap();
    assert_eq!(found.digest, digest_api);
    assert_eq!(found.name, api_b, "the latest name recorded for the key");
    assert_eq!(store.find_by_input(&api, "key-api-2").unwrap(), None);
    assert_eq!(
        store
            .find_by_input(&Name::parse("web").unwrap(), "key-api-1")
            .unwrap(),
        None
    );
    assert!(matches!(
        store.find_by_input(&api, "../x"),
        Err(StoreError::BadInputKey { .. })
    ));

    // A store reopened from disk sees the same thing.
    let reopened = ArtifactStore::open(&temp.path().join("store")).unwrap();
    assert_eq!(reopened.list().unwrap().len(), 3);
}

#[test]
fn inconsistent_puts_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(&temp.path().join("store")).unwrap();
    let (zip_one, digest_one, size_one) = artifact(temp.path(), "one", "one");
    let (zip_two, digest_two, size_two) = artifact(temp.path(), "two", "two");
    let api_a = name("api", SHA_A);

    // (what, name, file, provenance, expected error fragment)
    let wrong_digest = provenance(&api_a, &digest_two, size_one, "k");
    let wrong_name = provenance(&name("web", SHA_A), &digest_one, size_one, "k");
    let cases = [
        (
            "digest differs from the file",
            &zip_one,
            wrong_digest,
            "the provenance says",
        ),
        (
            "provenance names another artifact",
            &zip_one,
            wrong_name,
            "its provenance describes",
        ),
    ];
    for (what, zip, record, fragment) in cases {
        let error = store.put(&api_a, zip, record).unwrap_err();
        assert!(error.to_string().contains(fragment), "{what}: {error}");
    }
    assert!(store.list().unwrap().is_empty());

    store
        .put(
            &api_a,
            &zip_one,
            provenance(&api_a, &digest_one, size_one, "k"),
        )
        .unwrap();
    let error = store
        .put(
            &api_a,
            &zip_two,
            provenance(&api_a, &digest_two, size_two, "k"),
        )
        .unwrap_err();
    assert!(matches!(error, StoreError::NameTaken { .. }), "{error:?}");
}

#[test]
fn tampered_blobs_are_detected_on_every_read() {
    let temp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(&temp.path().join("store")).unwrap();
    let (zip, digest, size) = artifact(temp.path(), "api", "api v1");
    let api_a = name("api", SHA_A);
    let stored = store
        .put(&api_a, &zip, provenance(&api_a, &digest, size, "k"))
        .unwrap();
    assert_eq!(store.open_verified(&digest).unwrap(), stored.blob_path);

    fs::set_permissions(&stored.blob_path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&stored.blob_path).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&stored.blob_path, &bytes).unwrap();
    let tampered = Digest::of(&bytes);

    let failures = [
        ("open_verified", store.open_verified(&digest).unwrap_err()),
        ("get", store.get(&api_a).unwrap_err()),
        ("list", store.list().unwrap_err()),
        (
            "find_by_input",
            store.find_by_input(&api_a.component, "k").unwrap_err(),
        ),
    ];
    for (api, error) in failures {
        match &error {
            StoreError::DigestMismatch {
                path,
                expected,
                actual,
            } => {
                assert_eq!(path, &stored.blob_path, "{api}");
                assert_eq!(expected, &digest, "{api}");
                assert_eq!(actual, &tampered, "{api}");
            }
            other => panic!("{api}: {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("has been modified"), "{api}: {message}");
        assert!(
            message.contains(&digest.to_string()) && message.contains(&tampered.to_string()),
            "{api}: {message}"
        );
    }

    // Storing the good bytes again repairs the blob.
    store
        .put(&api_a, &zip, provenance(&api_a, &digest, size, "k"))
        .unwrap();
    assert!(store.open_verified(&digest).is_ok());
}

#[test]
fn missing_blobs_are_reported() {
    let temp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(temp.path()).unwrap();
    let error = store.open_verified(&Digest::of(b"nothing")).unwrap_err();
    assert!(matches!(error, StoreError::BlobMissing { .. }), "{error:?}");
}

#[test]
fn concurrent_puts_of_the_same_bytes_do_not_corrupt_the_blob() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("store");
    let (zip, digest, size) = artifact(temp.path(), "api", "api v1");
    let handles: Vec<_> = (0..8)
        .map(|index| {
            let (root, zip, digest) = (root.clone(), zip.clone(), digest.clone());
            std::thread::spawn(move || {
                let store = ArtifactStore::open(&root).unwrap();
                let sha = format!("{index:0>40}");
                let artifact_name = name("api", &sha);
                store
                    .put(
                        &artifact_name,
                        &zip,
                        provenance(&artifact_name, &digest, size, "k"),
                    )
                    .unwrap();
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let store = ArtifactStore::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), 8);
    assert!(store.open_verified(&digest).is_ok());
}

/// Whether the file system under `dir` can clone files (btrfs, XFS: yes; ext4, tmpfs: no), found
/// the way the store finds out: by trying.
fn file_system_clones(dir: &Path) -> bool {
    let probe = dir.join("reflink-probe");
    fs::write(&probe, b"probe").unwrap();
    let cloned = reflink_copy::reflink(&probe, dir.join("reflink-probe-clone")).is_ok();
    let _ = fs::remove_file(dir.join("reflink-probe-clone"));
    fs::remove_file(&probe).unwrap();
    cloned
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Flips one byte of a read-only blob in place (same inode), as a careless `chmod u+w` and an
/// editor would.
fn tamper(blob: &Path) -> Digest {
    fs::set_permissions(blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(blob).unwrap();
    bytes[10] ^= 0xff;
    fs::write(blob, &bytes).unwrap();
    Digest::of(&bytes)
}

#[test]
fn import_copies_the_same_bytes_between_stores_and_refuses_tampered_ones() {
    use sandpit_artifact::store::ImportMethod;
    let temp = tempfile::tempdir().unwrap();
    let dev = ArtifactStore::open(&temp.path().join("dev")).unwrap();
    let test = ArtifactStore::open(&temp.path().join("test")).unwrap();
    let (zip, digest, size) = artifact(temp.path(), "api", "api v1");
    let api_a = name("api", SHA_A);
    let original = dev
        .put(&api_a, &zip, provenance(&api_a, &digest, size, "k"))
        .unwrap();

    let imported = test.import(&dev, &api_a).unwrap();
    let expected_method = if file_system_clones(temp.path()) {
        ImportMethod::Reflink
    } else {
        ImportMethod::Copy
    };
    assert_eq!(
        imported.method, expected_method,
        "a clone where the file system can make one, a copy otherwise"
    );
    assert_eq!(imported.artifact.digest, original.digest);
    assert_eq!(
        imported.artifact.provenance, original.provenance,
        "provenance travels with the bytes"
    );
    assert_eq!(
        fs::read(&imported.artifact.file_path).unwrap(),
        fs::read(&zip).unwrap()
    );
    assert!(imported.artifact.file_path.ends_with(api_a.file_name()));
    assert_eq!(
        test.import(&dev, &api_a).unwrap().method,
        ImportMethod::AlreadyPresent
    );

    // A name the source does not hold is refused plainly.
    let missing = name("api", SHA_B);
    assert!(matches!(
        test.import(&dev, &missing),
        Err(StoreError::NotInSource { .. })
    ));

    // Bytes that no longer match their digest are never imported.
    let other = ArtifactStore::open(&temp.path().join("prod")).unwrap();
    fs::set_permissions(&original.blob_path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&original.blob_path, b"tampered").unwrap();
    let error = other.import(&dev, &api_a).unwrap_err();
    assert!(
        matches!(error, StoreError::DigestMismatch { .. }),
        "{error:?}"
    );
    assert!(
        other.get(&api_a).unwrap().is_none(),
        "nothing recorded after a refused import"
    );
}

/// The bug: imports hard-linked blobs, so one write to `test`'s blob changed the build store's
/// and every other environment's bytes too.
#[test]
fn tampering_with_one_environments_blob_leaves_the_other_stores_intact() {
    let temp = tempfile::tempdir().unwrap();
    let build = ArtifactStore::open(&temp.path().join("build")).unwrap();
    let dev = ArtifactStore::open(&temp.path().join("envs/dev")).unwrap();
    let test = ArtifactStore::open(&temp.path().join("envs/test")).unwrap();
    let (zip, digest, size) = artifact(temp.path(), "api", "api v1");
    let api_a = name("api", SHA_A);
    let built = build
        .put(&api_a, &zip, provenance(&api_a, &digest, size, "k"))
        .unwrap();
    let in_dev = dev.import(&build, &api_a).unwrap().artifact;
    let in_test = test.import(&dev, &api_a).unwrap().artifact;

    let inode = |path: &Path| fs::metadata(path).unwrap().ino();
    let inodes = [
        inode(&built.blob_path),
        inode(&in_dev.blob_path),
        inode(&in_test.blob_path),
    ];
    assert!(
        inodes[0] != inodes[1] && inodes[1] != inodes[2] && inodes[0] != inodes[2],
        "every store holds its own bytes: {inodes:?}"
    );
    for blob in [&built.blob_path, &in_dev.blob_path, &in_test.blob_path] {
        assert_eq!(mode(blob), 0o444, "{}", blob.display());
    }
    assert_eq!(
        inode(&in_test.file_path),
        inode(&in_test.blob_path),
        "the visible file may share its own store's blob"
    );

    let tampered = tamper(&in_test.blob_path);

    // The other stores never saw the write.
    for (store, label) in [(&build, "build"), (&dev, "dev")] {
        let intact = store.get(&api_a).unwrap().unwrap();
        assert_eq!(intact.digest, digest, "{label}");
        assert_eq!(
            fs::read(&intact.blob_path).unwrap(),
            fs::read(&zip).unwrap(),
            "{label}"
        );
    }
    // The damaged store is caught on its next read, naming both digests.
    match test.get(&api_a).unwrap_err() {
        StoreError::DigestMismatch {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, in_test.blob_path);
            assert_eq!(expected, digest);
            assert_eq!(actual, tampered);
        }
        other => panic!("{other:?}"),
    }

    // Importing again from a good store repairs the blob and the visible file, read-only again.
    let repaired = test.import(&dev, &api_a).unwrap();
    assert_ne!(
        repaired.method,
        sandpit_artifact::ImportMethod::AlreadyPresent,
        "a damaged blob is replaced, not trusted"
    );
    let good = fs::read(&zip).unwrap();
    assert_eq!(fs::read(&repaired.artifact.blob_path).unwrap(), good);
    assert_eq!(fs::read(&repaired.artifact.file_path).unwrap(), good);
    assert_eq!(mode(&repaired.artifact.blob_path), 0o444);
    assert_eq!(test.get(&api_a).unwrap().unwrap().digest, digest);
    assert_ne!(
        inode(&repaired.artifact.blob_path),
        inode(&in_dev.blob_path)
    );
}

#[test]
fn check_all_reports_every_artifact_however_many_are_damaged() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("store");
    let store = ArtifactStore::open(&root).unwrap();
    let put = |component: &str, sha: &str, content: &'static str| {
        let (zip, digest, size) = artifact(temp.path(), &format!("{component}-{sha}"), content);
        let artifact_name = name(component, sha);
        store
            .put(
                &artifact_name,
                &zip,
                provenance(&artifact_name, &digest, size, "k"),
            )
            .unwrap()
    };
    let intact = put("api", SHA_A, "api v1");
    let modified = put("grade", SHA_A, "grade v1");
    let missing = put("ingest", SHA_A, "ingest v1");
    let unreadable = put("model", SHA_A, "model v1");
    let corrupt = put("web", SHA_A, "web v1");
    // A second name for the intact bytes: reported under both names.
    let alias_name = name("api", SHA_B);
    let mut alias_provenance = intact.provenance.clone();
    alias_provenance.version = alias_name.version.clone();
    alias_provenance.commit = alias_name.version.commit().clone();
    let alias = store.alias(&alias_name, &intact, alias_provenance).unwrap();

    let tampered = tamper(&modified.blob_path);
    fs::remove_file(&missing.blob_path).unwrap();
    // A directory where the blob should be: unreadable even to root.
    fs::remove_file(&unreadable.blob_path).unwrap();
    fs::create_dir(&unreadable.blob_path).unwrap();
    let corrupt_record = root
        .join("names")
        .join(format!("{}.json", corrupt.name.file_name()));
    fs::write(&corrupt_record, b"{ not json").unwrap();
    fs::write(root.join("names/notes.txt"), b"not a record").unwrap();

    let report = store.check_all().unwrap();
    let seen: Vec<(String, Integrity)> = report
        .artifacts
        .iter()
        .map(|check| (check.name.file_name(), check.integrity.clone()))
        .collect();
    let Integrity::Unreadable { message } = &seen[4].1 else {
        panic!("{seen:?}");
    };
    assert!(
        message.contains(&unreadable.blob_path.display().to_string()),
        "{message}"
    );
    assert_eq!(
        seen,
        vec![
            (
                intact.name.file_name(),
                Integrity::Intact { size: intact.size }
            ),
            (
                alias.name.file_name(),
                Integrity::Intact { size: intact.size }
            ),
            (
                modified.name.file_name(),
                Integrity::Modified {
                    actual: tampered.clone()
                }
            ),
            (missing.name.file_name(), Integrity::Missing),
            (unreadable.name.file_name(), seen[4].1.clone()),
        ]
    );
    let first = &report.artifacts[0];
    assert_eq!(first.provenance, intact.provenance);
    assert_eq!(first.blob_path, intact.blob_path);
    assert_eq!(
        first.record_path,
        root.join("names")
            .join(format!("{}.json", intact.name.file_name()))
    );
    assert_eq!(report.artifacts[3].blob_path, missing.blob_path);

    assert_eq!(report.unreadable_records.len(), 1, "{report:?}");
    let bad = &report.unreadable_records[0];
    assert_eq!(bad.name, corrupt.name);
    assert_eq!(bad.record_path, corrupt_record);
    assert!(bad.message.contains("is corrupt"), "{}", bad.message);

    // One name at a time: the same answers, a corrupt record is an error about that name only.
    for check in &report.artifacts {
        assert_eq!(store.check(&check.name).unwrap().as_ref(), Some(check));
    }
    assert!(matches!(
        store.check(&corrupt.name),
        Err(StoreError::CorruptRecord { .. })
    ));
    assert_eq!(store.check(&name("api", &"c".repeat(40))).unwrap(), None);

    // Checking writes nothing: the missing blob is still missing, the tampered one still tampered.
    assert!(!missing.blob_path.exists());
    assert_eq!(
        Digest::of(&fs::read(&modified.blob_path).unwrap()),
        tampered
    );

    // Only failing to list the store is an error.
    fs::remove_dir_all(root.join("names")).unwrap();
    let error = store.check_all().unwrap_err();
    assert!(matches!(error, StoreError::Io { .. }), "{error:?}");
}

#[test]
fn check_all_of_an_empty_store_is_empty() {
    let temp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(temp.path()).unwrap();
    assert_eq!(store.check_all().unwrap(), StoreCheck::default());
}

#[test]
fn blobs_are_read_only_whichever_way_they_arrived() {
    let temp = tempfile::tempdir().unwrap();
    let build = ArtifactStore::open(&temp.path().join("build")).unwrap();
    let env = ArtifactStore::open(&temp.path().join("env")).unwrap();
    let (zip, digest, size) = artifact(temp.path(), "api", "api v1");
    // The build output is writable; the stored blob must not be.
    fs::set_permissions(&zip, fs::Permissions::from_mode(0o666)).unwrap();
    let api_a = name("api", SHA_A);
    let put = build
        .put(&api_a, &zip, provenance(&api_a, &digest, size, "k"))
        .unwrap();
    let imported = env.import(&build, &api_a).unwrap().artifact;
    for (how, blob) in [("put", &put.blob_path), ("import", &imported.blob_path)] {
        assert_eq!(mode(blob), 0o444, "{how}");
    }
}

fn set_written(path: &Path, seconds: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(epoch_plus(seconds))
        .unwrap();
}

fn names_in(store: &ArtifactStore) -> Vec<String> {
    store
        .list()
        .unwrap()
        .iter()
        .map(|a| a.name.file_name())
        .collect()
}

#[test]
fn garbage_collection_keeps_what_is_retained_and_each_components_newest_build() {
    use sandpit_artifact::Retention;
    use std::collections::BTreeSet;

    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("store");
    let store = ArtifactStore::open(&root).unwrap();
    let (zip_v1, digest_v1, size_v1) = artifact(temp.path(), "v1", "api v1");
    let (zip_v2, digest_v2, size_v2) = artifact(temp.path(), "v2", "api v2");
    let (zip_web, digest_web, size_web) = artifact(temp.path(), "web", "web v1");
    let (zip_junk, digest_junk, size_junk) = artifact(temp.path(), "junk", "no name left");
    let (api_a, api_b, web_a, web_b) = (
        name("api", SHA_A),
        name("api", SHA_B),
        name("web", SHA_A),
        name("web", SHA_B),
    );
    store
        .put(
            &api_a,
            &zip_v1,
            provenance(&api_a, &digest_v1, size_v1, "key-1"),
        )
        .unwrap();
    store
        .put(
            &api_b,
            &zip_v2,
            provenance(&api_b, &digest_v2, size_v2, "key-2"),
        )
        .unwrap();
    let web = store
        .put(
            &web_a,
            &zip_web,
            provenance(&web_a, &digest_web, size_web, "key-w"),
        )
        .unwrap();
    // web did not change at B: another name for the same bytes.
    store
        .alias(
            &web_b,
            &web,
            provenance(&web_b, &digest_web, size_web, "key-w"),
        )
        .unwrap();
    // A blob whose name is gone (an interrupted write left it).
    let junk_name = name("junk", SHA_A);
    store
        .put(
            &junk_name,
            &zip_junk,
            provenance(&junk_name, &digest_junk, size_junk, "key-j"),
        )
        .unwrap();
    fs::remove_file(root.join(format!("names/{}.json", junk_name.file_name()))).unwrap();
    // api was built at A, then at B: B is the newest build.
    set_written(&root.join("inputs/api/key-1"), 100);
    set_written(&root.join("inputs/api/key-2"), 200);

    assert_eq!(
        store.newest_builds().unwrap(),
        vec![
            (api_b.clone(), digest_v2.clone()),
            (web_b.clone(), digest_web.clone())
        ],
        "the newest input entry of each component, whose name still exists"
    );

    let newest_only = Retention {
        newest_builds: true,
        ..Retention::default()
    };
    let before = crate::fixtures::listing(&root);
    store.now().unwrap();
    let dry = store.collect_garbage(&newest_only, true).unwrap();
    assert_eq!(dry.removed_names, vec![api_a.file_name()]);
    let mut gone = vec![digest_v1.clone(), digest_junk.clone()];
    gone.sort();
    assert_eq!(dry.removed_blobs, gone);
    assert_eq!(
        dry.freed_bytes,
        size_v1 + size_junk,
        "visible files are links to the blobs: only the blobs' bytes are freed"
    );
    assert_eq!(
        dry.kept_digests,
        BTreeSet::from([digest_v2.clone(), digest_web.clone()])
    );
    assert_eq!(
        crate::fixtures::listing(&root),
        before,
        "a dry run changes nothing"
    );

    // What is retained by digest stays, whatever its age.
    let retained = Retention {
        digests: BTreeSet::from([digest_v1.clone()]),
        newest_builds: true,
        recorded_since: None,
    };
    let report = store.collect_garbage(&retained, true).unwrap();
    assert!(report.removed_names.is_empty(), "{report:?}");
    assert_eq!(report.removed_blobs, vec![digest_junk.clone()]);

    let report = store.collect_garbage(&newest_only, false).unwrap();
    assert_eq!(report, dry, "the run removes what the dry run listed");
    assert_eq!(
        names_in(&store),
        vec![api_b.file_name(), web_a.file_name(), web_b.file_name()]
    );
    assert!(!root.join("blobs/sha256").join(digest_v1.hex()).exists());
    assert!(!root.join("blobs/sha256").join(digest_junk.hex()).exists());
    assert!(!root.join("files").join(api_a.file_name()).exists());
    assert!(
        !root.join("inputs/api/key-1").exists(),
        "the input entry of a removed name goes with it"
    );
    let api = Name::parse("api").unwrap();
    assert_eq!(
        store.find_by_input(&api, "key-2").unwrap().unwrap().name,
        api_b
    );
    assert_eq!(
        store
            .collect_garbage(&newest_only, false)
            .unwrap()
            .freed_bytes,
        0
    );

    // Without the newest-build rule, nothing unretained is kept...
    let nothing = Retention::default();
    assert_eq!(
        store
            .collect_garbage(&nothing, true)
            .unwrap()
            .removed_names
            .len(),
        3
    );
    // ...except what was recorded while the caller was deciding.
    let since = store.now().unwrap();
    let api_c = name("api", &"c".repeat(40));
    store
        .put(
            &api_c,
            &zip_v1,
            provenance(&api_c, &digest_v1, size_v1, "key-1"),
        )
        .unwrap();
    let report = store
        .collect_garbage(
            &Retention {
                recorded_since: Some(since),
                ..Retention::default()
            },
            false,
        )
        .unwrap();
    assert_eq!(report.kept_digests, BTreeSet::from([digest_v1.clone()]));
    assert_eq!(names_in(&store), vec![api_c.file_name()]);
    assert!(store.get(&api_c).unwrap().is_some());
}
