//! The projects use cases against real bare repositories as remotes, a real state store and a
//! `$SANDPIT_HOME` of their own.

use super::fixtures::*;
use super::*;

#[test]
fn an_added_project_is_listed_with_its_branch_head() {
    let world = World::new();
    let head = world.commit(Some(VALID), "first");
    world.push("main");
    let added = add(&world.context, &admin(), "shop", world.url(), "main").unwrap();
    assert_eq!(added.name, "shop");
    assert_eq!(added.git, world.url());
    assert_eq!(added.branch, "main");
    assert_eq!(added.head.as_deref(), Some(head.as_str()));
    assert!(added.fetched_at.is_some());
    assert_eq!(added.added_by, "root@example.com");

    let json = serde_json::to_value(list(&world.context, &viewer()).unwrap()).unwrap();
    let keys: Vec<&str> = json["projects"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "added_at",
            "added_by",
            "allow_forks",
            "branch",
            "fetched_at",
            "git",
            "head",
            "hooks",
            "name"
        ],
        "a listing never carries the webhook secret"
    );
    // The answer of `add` is the only place the generated secret appears.
    let secret = added.webhook_secret.as_deref().unwrap();
    assert_eq!(secret.len(), 64, "{secret}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!json.to_string().contains(secret));
    let shown = serde_json::to_value(show(&world.context, &viewer(), "shop").unwrap()).unwrap();
    assert!(!shown.to_string().contains(secret), "{shown}");
    assert_eq!(shown["hooks"]["gitlab"], "/hooks/gitlab/shop");
    assert_eq!(shown["allow_forks"], false);
    assert_eq!(json["projects"][0]["head"], head.as_str());
    let without_secret = ProjectView {
        webhook_secret: None,
        ..added.clone()
    };
    assert_eq!(
        show(&world.context, &viewer(), "shop").unwrap(),
        without_secret
    );

    use std::os::unix::fs::PermissionsExt as _;
    for dir in ["server", "server/mirrors", "server/mirrors/shop.git"] {
        let mode = std::fs::metadata(world.home.join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }
    assert_eq!(world.mirrors(), ["shop.git"]);

    // A push moves what `fetch` and `commit` answer; the registry follows.
    let second = world.commit(Some(VALID), "second");
    world.push("main");
    let (repository, fetched) = fetch(&world.context, "shop").unwrap();
    assert_eq!(fetched.as_str(), second);
    assert!(repository.is_bare());
    assert_eq!(
        show(&world.context, &viewer(), "shop")
            .unwrap()
            .head
            .as_deref(),
        Some(second.as_str())
    );
    let (_, commit_id) = commit(&world.context, "shop", Revision::Default).unwrap();
    assert_eq!(commit_id.as_str(), second);
    let (_, earlier) = commit(&world.context, "shop", Revision::Sha(head[..9].to_owned())).unwrap();
    assert_eq!(earlier.as_str(), head);

    // A mirror that went missing is made again on the next fetch.
    std::fs::remove_dir_all(world.home.join("server/mirrors/shop.git")).unwrap();
    let (_, again) = fetch(&world.context, "shop").unwrap();
    assert_eq!(again.as_str(), second);
}

#[test]
fn an_invalid_definition_refuses_the_project_with_every_diagnostic_and_leaves_nothing() {
    let world = World::new();
    world.commit(
        Some("[project]\nname = \"shop\"\nnmae = 1\n[servics.web]\n"),
        "broken",
    );
    world.push("main");
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", world.url(), "main"));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains("is invalid")
            && message.contains("sandpit.toml:3:1: unknown key `nmae` in `[project]`")
            && message.contains("unknown section `servics`")
            && message.contains("hint: fix it, commit and push"),
        "{message}"
    );
    assert!(world.mirrors().is_empty(), "{:?}", world.mirrors());
    assert!(world.listed().is_empty());

    // No sandpit.toml at all.
    world.commit(None, "none");
    world.push("main");
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", world.url(), "main"));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains("there is no sandpit.toml at the top of"),
        "{message}"
    );
    assert!(world.mirrors().is_empty() && world.listed().is_empty());
}

#[test]
fn a_definition_naming_another_project_is_refused_saying_both_names() {
    let world = World::new();
    world.commit(Some("[project]\nname = \"store\"\n"), "first");
    world.push("main");
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", world.url(), "main"));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains("names the project `store`, not `shop`")
            && message.contains("register it as `store`, or set `[project] name = \"shop\"`"),
        "{message}"
    );
    assert!(world.mirrors().is_empty() && world.listed().is_empty());
}

#[test]
fn a_name_is_registered_once_until_it_is_removed() {
    let world = World::new();
    world.commit(Some(VALID), "first");
    world.push("main");
    add(&world.context, &admin(), "shop", world.url(), "main").unwrap();
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", world.url(), "main"));
    assert_eq!(kind, ErrorKind::Conflict);
    assert!(
        message.contains("project `shop` is already registered"),
        "{message}"
    );
    assert_eq!(
        world.mirrors(),
        ["shop.git"],
        "the first one's mirror stays"
    );

    std::fs::create_dir_all(world.home.join("projects/shop/artifacts")).unwrap();
    let removed = remove(&world.context, &admin(), "shop").unwrap();
    assert_eq!(removed.project.name, "shop");
    assert_eq!(removed.removed_by, "root@example.com");
    assert!(!removed.removed_at.is_empty());
    assert_eq!(removed.kept, "projects/shop/");
    assert!(
        removed.message.contains("mirror deleted")
            && removed.message.contains("under projects/shop/ are kept"),
        "{}",
        removed.message
    );
    assert!(world.mirrors().is_empty());
    assert!(world.home.join("projects/shop/artifacts").is_dir());
    assert!(world.listed().is_empty());
    let (kind, _) = refusal(show(&world.context, &viewer(), "shop"));
    assert_eq!(kind, ErrorKind::NotFound);
    let (kind, message) = refusal(remove(&world.context, &admin(), "shop"));
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(message.contains("there is no project `shop`"), "{message}");
    let (kind, _) = refusal(commit(&world.context, "shop", Revision::Default));
    assert_eq!(kind, ErrorKind::NotFound);

    // Added again, from another branch.
    world.git(None, &["checkout", "-q", "-b", "release"]);
    let release = world.commit(Some(VALID), "release");
    world.push("release");
    let again = add(&world.context, &admin(), "shop", world.url(), "release").unwrap();
    assert_eq!(
        (again.branch.as_str(), again.head.as_deref()),
        ("release", Some(release.as_str()))
    );
    assert_eq!(world.listed(), ["shop"]);
}

#[test]
fn only_admins_add_and_remove_and_every_role_reads() {
    let world = World::new();
    world.commit(Some(VALID), "first");
    world.push("main");
    for role in [
        Role::Viewer,
        Role::Developer,
        Role::Deployer,
        Role::Approver,
    ] {
        let principal = Principal::named("someone@example.com", [role]);
        let (kind, message) = refusal(add(&world.context, &principal, "shop", world.url(), "main"));
        assert_eq!(kind, ErrorKind::Forbidden, "{role:?}");
        assert!(
            message.contains("adding a project needs the `admin` role")
                && message.contains(role.as_str()),
            "{message}"
        );
    }
    assert!(world.mirrors().is_empty() && world.listed().is_empty());
    add(&world.context, &admin(), "shop", world.url(), "main").unwrap();
    let developer = Principal::named("dev@example.com", [Role::Developer]);
    let (kind, message) = refusal(remove(&world.context, &developer, "shop"));
    assert_eq!(kind, ErrorKind::Forbidden);
    assert!(message.contains("needs the `admin` role"), "{message}");
    assert_eq!(list(&world.context, &developer).unwrap().projects.len(), 1);
    assert_eq!(
        show(&world.context, &developer, "shop").unwrap().name,
        "shop"
    );
    let nobody = Principal::named("nobody@example.com", []);
    let (kind, message) = refusal(list(&world.context, &nobody));
    assert_eq!(kind, ErrorKind::Forbidden);
    assert!(message.contains("yours: none"), "{message}");
}

#[test]
fn bad_names_urls_and_unreachable_repositories_are_refused_clearly() {
    let world = World::new();
    let table: &[(&str, &str, &str, &str)] = &[
        ("Shop!", "/srv/x.git", "main", "a project name"),
        ("shop", "ext::sh -c touch% /tmp/x", "main", "remote-helper"),
        ("shop", "--upload-pack=x", "main", "starts with `-`"),
        ("shop", "/srv/x.git", "--all", "is not a branch name"),
    ];
    for (name, url, branch, fragment) in table {
        let (kind, message) = refusal(add(&world.context, &admin(), name, url, branch));
        assert_eq!(kind, ErrorKind::InvalidInput, "{message}");
        assert!(message.contains(fragment), "{message}");
    }

    // Unreachable: a path with no repository, and a loopback port nobody listens on (the
    // password in the URL never shows).
    let missing = world.home.join("no-such.git");
    let (kind, message) = refusal(add(
        &world.context,
        &admin(),
        "shop",
        missing.to_str().unwrap(),
        "main",
    ));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains("cannot add project `shop`: fetching")
            && message.contains("does not appear to be a git repository")
            && message.contains("hint: check that the URL is right"),
        "{message}"
    );
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://bob:pa55word-xyz@127.0.0.1:{port}/shop.git");
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", &url, "main"));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains(&format!("http://***@127.0.0.1:{port}/shop.git"))
            && !message.contains("pa55word"),
        "{message}"
    );

    // The remote exists but has no such branch.
    world.commit(Some(VALID), "first");
    world.push("main");
    let (kind, message) = refusal(add(&world.context, &admin(), "shop", world.url(), "trunk"));
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(
        message.contains("no branch `trunk`") && message.contains("it has main"),
        "{message}"
    );
    assert!(world.mirrors().is_empty() && world.listed().is_empty());

    // A registered project whose remote went away: fetching is unavailable, not internal.
    add(&world.context, &admin(), "shop", world.url(), "main").unwrap();
    std::fs::rename(&world.remote, world.home.join("moved.git")).unwrap();
    let (kind, message) = refusal(fetch(&world.context, "shop"));
    assert_eq!(kind, ErrorKind::Unavailable, "{message}");
    assert!(message.contains("fetching"), "{message}");
}

#[test]
fn the_server_builds_only_pushed_commits_with_a_valid_definition() {
    let world = World::new();
    let first = world.commit(Some(VALID), "first");
    world.push("main");
    add(&world.context, &admin(), "shop", world.url(), "main").unwrap();

    let local = world.commit(Some(VALID), "not pushed");
    let (kind, message) = refusal(commit(&world.context, "shop", Revision::Sha(local.clone())));
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(
        message.contains(&format!(
            "commit {} is not in {}; push it first",
            &local[..12],
            world.url()
        )),
        "{message}"
    );
    let (kind, _) = refusal(commit(&world.context, "shop", Revision::Sha("main".into())));
    assert_eq!(kind, ErrorKind::InvalidInput);
    world.push("main");
    let (repository, pushed) =
        commit(&world.context, "shop", Revision::Sha(local.clone())).unwrap();
    assert_eq!(pushed.as_str(), local);
    assert_eq!(
        repository
            .read_file(&local, "sandpit.toml")
            .unwrap()
            .as_deref(),
        Some(VALID)
    );

    // A push that breaks the definition: the branch is refused with the diagnostics, while the
    // earlier valid commits can still be built.
    let broken = world.commit(Some("[project]\nname = \"shop\"\nnmae = 1\n"), "broken");
    world.push("main");
    for revision in [Revision::Default, Revision::Branch("main".into())] {
        let (kind, message) = refusal(commit(&world.context, "shop", revision));
        assert_eq!(kind, ErrorKind::InvalidInput);
        assert!(
            message.contains(&format!("sandpit.toml at {} (main)", &broken[..12]))
                && message.contains("unknown key `nmae` in `[project]`"),
            "{message}"
        );
    }
    let (_, earlier) = commit(&world.context, "shop", Revision::Sha(first.clone())).unwrap();
    assert_eq!(earlier.as_str(), first);
    let (kind, message) = refusal(commit(
        &world.context,
        "shop",
        Revision::Branch("gone".into()),
    ));
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(message.contains("no branch `gone`"), "{message}");
}
