//! Builds from commits: dirty trees, reuse, artifact listing, determinism, tampering.

use std::fs;
use std::io::Write;

use crate::harness::Sandbox;

fn small_project() -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "tiny"

[services.api]
path = "api"
build = "mkdir -p out && cp app.sh out/ && env > out/build-env.txt && echo built-api"
output = "out"
run = "sh app.sh"

[jobs.seed]
path = "seed"
run = "true"
"#,
        ),
        ("api/app.sh", "echo hello\n"),
        ("seed/seed.sql", "select 1;\n"),
    ])
}

#[test]
fn dirty_trees_are_refused_by_name_or_built_as_dirty_versions() {
    let sandbox = small_project();
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    sandbox.write("api/app.sh", "echo changed\n");
    sandbox.write("api/new-file.txt", "untracked\n");
    let error = sandbox.fails(&["build"], 1);
    assert!(error.contains("uncommitted changes"), "{error}");
    assert!(
        error.contains("api/app.sh"),
        "names the modified file: {error}"
    );
    assert!(
        error.contains("api/new-file.txt"),
        "names the untracked file: {error}"
    );
    assert!(error.contains("--allow-dirty"), "says what to do: {error}");

    let built = sandbox.json(&["build", "--allow-dirty"]);
    let version = built["version"].as_str().unwrap();
    assert!(version.starts_with(&format!("{sha}-dirty-")), "{version}");
    assert_eq!(version.len(), 40 + "-dirty-".len() + 12);
    let api = built["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(api["artifact"], format!("api-{version}.zip"));
    // The unchanged job is reused from nothing? No: first build ever, so it is built.
    // The real index and work tree are untouched by the snapshot.
    assert_eq!(sandbox.git(&["diff", "--cached", "--name-only"]), "");
    assert_eq!(
        fs::read_to_string(sandbox.repo.join("api/app.sh")).unwrap(),
        "echo changed\n"
    );

    // Building an explicit commit ignores the working tree and gives the commit's bytes.
    let clean = sandbox.json(&["build", "--sha", &sha[..10]]);
    assert_eq!(clean["version"], sha.as_str());
    let api_clean = clean["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_ne!(
        api_clean["digest"], api["digest"],
        "the dirty build packaged the edit"
    );
    let error = sandbox.fails(&["build", "--sha", "no-such-branch"], 1);
    assert!(error.contains("no-such-branch"), "{error}");
}

#[test]
fn unchanged_components_are_reused_and_listed_with_provenance() {
    let mut sandbox = small_project();
    sandbox
        .extra_env
        .push(("BUILD_SECRET".into(), "s3cr3t".into()));
    let first_sha = sandbox.git(&["rev-parse", "HEAD"]);
    let first = sandbox.json(&["build"]);
    assert!(
        first["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "built"),
        "{first:#}"
    );

    sandbox.write("seed/seed.sql", "select 2;\n");
    let second_sha = sandbox.commit("change only seed");
    let second = sandbox.json(&["build"]);
    let outcome = |report: &serde_json::Value, name: &str| {
        report["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome(&second, "api")["outcome"], "reused");
    assert_eq!(outcome(&second, "seed")["outcome"], "built");
    assert_eq!(
        outcome(&second, "api")["digest"],
        outcome(&first, "api")["digest"]
    );
    assert_eq!(
        outcome(&second, "api")["artifact"],
        format!("api-{second_sha}.zip")
    );

    let listed = sandbox.json(&["artifacts"]);
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for expected in [
        format!("api-{first_sha}.zip"),
        format!("api-{second_sha}.zip"),
        format!("seed-{first_sha}.zip"),
        format!("seed-{second_sha}.zip"),
    ] {
        assert!(
            names.contains(&expected.as_str()),
            "{expected} missing from {names:?}"
        );
    }
    for artifact in listed["artifacts"].as_array().unwrap() {
        let path = std::path::Path::new(artifact["path"].as_str().unwrap());
        assert!(path.is_absolute() && path.is_file(), "{artifact}");
        assert!(path.ends_with(artifact["name"].as_str().unwrap()));
        let bytes = fs::read(path).unwrap();
        assert_eq!(bytes.len() as u64, artifact["size"].as_u64().unwrap());
        let digest = sha256_hex(&bytes);
        assert_eq!(artifact["digest"], format!("sha256:{digest}"));
        assert!(artifact["sha"].as_str().unwrap().len() == 40);
        assert_eq!(
            artifact["component"],
            artifact["name"]
                .as_str()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
        );
    }
    // The build ran with a scrubbed environment: the secret never reached the artifact.
    let api_zip = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("api-{first_sha}.zip"))
        .unwrap();
    let archive = fs::read(api_zip["path"].as_str().unwrap()).unwrap();
    let env_txt = unzip_entry(&archive, "build-env.txt");
    assert!(
        env_txt.contains(&format!("SANDPIT_SHA={first_sha}")),
        "{env_txt}"
    );
    assert!(!env_txt.contains("s3cr3t"), "{env_txt}");
    // Build output went to a log file.
    let log = outcome(&first, "api")["log"].as_str().unwrap().to_owned();
    assert!(fs::read_to_string(log).unwrap().contains("built-api"));
}

#[test]
fn the_same_commit_gives_the_same_bytes_in_another_home() {
    let files = [
        (
            "sandpit.toml",
            "[project]\nname = \"same\"\n[services.api]\npath = \"api\"\nbuild = \"mkdir -p out/bin && cp app.sh out/bin/ && chmod +x out/bin/app.sh\"\noutput = \"out\"\nrun = \"sh bin/app.sh\"\n",
        ),
        ("api/app.sh", "echo hello\n"),
        ("api/static/index.html", "<h1>hi</h1>\n"),
    ];
    let one = Sandbox::with_files(&files);
    let first = one.json(&["build"]);
    // Same content, committed in another repository a moment later, built into another home.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let two = Sandbox::with_files(&files);
    assert_ne!(
        one.git(&["rev-parse", "HEAD"]),
        two.git(&["rev-parse", "HEAD"])
    );
    let second = two.json(&["build"]);
    let digests = |r: &serde_json::Value| -> Vec<String> {
        r["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(digests(&first), digests(&second));
}

#[test]
fn a_tampered_blob_is_never_started() {
    let sandbox = small_project();
    let built = sandbox.json(&["build"]);
    let api = built["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    let digest = api["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = sandbox
        .home
        .join("projects/tiny/artifacts/blobs/sha256")
        .join(&digest);
    assert!(
        blob.is_file(),
        "blob stored by digest at {}",
        blob.display()
    );
    let mut permissions = fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    fs::set_permissions(&blob, permissions).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap()
        .write_all(b"tampered")
        .unwrap();
    let error = sandbox.fails(&["up", "mallory"], 1);
    assert!(
        error.contains(&digest),
        "names the expected digest: {error}"
    );
    assert!(
        error.contains(&blob.display().to_string()) || error.contains("api-"),
        "names the file: {error}"
    );
    assert!(sandbox.processes_under_home().is_empty());
}

fn sha256_hex(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn unzip_entry(archive: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("a.zip");
    fs::write(&zip, archive).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())"])
        .arg(&zip)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Regression: an unknown key was only a warning, printed after the build, so `heatlh = "/"`
/// built everything and then waited out the health timeout before the user saw the typo.
#[test]
fn a_typo_in_sandpit_toml_stops_up_before_anything_is_built() {
    let sandbox = Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"[project]
name = "typo"

[services.web]
path = "web"
build = "echo building"
run = "sleep 600"
heatlh = "/"
start_timeout = 1
"#,
        ),
        ("web/README", "placeholder\n"),
    ]);
    let started = std::time::Instant::now();
    let output = sandbox.run(&["up"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sandpit.toml:8:1: unknown key `heatlh` in service `web`"),
        "located: {stderr}"
    );
    assert!(
        stderr.contains("hint: did you mean `health`?"),
        "hint: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing reported as done: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    // At once: well before even this file's 1 s health timeout could matter on a loaded machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let build_logs = sandbox.home.join("projects/typo/build-logs");
    assert!(
        !build_logs.exists(),
        "nothing built: {}",
        build_logs.display()
    );
    assert!(
        !sandbox.home.join("run/daemon.pid").exists(),
        "no daemon started"
    );
    assert!(sandbox.processes_under_home().is_empty());
    // `build` refuses it the same way.
    let error = sandbox.fails(&["build"], 1);
    assert!(error.contains("sandpit.toml:8:1:"), "{error}");
    assert!(!build_logs.exists());
}

/// What `sandpit init` writes must come up as is: everything it names exists in a new project
/// (the JSON Schema it points at is written by `sandpit schema`, not a file of sandpit's own repo).
#[test]
fn a_freshly_initialised_project_comes_up_as_is() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    let starter = fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    assert!(starter.contains("sandpit schema"), "{starter}");

    let help = sandbox.ok(&["--help"]);
    assert!(
        help.lines()
            .any(|line| line.trim_start().starts_with("schema ")),
        "`schema` is listed: {help}"
    );
    let schema: serde_json::Value = serde_json::from_str(&sandbox.ok(&["schema"])).unwrap();
    assert_eq!(schema["title"], "sandpit.toml");
    assert_eq!(schema["additionalProperties"], false);

    sandbox.commit("sandpit init");
    let up = sandbox.json(&["up"]);
    assert_eq!(up["state"], "healthy", "{up:#}");
    assert_eq!(up["biome"], "main");
    assert_eq!(up["env"], "dev");
    let status = sandbox.status("main");
    assert_eq!(
        crate::harness::component(&status, "migrate")["state"],
        "succeeded"
    );
    let web = crate::harness::component(&status, "web");
    assert_eq!(web["state"], "healthy", "{status:#}");
    let (code, body) = crate::harness::http_get(web["url"].as_str().unwrap());
    assert_eq!(code, 200);
    assert!(body.contains("sandpit.toml"), "serves the project: {body}");
    sandbox.ok(&["down", "main"]);
}
