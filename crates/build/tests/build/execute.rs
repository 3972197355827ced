//! Building a small project end to end: built, reused, failed, scrubbed environment.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandpit_artifact::{extract, ArtifactStore};
use sandpit_build::{
    build, BuildError, BuildProgress, BuildReport, BuildRequest, ComponentOutcome, Outcome,
    Repository,
};
use sandpit_domain::{ByteSize, CommitId, ComponentKind, Name, Version};
use sandpit_spec::model::{Component, Project, Spec};

use crate::fixtures::{TestRepo, PATH};

pub(crate) fn component(name: &str, build: Option<&str>, output: &str) -> Component {
    Component {
        name: Name::parse(name).unwrap(),
        kind: ComponentKind::Service,
        path: name.to_owned(),
        inputs: Vec::new(),
        build: build.map(str::to_owned),
        output: output.to_owned(),
        run: Some("./serve".to_owned()),
        health: Some("/".to_owned()),
        start_timeout: Duration::from_secs(60),
        env: BTreeMap::new(),
        depends_on: Vec::new(),
        file: None,
        vars: BTreeMap::new(),
    }
}

pub(crate) fn spec(components: Vec<Component>) -> Spec {
    Spec {
        project: Project {
            name: Name::parse("demo").unwrap(),
            max_artifact_size: ByteSize(ByteSize::MIB),
        },
        environments: BTreeMap::new(),
        components: components
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect(),
        database: None,
        pipelines: Default::default(),
        gitlab: None,
        gateway: Default::default(),
        biomes: Default::default(),
        terraform: Default::default(),
    }
}

/// Records what the builder reported, in order.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    lines: Vec<String>,
}

impl BuildProgress for Recorder {
    fn started(&mut self, component: &Name, log: &Path) {
        assert!(log.to_string_lossy().ends_with(".log"));
        self.events.push(format!("started {component}"));
    }
    fn output_line(&mut self, _: &Name, line: &str) {
        self.lines.push(line.to_owned());
    }
    fn finished(&mut self, component: &Name, outcome: &ComponentOutcome) {
        self.events
            .push(format!("{component} {:?}", outcome.outcome));
    }
}

struct Setup {
    test: TestRepo,
    repo: Repository,
    store: ArtifactStore,
    logs: PathBuf,
    _state: tempfile::TempDir,
}

fn setup() -> Setup {
    let test = TestRepo::new();
    test.write("proj/api/main.sh", "echo api\n");
    test.write("proj/web/index.html", "<h1>v1</h1>\n");
    test.write("elsewhere/readme.txt", "not part of the project\n");
    test.commit("first");
    let repo = test.open(&test.root.join("proj"));
    let state = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(&state.path().join("store")).unwrap();
    let logs = state.path().join("logs");
    Setup {
        test,
        repo,
        store,
        logs,
        _state: state,
    }
}

fn run(
    setup: &Setup,
    spec: &Spec,
    version: Version,
    treeish: &str,
    base_env: Vec<(String, String)>,
    progress: &mut Recorder,
) -> Result<BuildReport, BuildError> {
    let request = BuildRequest {
        repo: &setup.repo,
        version,
        treeish: treeish.to_owned(),
        spec,
        store: &setup.store,
        log_dir: setup.logs.clone(),
        sandpit_version: "0.1.0-test",
        base_env,
        project_prefix: setup.repo.prefix().to_owned(),
        models: Some(&FakeEngine),
        terraform: Some(&FakeTerraform),
    };
    build(request, progress)
}

/// Stands in for Terraform: refuses a module with an `invalid.tf`, and checks it was handed the
/// module as committed.
#[derive(Debug)]
pub(crate) struct FakeTerraform;

impl sandpit_build::execute::ModuleValidator for FakeTerraform {
    fn validate(&self, module_dir: &std::path::Path, shown_as: &str) -> Result<(), String> {
        if module_dir.join("invalid.tf").exists() {
            Err(format!(
                "{shown_as}/invalid.tf:1:1: error: Unsupported block type"
            ))
        } else if module_dir.join("main.tf").exists() {
            Ok(())
        } else {
            Err(format!("{shown_as}: no main.tf"))
        }
    }
}

/// Stands in for the model engine: refuses models that use `BadOp`.
#[derive(Debug)]
pub(crate) struct FakeEngine;

impl sandpit_build::execute::ModelInspector for FakeEngine {
    fn inspect(&self, onnx: &[u8]) -> Result<String, String> {
        if String::from_utf8_lossy(onnx).contains("BadOp") {
            Err("ONNX Runtime: could not find an implementation for BadOp(1) node".to_owned())
        } else {
            Ok(format!("{{\"bytes\":{}}}", onnx.len()))
        }
    }
}

fn clean(sha: &str) -> Version {
    Version::clean(CommitId::parse(sha).unwrap())
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".to_owned(), PATH.to_owned())]
}

fn outcomes(report: &BuildReport) -> Vec<(String, Outcome)> {
    report
        .components
        .iter()
        .map(|c| (c.name.to_string(), c.outcome))
        .collect()
}

#[test]
fn unchanged_components_are_reused_at_a_new_commit() {
    let setup = setup();
    let spec = spec(vec![
        component(
            "api",
            Some("mkdir -p out && cp main.sh out/ && echo building $SANDPIT_COMPONENT"),
            "out",
        ),
        component("web", None, "."),
    ]);
    let first = setup.test.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let mut progress = Recorder::default();
    let report = run(
        &setup,
        &spec,
        clean(&first),
        &first,
        path_env(),
        &mut progress,
    )
    .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("api".to_owned(), Outcome::Built),
            ("web".to_owned(), Outcome::Built)
        ]
    );
    assert_eq!(progress.events, ["started api", "api Built", "web Built"]);
    assert_eq!(progress.lines, ["building api"]);
    let api_log = report.components[0].log.clone().unwrap();
    assert_eq!(fs::read_to_string(&api_log).unwrap(), "building api\n");
    assert_eq!(
        api_log.file_name().unwrap().to_str().unwrap(),
        format!("api-{first}.log")
    );
    assert_eq!(report.components[1].log, None, "no build command, no log");
    let api_first = report.components[0].artifact.clone();
    let web_first = report.components[1].artifact.clone();
    assert_eq!(
        api_first.provenance.build_command.as_deref(),
        Some(
            spec.components
                .values()
                .next()
                .unwrap()
                .build
                .as_deref()
                .unwrap()
        )
    );
    assert_eq!(api_first.provenance.sandpit_version, "0.1.0-test");
    assert_eq!(
        api_first.provenance.builder.as_deref(),
        Some("builder@example.com")
    );
    assert!(api_first.provenance.started_at.ends_with('Z'));

    // The packaged output is what the build produced.
    let unpacked = tempfile::tempdir().unwrap();
    extract(
        &api_first.file_path,
        &unpacked.path().join("api"),
        ByteSize(ByteSize::MIB),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(unpacked.path().join("api/main.sh")).unwrap(),
        "echo api\n"
    );

    // Change only web (and something outside the project).
    setup.test.write("proj/web/index.html", "<h1>v2</h1>\n");
    setup.test.write("elsewhere/readme.txt", "changed\n");
    let second = setup.test.commit("second");
    let mut progress = Recorder::default();
    let report = run(
        &setup,
        &spec,
        clean(&second),
        &second,
        path_env(),
        &mut progress,
    )
    .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("api".to_owned(), Outcome::Reused),
            ("web".to_owned(), Outcome::Built)
        ]
    );
    assert_eq!(progress.events, ["api Reused", "web Built"]);
    let api_second = &report.components[0].artifact;
    assert_eq!(api_second.digest, api_first.digest);
    assert_eq!(api_second.name.file_name(), format!("api-{second}.zip"));
    assert_eq!(
        api_second.provenance.reused_from,
        Some(api_first.name.file_name())
    );
    assert_eq!(api_second.provenance.commit.as_str(), second);
    assert_ne!(report.components[1].artifact.digest, web_first.digest);

    // A third commit touching only web again: api's reuse still points at the artifact that was built.
    setup.test.write("proj/web/index.html", "<h1>v3</h1>\n");
    let third = setup.test.commit("third");
    let report = run(
        &setup,
        &spec,
        clean(&third),
        &third,
        path_env(),
        &mut Recorder::default(),
    )
    .unwrap();
    assert_eq!(
        report.components[0].artifact.provenance.reused_from,
        Some(api_first.name.file_name())
    );

    // Building the same version again builds nothing.
    let mut progress = Recorder::default();
    let again = run(
        &setup,
        &spec,
        clean(&second),
        &second,
        path_env(),
        &mut progress,
    )
    .unwrap();
    assert_eq!(
        outcomes(&again),
        [
            ("api".to_owned(), Outcome::Reused),
            ("web".to_owned(), Outcome::Reused)
        ]
    );
    assert!(progress.lines.is_empty());

    let names: Vec<String> = setup
        .store
        .list()
        .unwrap()
        .iter()
        .map(|a| a.name.file_name())
        .collect();
    assert_eq!(names.len(), 6);
}

#[test]
fn failing_builds_report_the_tail_of_their_output() {
    let setup = setup();
    // The build leaves a read-only directory behind and says where it ran.
    let mut script = String::from("mkdir -p ro/sub && chmod 555 ro && pwd; ");
    for line in 1..=30 {
        script.push_str(&format!("echo line{line}; "));
    }
    script.push_str("echo oops >&2; exit 3");
    let spec = spec(vec![component("api", Some(&script), "out")]);
    let head = setup.test.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let error = run(
        &setup,
        &spec,
        clean(&head),
        &head,
        path_env(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    match &error {
        BuildError::CommandFailed {
            component,
            status,
            log_path,
            tail,
        } => {
            assert_eq!(component.as_str(), "api");
            assert!(status.contains('3'), "{status}");
            assert_eq!(tail.len(), 20);
            assert_eq!(tail.last().map(String::as_str), Some("oops"));
            assert_eq!(tail.first().map(String::as_str), Some("line12"));
            let log = fs::read_to_string(log_path).unwrap();
            assert!(log.contains("\nline1\n") && log.contains("oops"), "{log}");
            let checkout = log.lines().next().unwrap();
            assert!(checkout.starts_with('/'), "{log}");
            assert!(
                !Path::new(checkout).exists(),
                "the checkout `{checkout}` is removed after a failure"
            );
        }
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("the build of `api` failed") && message.contains("oops"),
        "{message}"
    );
    assert!(setup.store.list().unwrap().is_empty());
}

#[test]
fn missing_output_directories_are_named() {
    let setup = setup();
    let spec = spec(vec![component("api", Some("true"), "dist")]);
    let head = setup.test.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let error = run(
        &setup,
        &spec,
        clean(&head),
        &head,
        path_env(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::OutputMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("`dist`"), "{error}");
}

#[test]
fn missing_component_paths_are_named() {
    let setup = setup();
    let spec = spec(vec![component("nothere", None, ".")]);
    let head = setup.test.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let error = run(
        &setup,
        &spec,
        clean(&head),
        &head,
        path_env(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::ComponentPathMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("proj/nothere"), "{error}");
}

#[test]
fn builds_see_only_the_environment_they_are_given() {
    let setup = setup();
    let mut api = component("api", Some("mkdir -p out && env > out/env.txt"), "out");
    api.env.insert("MODE".to_owned(), "test".to_owned());
    let spec = spec(vec![api]);
    let head = setup.test.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let commit_time = setup
        .test
        .git(&["show", "-s", "--format=%ct", "HEAD"])
        .trim()
        .to_owned();
    let base_env = vec![
        ("PATH".to_owned(), PATH.to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
    ];
    let report = run(
        &setup,
        &spec,
        clean(&head),
        &head,
        base_env,
        &mut Recorder::default(),
    )
    .unwrap();

    let unpacked = tempfile::tempdir().unwrap();
    extract(
        &report.components[0].artifact.file_path,
        &unpacked.path().join("api"),
        ByteSize(ByteSize::MIB),
    )
    .unwrap();
    let env = fs::read_to_string(unpacked.path().join("api/env.txt")).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for expected in [
        "SANDPIT_COMPONENT=api".to_owned(),
        format!("SANDPIT_SHA={head}"),
        format!("SOURCE_DATE_EPOCH={commit_time}"),
        "MODE=test".to_owned(),
        "LANG=C.UTF-8".to_owned(),
        format!("PATH={PATH}"),
    ] {
        assert!(
            env.lines().any(|line| line == expected),
            "missing {expected} in:\n{env}"
        );
    }
    // The test process has CARGO_* and HOME set; none of it may leak into builds.
    let leaked: Vec<&&str> = names
        .iter()
        .filter(|name| name.starts_with("CARGO") || **name == "HOME" || name.starts_with("RUST"))
        .collect();
    assert!(leaked.is_empty(), "leaked {leaked:?} into:\n{env}");
    // Only these (plus what sh itself sets) are present.
    let allowed = [
        "PATH",
        "LANG",
        "SANDPIT_COMPONENT",
        "SANDPIT_SHA",
        "SANDPIT_VERSION",
        "SOURCE_DATE_EPOCH",
        "MODE",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    ];
    for name in names {
        assert!(
            allowed.contains(&name),
            "unexpected variable {name} in:\n{env}"
        );
    }
}

#[test]
fn dirty_versions_build_the_working_tree_snapshot() {
    let setup = setup();
    let spec = spec(vec![component("web", None, ".")]);
    setup
        .test
        .write("proj/web/index.html", "<h1>uncommitted</h1>\n");
    let snapshot = setup.repo.snapshot_working_tree().unwrap();
    let head = setup.repo.resolve("HEAD").unwrap();
    let version = Version::dirty(head, &snapshot.diff_hash);
    let report = run(
        &setup,
        &spec,
        version.clone(),
        &snapshot.tree,
        path_env(),
        &mut Recorder::default(),
    )
    .unwrap();
    let artifact = &report.components[0].artifact;
    assert_eq!(artifact.name.version, version);
    assert!(artifact.name.file_name().contains("-dirty-"));
    let unpacked = tempfile::tempdir().unwrap();
    extract(
        &artifact.file_path,
        &unpacked.path().join("web"),
        ByteSize(ByteSize::MIB),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(unpacked.path().join("web/index.html")).unwrap(),
        "<h1>uncommitted</h1>\n"
    );
}

#[test]
fn terraform_modules_are_validated_and_packaged_as_committed() {
    let setup = setup();
    setup.test.write(
        "proj/infra/good/main.tf",
        "resource \"terraform_data\" \"x\" {}\n",
    );
    setup.test.write("proj/infra/bad/main.tf", "\n");
    setup
        .test
        .write("proj/infra/bad/invalid.tf", "nonsense {\n");
    let sha = setup.test.commit("modules");
    let module = |name: &str, path: &str| {
        let mut component = component(name, None, ".");
        component.kind = sandpit_domain::ComponentKind::Terraform;
        component.path = path.to_owned();
        component.run = None;
        component.health = None;
        component
    };
    let mut progress = Recorder::default();
    let good = spec(vec![module("infra", "infra/good")]);
    let report = run(&setup, &good, clean(&sha), &sha, path_env(), &mut progress).unwrap();
    let artifact = &report.components[0].artifact;
    assert_eq!(artifact.name.file_name(), format!("infra-{sha}.zip"));
    let unpacked = tempfile::tempdir().unwrap();
    extract(
        &artifact.file_path,
        unpacked.path(),
        ByteSize(ByteSize::MIB),
    )
    .unwrap();
    let files: Vec<String> = fs::read_dir(unpacked.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["main.tf"], "exactly the committed module");

    let bad = spec(vec![module("broken", "infra/bad")]);
    let message = run(&setup, &bad, clean(&sha), &sha, path_env(), &mut progress)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("terraform component `broken`")
            && message.contains("infra/bad/invalid.tf:1:1: error: Unsupported block type"),
        "{message}"
    );

    // Without a validator nothing unchecked is packaged.
    let unchecked = spec(vec![module("other", "infra/good")]);
    let request = BuildRequest {
        repo: &setup.repo,
        version: clean(&sha),
        treeish: sha.clone(),
        spec: &unchecked,
        store: &setup.store,
        log_dir: setup.logs.clone(),
        sandpit_version: "0.1.0-test",
        base_env: path_env(),
        project_prefix: setup.repo.prefix().to_owned(),
        models: None,
        terraform: None,
    };
    let error = build(request, &mut progress).unwrap_err().to_string();
    assert!(error.contains("cannot be checked"), "{error}");
}

#[test]
fn models_are_checked_and_described_when_built() {
    let setup = setup();
    setup
        .test
        .write("proj/models/good/model.onnx", "onnx bytes");
    setup.test.write("proj/models/bad/model.onnx", "uses BadOp");
    let sha = setup.test.commit("models");
    let model = |name: &str, path: &str| {
        let mut component = component(name, None, ".");
        component.kind = sandpit_domain::ComponentKind::Model;
        component.path = path.to_owned();
        component.run = None;
        component.file = Some("model.onnx".to_owned());
        component
    };
    let good = spec(vec![model("good", "models/good")]);
    let mut progress = Recorder::default();
    let report = run(&setup, &good, clean(&sha), &sha, path_env(), &mut progress).unwrap();
    let artifact = &report.components[0].artifact;
    let listing = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(sorted(z.namelist())); print(z.read('model.json').decode())"])
        .arg(&artifact.file_path)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("'model.json'") && listing.contains("'model.onnx'"),
        "{listing}"
    );
    assert!(listing.contains("{\"bytes\":10}"), "{listing}");

    let bad = spec(vec![model("bad", "models/bad")]);
    let error = run(&setup, &bad, clean(&sha), &sha, path_env(), &mut progress).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("model `bad`") && message.contains("BadOp"),
        "{message}"
    );

    let mut missing = model("missing", "models/good");
    missing.file = Some("nope.onnx".to_owned());
    let error = run(
        &setup,
        &spec(vec![missing]),
        clean(&sha),
        &sha,
        path_env(),
        &mut progress,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`nope.onnx` is not in its build output"),
        "{error}"
    );
}

#[test]
fn a_change_in_an_extra_input_rebuilds_only_the_components_that_read_it() {
    let setup = setup();
    setup.test.write("proj/lib/common.sh", "echo shared v1\n");
    let mut api = component(
        "api",
        Some("mkdir -p out && cp main.sh ../lib/common.sh out/"),
        "out",
    );
    api.inputs = vec!["lib".to_owned()];
    let both = spec(vec![api, component("web", None, ".")]);
    let first = setup.test.commit("shared library");
    let mut progress = Recorder::default();
    run(
        &setup,
        &both,
        clean(&first),
        &first,
        path_env(),
        &mut progress,
    )
    .unwrap();

    setup.test.write("proj/lib/common.sh", "echo shared v2\n");
    let second = setup.test.commit("change the shared library");
    let report = run(
        &setup,
        &both,
        clean(&second),
        &second,
        path_env(),
        &mut progress,
    )
    .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("api".to_owned(), Outcome::Built),
            ("web".to_owned(), Outcome::Reused)
        ],
        "the library is an input of api only"
    );

    let mut missing = component("api", None, ".");
    missing.inputs = vec!["no/such/dir".to_owned()];
    let error = run(
        &setup,
        &spec(vec![missing]),
        clean(&second),
        &second,
        path_env(),
        &mut progress,
    )
    .unwrap_err();
    assert!(error.to_string().contains("no/such/dir"), "{error}");
}
