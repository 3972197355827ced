//! The git module against real repositories.

use std::fs;

use sandpit_build::{GitError, Repository};

use crate::fixtures::TestRepo;

#[test]
fn discovers_root_and_prefix() {
    let test = TestRepo::new();
    test.write("project/api/main.sh", "echo hi\n");
    test.commit("init");
    let root = test.root.canonicalize().unwrap();
    let cases = [
        ("", ""),
        ("project", "project"),
        ("project/api", "project/api"),
    ];
    for (dir, prefix) in cases {
        let repo = test.open(&test.root.join(dir));
        assert_eq!(repo.root().canonicalize().unwrap(), root, "{dir}");
        assert_eq!(repo.prefix(), prefix, "{dir}");
    }

    let outside = tempfile::tempdir().unwrap();
    let error = Repository::discover_with_env(outside.path(), test.env()).unwrap_err();
    assert!(
        matches!(error, GitError::NotARepository { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("run `git init`"), "{error}");
}

#[test]
fn resolves_revisions() {
    let test = TestRepo::new();
    let repo = test.open(&test.root);
    let error = repo.resolve("HEAD").unwrap_err();
    assert!(
        error.to_string().contains("has anything been committed"),
        "{error}"
    );

    test.write("a.txt", "a");
    let first = test.commit("first");
    test.write("a.txt", "b");
    let second = test.commit("second");
    test.git(&["tag", "v1", &first]);

    let cases: &[(&str, Result<&str, &str>)] = &[
        ("HEAD", Ok(&second)),
        ("main", Ok(&second)),
        ("HEAD~1", Ok(&first)),
        ("v1", Ok(&first)),
        (&second[..7], Ok(&second)),
        (&first, Ok(&first)),
        (
            "no-such-branch",
            Err("`no-such-branch` does not name a commit"),
        ),
        ("--output=/tmp/x", Err("does not name a commit")),
    ];
    for (rev, expected) in cases {
        match (repo.resolve(rev), expected) {
            (Ok(id), Ok(want)) => assert_eq!(id.as_str(), *want, "{rev}"),
            (Err(error), Err(fragment)) => {
                assert!(error.to_string().contains(fragment), "{rev}: {error}")
            }
            (got, want) => panic!("{rev}: got {got:?}, want {want:?}"),
        }
    }
    assert_eq!(repo.current_branch().unwrap().as_deref(), Some("main"));
    assert_eq!(
        repo.user_email().unwrap().as_deref(),
        Some("builder@example.com")
    );
    test.git(&["checkout", "-q", "--detach", "HEAD"]);
    assert_eq!(repo.current_branch().unwrap(), None);
}

#[test]
fn dirty_files_are_scoped_to_the_project_and_skip_ignored_files() {
    let test = TestRepo::new();
    test.write("project/.gitignore", "*.log\n");
    test.write("project/api/main.sh", "v1");
    test.write("project/api/gone.sh", "v1");
    test.write("other/file.txt", "v1");
    test.commit("init");
    let repo = test.open(&test.root.join("project"));
    assert_eq!(repo.dirty_files().unwrap(), Vec::<String>::new());

    test.write("project/api/main.sh", "v2");
    fs::remove_file(test.root.join("project/api/gone.sh")).unwrap();
    test.write("project/api/new dir/untracked file.txt", "new");
    test.write("project/api/debug.log", "ignored");
    test.write("other/file.txt", "v2 outside the project");
    test.write("project/staged.txt", "staged");
    test.git(&["add", "project/staged.txt"]);

    assert_eq!(
        repo.dirty_files().unwrap(),
        vec![
            "project/api/gone.sh".to_owned(),
            "project/api/main.sh".to_owned(),
            "project/api/new dir/untracked file.txt".to_owned(),
            "project/staged.txt".to_owned(),
        ]
    );
    let whole = test.open(&test.root);
    assert!(whole
        .dirty_files()
        .unwrap()
        .contains(&"other/file.txt".to_owned()));
}

#[test]
fn snapshot_captures_changes_without_touching_the_index() {
    let test = TestRepo::new();
    test.write("project/api/main.sh", "v1");
    test.write("other/file.txt", "v1");
    test.commit("init");
    let repo = test.open(&test.root.join("project"));
    let head_tree = repo.tree_id("HEAD", "").unwrap().unwrap();

    let clean = repo.snapshot_working_tree().unwrap();
    assert_eq!(
        clean.tree, head_tree,
        "no changes: the snapshot is HEAD's tree"
    );

    test.write("project/api/main.sh", "v2");
    test.write("project/api/untracked.txt", "new");
    test.write("other/file.txt", "outside the project");
    let status_before = test.git(&["status", "--porcelain"]);
    let index_before = fs::read(test.root.join(".git/index")).unwrap();

    let snapshot = repo.snapshot_working_tree().unwrap();
    assert_ne!(snapshot.tree, head_tree);
    assert_eq!(snapshot.diff_hash.len(), 64);
    assert_eq!(
        repo.read_file(&snapshot.tree, "project/api/main.sh")
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    assert_eq!(
        repo.read_file(&snapshot.tree, "project/api/untracked.txt")
            .unwrap()
            .as_deref(),
        Some("new")
    );
    assert_eq!(
        repo.read_file(&snapshot.tree, "other/file.txt")
            .unwrap()
            .as_deref(),
        Some("v1"),
        "outside the prefix stays as HEAD"
    );

    assert_eq!(test.git(&["diff", "--cached"]), "", "nothing staged");
    assert_eq!(test.git(&["status", "--porcelain"]), status_before);
    assert_eq!(
        fs::read(test.root.join(".git/index")).unwrap(),
        index_before,
        "the index file is untouched"
    );

    // Same changes, same hash; different changes, different hash.
    assert_eq!(repo.snapshot_working_tree().unwrap(), snapshot);
    test.write("project/api/main.sh", "v3");
    assert_ne!(
        repo.snapshot_working_tree().unwrap().diff_hash,
        snapshot.diff_hash
    );
}

#[test]
fn tree_ids_and_files_at_a_revision() {
    let test = TestRepo::new();
    test.write("api/main.sh", "v1");
    test.write("web/index.html", "v1");
    let first = test.commit("first");
    test.write("web/index.html", "v2");
    let second = test.commit("second");
    let repo = test.open(&test.root);

    assert_eq!(
        repo.tree_id(&first, "api").unwrap(),
        repo.tree_id(&second, "api").unwrap()
    );
    assert_ne!(
        repo.tree_id(&first, "web").unwrap(),
        repo.tree_id(&second, "web").unwrap()
    );
    assert_eq!(repo.tree_id(&first, "missing").unwrap(), None);
    assert!(repo.tree_id("nope", "api").is_err());
    assert_eq!(
        repo.read_file(&first, "web/index.html").unwrap().as_deref(),
        Some("v1")
    );
    assert_eq!(repo.read_file(&first, "web/missing").unwrap(), None);
}

#[test]
fn tree_ids_in_one_batch_answer_as_tree_id_does_one_by_one() {
    let test = TestRepo::new();
    test.write("api/main.sh", "v1");
    test.write("web/index.html", "v1");
    test.write("odd name/with spaces.txt", "x");
    test.write("lib/util.sh", "u");
    let first = test.commit("first");
    let repo = test.open(&test.root);
    let paths: Vec<String> = [
        "api",
        "missing",
        "",
        "web/index.html",
        "odd name",
        "lib",
        "api/nope",
        ".",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let one_by_one: Vec<Option<String>> = paths
        .iter()
        .map(|p| repo.tree_id(&first, p).unwrap())
        .collect();
    assert_eq!(repo.tree_ids(&first, &paths).unwrap(), one_by_one);
    assert_eq!(one_by_one[1], None);
    assert!(one_by_one[0].is_some() && one_by_one[4].is_some());
    assert_eq!(
        repo.tree_ids(&first, &[]).unwrap(),
        Vec::<Option<String>>::new()
    );
    // A name the line-based batch cannot carry is still answered.
    let odd = vec!["api".to_owned(), "new\nline".to_owned()];
    assert_eq!(
        repo.tree_ids(&first, &odd).unwrap(),
        vec![one_by_one[0].clone(), None]
    );
    // An unknown revision is an error, as with tree_id, not a list of `None`s.
    assert!(matches!(
        repo.tree_ids("nope", &paths),
        Err(sandpit_build::git::GitError::UnknownRevision { .. })
    ));
    assert!(repo.tree_ids(&first, &["api".to_owned()]).is_ok());
}

#[test]
fn extract_gives_exactly_the_committed_content() {
    let test = TestRepo::new();
    test.write(".gitignore", "*.log\n");
    test.write("api/main.sh", "committed");
    test.write("api/run.sh", "#!/bin/sh\n");
    std::os::unix::fs::symlink("main.sh", test.root.join("api/link")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            test.root.join("api/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let commit = test.commit("init");
    test.write("api/main.sh", "edited in the work tree");
    test.write("api/untracked.txt", "untracked");
    test.write("api/debug.log", "ignored");
    let status_before = test.git(&["status", "--porcelain"]);

    let repo = test.open(&test.root);
    let dest = tempfile::tempdir().unwrap();
    let out = dest.path().join("checkout");
    repo.extract(&commit, &out).unwrap();

    assert_eq!(
        fs::read_to_string(out.join("api/main.sh")).unwrap(),
        "committed"
    );
    assert!(!out.join("api/untracked.txt").exists());
    assert!(!out.join("api/debug.log").exists());
    assert_eq!(
        fs::read_link(out.join("api/link")).unwrap().to_str(),
        Some("main.sh")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(
            fs::metadata(out.join("api/run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o111,
            0
        );
    }
    assert_eq!(
        fs::read_to_string(test.root.join("api/main.sh")).unwrap(),
        "edited in the work tree"
    );
    assert_eq!(test.git(&["status", "--porcelain"]), status_before);
    assert!(repo.extract("no-such-rev", &dest.path().join("x")).is_err());
}

#[test]
fn ancestry_and_directory_listings() {
    let test = TestRepo::new();
    test.write("db/migrations/002_b.sql", "b");
    test.write("db/migrations/001_a.sql", "a");
    test.write("db/migrations/nested/x.sql", "x");
    let first = test.commit("first");
    test.write("db/seed.sql", "s");
    let second = test.commit("second");
    let repo = test.open(&test.root);
    let (first, second) = (
        repo.resolve(&first).unwrap(),
        repo.resolve(&second).unwrap(),
    );
    assert!(repo.is_ancestor(&first, &second).unwrap());
    assert!(repo.is_ancestor(&second, &second).unwrap());
    assert!(!repo.is_ancestor(&second, &first).unwrap());

    let listed = repo.list_files(second.as_str(), "db/migrations").unwrap();
    assert_eq!(
        listed,
        Some(vec!["001_a.sql".to_owned(), "002_b.sql".to_owned()]),
        "files only, sorted"
    );
    assert_eq!(repo.list_files(first.as_str(), "db/nothing").unwrap(), None);
}
