//! A `Source::Commit` (what a server builds from) works through the use cases with real git:
//! only its commit is read, and what needs a checkout is refused with its kind.

use sandpit_build::execute::NoProgress;
use sandpit_domain::CommitId;
use sandpit_ops::build::{build, BuildOptions, BuildOutcome};
use sandpit_ops::error::{kind_of, ErrorKind};
use sandpit_ops::principal::Principal;
use sandpit_ops::Context;

use crate::fixtures::TestRepo;

const ALPHA: &str = r#"
[project]
name = "alpha"

[environments.dev]
biomes = true

[environments.staging]

[services.api]
path = "api"
build = "mkdir -p out && cp app.sh out/ && echo built > out/stamp.txt"
output = "out"
run = "sh app.sh"

[jobs.seed]
path = "seed"
run = "true"
"#;

/// A repository whose first commit is project `alpha` (with a `staging` environment), and whose
/// second renames it `beta` and drops `staging`; HEAD is the second.
fn two_commits() -> (TestRepo, CommitId, CommitId) {
    let repo = TestRepo::new();
    repo.write("sandpit.toml", ALPHA);
    repo.write("api/app.sh", "echo hello\n");
    repo.write("seed/seed.sql", "select 1;\n");
    let alpha = repo.commit("alpha");
    let beta_spec = ALPHA
        .replace("name = \"alpha\"", "name = \"beta\"")
        .replace("[environments.staging]\n", "");
    repo.write("sandpit.toml", &beta_spec);
    repo.write("api/app.sh", "echo hello from beta\n");
    let beta = repo.commit("beta");
    (repo, alpha, beta)
}

fn local() -> Principal {
    Principal::local(None)
}

fn digests(outcome: &BuildOutcome) -> Vec<(String, String)> {
    outcome
        .report
        .components
        .iter()
        .map(|c| (c.name.to_string(), c.artifact.digest.to_string()))
        .collect()
}

fn build_with(context: &Context, options: &BuildOptions) -> anyhow::Result<BuildOutcome> {
    build(context, options, &mut NoProgress)
}

#[test]
fn a_commit_builds_the_same_artifacts_as_its_checkout_and_ignores_the_work_tree() {
    let (repo, _alpha, beta) = two_commits();
    let from_checkout = build_with(&repo.checkout("home-a", local()), &BuildOptions::default())
        .expect("the clean checkout builds");
    // An uncommitted edit: the checkout refuses it, the commit never sees it.
    repo.write("api/app.sh", "echo not committed\n");
    let refused = build_with(&repo.checkout("home-a", local()), &BuildOptions::default())
        .expect_err("a dirty checkout is refused");
    assert_eq!(kind_of(&refused), ErrorKind::Conflict, "{refused:#}");

    // Another home: nothing to reuse, so the commit is really built again.
    let from_commit = build_with(
        &repo.at_commit("home-b", &beta, local()),
        &BuildOptions::default(),
    )
    .expect("the commit builds");
    assert_eq!(from_commit.report.version.to_string(), beta.to_string());
    assert_eq!(from_commit.treeish, beta.to_string());
    assert_eq!(from_commit.spec.project.name.as_str(), "beta");
    assert_eq!(digests(&from_commit), digests(&from_checkout));
    assert_eq!(digests(&from_commit).len(), 2);
}

#[test]
fn a_commit_behind_head_builds_that_commit_and_its_own_sandpit_toml() {
    let (repo, alpha, beta) = two_commits();
    let older = build_with(
        &repo.at_commit("home", &alpha, local()),
        &BuildOptions::default(),
    )
    .expect("the older commit builds");
    assert_eq!(older.report.version.to_string(), alpha.to_string());
    assert_eq!(older.spec.project.name.as_str(), "alpha");
    let head = build_with(&repo.checkout("home", local()), &BuildOptions::default()).unwrap();
    assert_eq!(head.report.version.to_string(), beta.to_string());
    let api = |outcome: &BuildOutcome| digests(outcome)[0].clone();
    assert_ne!(
        api(&older),
        api(&head),
        "app.sh differs between the commits"
    );
}

#[test]
fn a_commit_source_refuses_other_revisions_and_dirty_builds() {
    let (repo, alpha, beta) = two_commits();
    let context = repo.at_commit("home", &alpha, local());
    // (options, kind, words of the message)
    let cases = [
        (
            BuildOptions {
                rev: None,
                allow_dirty: true,
            },
            ErrorKind::InvalidInput,
            "--allow-dirty",
        ),
        (
            BuildOptions {
                rev: Some("HEAD".into()),
                allow_dirty: false,
            },
            ErrorKind::InvalidInput,
            "the only one it builds",
        ),
        (
            BuildOptions {
                rev: Some("no-such-branch".into()),
                allow_dirty: false,
            },
            ErrorKind::NotFound,
            "`no-such-branch` does not name a commit",
        ),
    ];
    for (options, kind, words) in cases {
        let error = build_with(&context, &options).expect_err(words);
        assert_eq!(kind_of(&error), kind, "{options:?}: {error:#}");
        assert!(format!("{error:#}").contains(words), "{error:#}");
    }
    // Naming the commit itself (as a revision) is what it builds anyway.
    let named = build_with(
        &context,
        &BuildOptions {
            rev: Some(alpha.to_string()[..12].to_owned()),
            allow_dirty: false,
        },
    )
    .expect("its own commit, by a short id");
    assert_eq!(named.report.version.to_string(), alpha.to_string());
    // A commit the repository does not have is a lookup that found nothing.
    let missing = CommitId::parse(&"0".repeat(40)).unwrap();
    let error = build_with(
        &repo.at_commit("home", &missing, local()),
        &BuildOptions::default(),
    )
    .expect_err("an unknown commit");
    assert_eq!(kind_of(&error), ErrorKind::NotFound, "{error:#}");
    assert_ne!(beta, alpha);
}

#[test]
fn a_commit_without_sandpit_toml_is_not_found() {
    let repo = TestRepo::new();
    repo.write("README", "nothing here yet\n");
    let bare = repo.commit("no project yet");
    let context = repo.at_commit("home", &bare, local());
    let error = context.source.spec().expect_err("no sandpit.toml");
    assert_eq!(kind_of(&error), ErrorKind::NotFound, "{error:#}");
    assert!(
        error
            .to_string()
            .contains(&format!("sandpit.toml does not exist at {bare}")),
        "{error:#}"
    );
    let error = build_with(&context, &BuildOptions::default()).expect_err("nothing to build");
    assert_eq!(kind_of(&error), ErrorKind::NotFound, "{error:#}");
}

#[tokio::test]
async fn reads_use_the_commits_sandpit_toml_not_the_work_trees() {
    let (repo, alpha, _beta) = two_commits();
    // HEAD (`beta`) has no `staging`; the older commit does.
    let at_alpha = repo.at_commit("home", &alpha, local());
    let checkout = repo.checkout("home", local());
    assert!(sandpit_ops::history::history(&at_alpha, "staging")
        .expect("staging is an environment at alpha")
        .is_empty());
    let error = sandpit_ops::history::history(&checkout, "staging").unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::NotFound, "{error:#}");
    assert!(error.to_string().contains("project `beta`"), "{error}");

    // Without any sandpit.toml in the work tree, the commit still has its own.
    std::fs::remove_file(repo.root.join("sandpit.toml")).unwrap();
    let listing = sandpit_ops::ls::ls(&at_alpha)
        .await
        .expect("ls at a commit");
    assert!(!listing.daemon_running);
    let error = sandpit_ops::ls::ls(&checkout).await.unwrap_err();
    assert!(error.to_string().contains("no sandpit.toml"), "{error}");
    assert_eq!(
        at_alpha.source.spec().unwrap().project.name.as_str(),
        "alpha"
    );
}

#[test]
fn a_commit_names_no_biome_and_no_requester() {
    let (repo, alpha, _beta) = two_commits();
    let at_alpha = repo.at_commit("home", &alpha, local());
    let checkout = repo.checkout("home", local());
    let spec = at_alpha.source.spec().unwrap();

    let error = sandpit_ops::target::resolve(&at_alpha, &spec, None).unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{error:#}");
    assert!(error.to_string().contains("name the biome"), "{error}");
    let named = sandpit_ops::target::resolve(&at_alpha, &spec, Some("dev/alice")).unwrap();
    assert_eq!(named.name.as_str(), "alice");
    // The checkout's current branch names it.
    let branch = sandpit_ops::target::resolve(&checkout, &spec, None).unwrap();
    assert_eq!(branch.name.as_str(), "main");

    // Who asks: git's user.email in a checkout, only the principal's name for a commit.
    assert_eq!(
        sandpit_ops::deployment::requester(&checkout).unwrap(),
        "builder@example.com"
    );
    let error = sandpit_ops::deployment::requester(&at_alpha).unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{error:#}");
    let server = repo.at_commit(
        "home",
        &alpha,
        Principal::named("ci@example.com", [sandpit_ops::principal::Role::Deployer]),
    );
    assert_eq!(
        sandpit_ops::deployment::requester(&server).unwrap(),
        "ci@example.com"
    );
}

#[tokio::test]
async fn exec_and_psql_run_only_in_a_checkout() {
    let (repo, alpha, _beta) = two_commits();
    let at_alpha = repo.at_commit("home", &alpha, local());
    let error = sandpit_ops::exec::exec(&at_alpha, Some("alice"), None, &["true".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("`sandpit exec` works in a checkout"),
        "{error}"
    );
    let error = sandpit_ops::psql::psql(&at_alpha, Some("alice"), &[])
        .await
        .unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("`sandpit psql` works in a checkout"),
        "{error}"
    );
    // In the checkout the same call gets past that, to the biome that does not run.
    let checkout = repo.checkout("home", local());
    let error = sandpit_ops::exec::exec(&checkout, Some("alice"), None, &["true".to_owned()])
        .await
        .unwrap_err();
    assert!(
        !error.to_string().contains("works in a checkout"),
        "{error}"
    );
}

#[tokio::test]
async fn up_at_a_commit_needs_the_biome_named_before_anything_is_built() {
    let (repo, alpha, _beta) = two_commits();
    let at_alpha = repo.at_commit("home", &alpha, local());
    let error = sandpit_ops::up::up(
        &at_alpha,
        &sandpit_ops::up::UpOptions::default(),
        &mut NoProgress,
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(kind_of(&error), ErrorKind::InvalidInput, "{error:#}");
    assert!(
        error
            .to_string()
            .ends_with("hint: name it: `sandpit up NAME`"),
        "{error}"
    );
    assert!(
        !at_alpha.home.join("projects").exists(),
        "nothing was built"
    );
}
