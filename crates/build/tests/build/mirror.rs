//! Mirrors of real bare repositories (`file://` URLs and plain paths): fetching, resolving
//! branches and shas, hostile URLs, failures, and building from the mirror.

use std::fs;

use sandpit_artifact::ArtifactStore;
use sandpit_build::{
    build, BuildRequest, GitError, Mirror, MirrorError, NoProgress, Outcome, RemoteUrl, Repository,
};
use sandpit_domain::{CommitId, Version};

use crate::execute::{component, spec, FakeEngine};
use crate::fixtures::TestRepo;

/// A work tree with one commit on `main` pushed to a bare remote; the remote's path.
fn pushed() -> (TestRepo, std::path::PathBuf, String) {
    let test = TestRepo::new();
    test.write("sandpit.toml", "[project]\nname = \"demo\"\n");
    test.write("api/main.sh", "echo api\n");
    test.write("web/index.html", "<h1>v1</h1>\n");
    let head = test.commit("first");
    let remote = test.bare_remote("remote.git");
    test.git(&["push", "-q", remote.to_str().unwrap(), "main"]);
    (test, remote, head)
}

fn mirror_of(test: &TestRepo, url: &str) -> Mirror {
    let url = RemoteUrl::parse(url).unwrap();
    Mirror::create(&test.scratch_path("mirror.git"), url, test.env()).unwrap()
}

fn commit(sha: &str) -> CommitId {
    CommitId::parse(sha).unwrap()
}

#[test]
fn a_mirror_fetches_every_branch_and_follows_pushes_and_deletions() {
    let (test, remote, first) = pushed();
    let remote_path = remote.to_str().unwrap().to_owned();
    test.git(&["push", "-q", &remote_path, "main:feature/x"]);
    for url in [format!("file://{remote_path}"), remote_path.clone()] {
        let dir = test.scratch_path("mirror.git");
        let _ = fs::remove_dir_all(&dir);
        let mirror = mirror_of(&test, &url);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{url}");

        let report = mirror.fetch().unwrap();
        let branches: Vec<&str> = report.heads.keys().map(String::as_str).collect();
        assert_eq!(branches, ["feature/x", "main"], "{url}");
        assert_eq!(report.changes.len(), 2, "{url}: both are new");
        assert!(report.changes.iter().all(|c| c.before.is_none()));
        assert_eq!(mirror.resolve_branch("main").unwrap(), commit(&first));
        assert_eq!(mirror.resolve_branch("feature/x").unwrap(), commit(&first));
        assert!(!dir.join("FETCH_HEAD").exists(), "no file keeps the URL");
    }

    // A push moves main; a deleted branch goes away here too; a fetch with nothing new says so.
    let mirror = Mirror::open(
        &test.scratch_path("mirror.git"),
        RemoteUrl::parse(&remote_path).unwrap(),
        test.env(),
    )
    .unwrap();
    test.write("web/index.html", "<h1>v2</h1>\n");
    let second = test.commit("second");
    test.git(&["push", "-q", &remote_path, "main"]);
    test.git(&["push", "-q", &remote_path, "--delete", "feature/x"]);
    let report = mirror.fetch().unwrap();
    let changes: Vec<(String, Option<CommitId>, Option<CommitId>)> = report
        .changes
        .iter()
        .map(|c| (c.branch.clone(), c.before.clone(), c.after.clone()))
        .collect();
    assert_eq!(
        changes,
        [
            ("feature/x".to_owned(), Some(commit(&first)), None),
            (
                "main".to_owned(),
                Some(commit(&first)),
                Some(commit(&second))
            ),
        ]
    );
    assert_eq!(mirror.resolve_branch("main").unwrap(), commit(&second));
    assert!(mirror.fetch().unwrap().changes.is_empty());

    let error = mirror.resolve_branch("feature/x").unwrap_err();
    assert!(
        matches!(error, MirrorError::BranchNotFound { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("no branch `feature/x`")
            && message.contains(&remote_path)
            && message.contains("it has main"),
        "{message}"
    );
    let error = mirror.resolve_branch("--all").unwrap_err();
    assert!(
        matches!(error, MirrorError::InvalidBranch { .. }),
        "{error:?}"
    );
}

#[test]
fn a_commit_that_was_not_pushed_is_named_with_what_to_do() {
    let (test, remote, first) = pushed();
    let remote_path = remote.to_str().unwrap().to_owned();
    let mirror = mirror_of(&test, &format!("file://{remote_path}"));
    mirror.fetch().unwrap();
    test.write("api/main.sh", "echo local only\n");
    let local = test.commit("not pushed");
    mirror.fetch().unwrap();

    assert!(mirror.has_commit(&first).unwrap());
    assert!(mirror.has_commit(&first[..7]).unwrap());
    assert_eq!(mirror.resolve_commit(&first[..10]).unwrap(), commit(&first));
    assert!(!mirror.has_commit(&local).unwrap());
    let error = mirror.resolve_commit(&local).unwrap_err();
    assert!(
        matches!(error, MirrorError::CommitNotFound { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "commit {} is not in file://{remote_path}; push it first",
            &local[..12]
        )),
        "{error}"
    );
    for rev in ["main", "HEAD~1", "--all", "abc"] {
        let error = mirror.resolve_commit(rev).unwrap_err();
        assert!(
            matches!(error, MirrorError::InvalidCommitId { .. }),
            "{rev}: {error:?}"
        );
    }

    test.git(&["push", "-q", &remote_path, "main"]);
    mirror.fetch().unwrap();
    assert_eq!(mirror.resolve_commit(&local).unwrap(), commit(&local));
}

#[test]
fn a_bare_repository_answers_what_a_build_asks_like_its_checkout() {
    let (test, _remote, first) = pushed();
    test.write("web/index.html", "<h1>v2</h1>\n");
    let second = test.commit("second");
    let checkout = test.open(&test.root);
    let mirror = mirror_of(&test, test.root.to_str().unwrap());
    mirror.fetch().unwrap();
    let bare = mirror.repository();
    assert!(bare.is_bare() && !checkout.is_bare());
    assert_eq!(bare.root(), test.scratch_path("mirror.git"));
    assert_eq!(bare.prefix(), "");

    assert_eq!(bare.resolve("main").unwrap(), commit(&second));
    assert_eq!(bare.resolve(&first).unwrap(), commit(&first));
    assert_eq!(
        bare.read_file(&second, "sandpit.toml").unwrap(),
        checkout.read_file(&second, "sandpit.toml").unwrap()
    );
    assert_eq!(bare.read_file(&second, "nothere").unwrap(), None);
    let paths = ["api".to_owned(), "web".to_owned(), "nothere".to_owned()];
    assert_eq!(
        bare.tree_ids(&second, &paths).unwrap(),
        checkout.tree_ids(&second, &paths).unwrap()
    );
    assert_eq!(
        bare.list_files(&second, "api").unwrap(),
        Some(vec!["main.sh".to_owned()])
    );
    assert!(bare.is_ancestor(&commit(&first), &commit(&second)).unwrap());
    assert!(!bare.is_ancestor(&commit(&second), &commit(&first)).unwrap());
    assert_eq!(
        bare.commit_time(&commit(&second)).unwrap(),
        checkout.commit_time(&commit(&second)).unwrap()
    );
    let out = tempfile::tempdir().unwrap();
    bare.extract(&first, &out.path().join("tree")).unwrap();
    assert_eq!(
        fs::read_to_string(out.path().join("tree/web/index.html")).unwrap(),
        "<h1>v1</h1>\n"
    );
    assert!(
        !test.scratch_path("mirror.git").join("web").exists(),
        "nothing is checked out into the mirror"
    );

    // What needs a working tree answers "none" or says why not, without touching git's guesses.
    assert_eq!(bare.dirty_files().unwrap(), Vec::<String>::new());
    assert_eq!(bare.current_branch().unwrap(), None);
    let error = bare.snapshot_working_tree().unwrap_err();
    assert!(matches!(error, GitError::NoWorkingTree { .. }), "{error:?}");
    assert!(error.to_string().contains("bare repository"), "{error}");

    // A work tree is not a bare repository.
    let error = Repository::open_bare(&test.root, test.env()).unwrap_err();
    assert!(
        matches!(error, GitError::NotARepository { .. }),
        "{error:?}"
    );
    let error = Mirror::open(
        &test.root,
        RemoteUrl::parse("/srv/x.git").unwrap(),
        test.env(),
    )
    .unwrap_err();
    assert!(matches!(error, MirrorError::NotAMirror { .. }), "{error:?}");
}

#[test]
fn a_build_from_the_mirror_has_the_digests_of_a_build_from_the_checkout() {
    let (test, remote, head) = pushed();
    let mirror = mirror_of(&test, remote.to_str().unwrap());
    mirror.fetch().unwrap();
    let checkout = test.open(&test.root);
    let spec = spec(vec![
        component(
            "api",
            Some("mkdir -p out && cp main.sh out/ && echo $SOURCE_DATE_EPOCH > out/epoch"),
            "out",
        ),
        component("web", None, "."),
    ]);
    let state = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for (label, repo) in [("checkout", &checkout), ("mirror", mirror.repository())] {
        let store = ArtifactStore::open(&state.path().join(label).join("store")).unwrap();
        let request = BuildRequest {
            repo,
            version: Version::clean(commit(&head)),
            treeish: head.clone(),
            spec: &spec,
            store: &store,
            log_dir: state.path().join(label).join("logs"),
            sandpit_version: "0.1.0-test",
            base_env: vec![("PATH".to_owned(), crate::fixtures::PATH.to_owned())],
            project_prefix: repo.prefix().to_owned(),
            models: Some(&FakeEngine),
            terraform: None,
        };
        let report = build(request, &mut NoProgress).unwrap();
        assert!(
            report
                .components
                .iter()
                .all(|c| c.outcome == Outcome::Built),
            "{label}: {report:?}"
        );
        digests.push(
            report
                .components
                .iter()
                .map(|c| (c.name.to_string(), c.artifact.digest.to_string()))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(digests[0].len(), 2);
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn hostile_urls_never_reach_a_transport_that_runs_commands() {
    let test = TestRepo::new();
    let marker = test.scratch_path("pwned");
    for url in [
        format!("ext::sh -c touch% {}", marker.display()),
        "fd::0".to_owned(),
        format!("--upload-pack=touch {}", marker.display()),
    ] {
        let error = RemoteUrl::parse(&url).unwrap_err();
        assert!(
            matches!(error, MirrorError::UnsafeUrl { .. }),
            "{url}: {error:?}"
        );
    }

    // A URL that passes the check but that git's configuration rewrites into `ext::` (which
    // that configuration even allows) is stopped by GIT_ALLOW_PROTOCOL.
    let config = format!(
        "[protocol \"ext\"]\n\tallow = always\n\
         [url \"ext::sh -c touch% {}% #\"]\n\tinsteadOf = https://rewritten.invalid/\n",
        marker.display()
    );
    fs::write(test.home.join(".gitconfig"), config).unwrap();
    let mirror = mirror_of(&test, "https://rewritten.invalid/app.git");
    let error = mirror.fetch().unwrap_err();
    assert!(
        matches!(error, MirrorError::FetchFailed { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not allowed"), "{error}");
    assert!(!marker.exists(), "the ext:: command ran");
}

#[test]
fn failed_fetches_say_what_git_said_with_credentials_redacted() {
    let test = TestRepo::new();
    let missing = test.scratch_path("no-such-repo.git");
    let mirror = mirror_of(&test, missing.to_str().unwrap());
    let error = mirror.fetch().unwrap_err();
    assert!(
        matches!(error, MirrorError::FetchFailed { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("fetching {} failed", missing.display()))
            && message.contains("does not appear to be a git repository")
            && message.contains("\nhint: check that the URL is right"),
        "{message}"
    );

    // Nothing listens on the port (loopback only); the password never shows.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://alice:hunter22secret@127.0.0.1:{port}/app.git");
    fs::remove_dir_all(test.scratch_path("mirror.git")).unwrap();
    let mirror = mirror_of(&test, &url);
    let error = mirror.fetch().unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, MirrorError::FetchFailed { .. }),
        "{error:?}"
    );
    assert!(
        message.contains(&format!("http://***@127.0.0.1:{port}/app.git")),
        "{message}"
    );
    assert!(
        !message.contains("hunter22secret") && !format!("{error:?}").contains("hunter22secret"),
        "{message}"
    );
    let config = fs::read_to_string(test.scratch_path("mirror.git").join("config")).unwrap();
    assert!(!config.contains("hunter22secret"), "{config}");

    // A mirror is never made over an existing directory.
    let error = Mirror::create(
        &test.scratch_path("mirror.git"),
        RemoteUrl::parse(&url).unwrap(),
        test.env(),
    )
    .unwrap_err();
    assert!(matches!(error, MirrorError::Io { .. }), "{error:?}");
}
