//! The command line's contract: usage errors, spec diagnostics, init.

use crate::harness::Sandbox;

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let sandbox = Sandbox::new();
    sandbox.fails(&["frobnicate"], 2);
    sandbox.fails(&["logs", "alice", "web", "extra"], 2);
    let error = sandbox.fails(&["status", "alice"], 1);
    assert!(error.contains("no sandpit.toml"), "{error}");
    assert!(error.contains("sandpit init"), "{error}");
}

#[test]
fn malformed_names_are_usage_errors_before_anything_runs() {
    let sandbox = Sandbox::with_files(&[(
        "sandpit.toml",
        "[project]\nname = \"names\"\n\n[jobs.noop]\npath = \".\"\nrun = \"true\"\n",
    )]);
    for args in [
        &["up", "!!!"][..],
        &["up", "alice", "--env", "Dev"],
        &["down", "///"],
        &["status", "***"],
        &["history", "a/b/c"],
        &["deploy", "dev-"],
        &["promote", "dev", "T"],
        &["rollback", "9"],
        &["env", "destroy", "Prod", "--confirm", "Prod"],
        &["verify", "UPPER"],
        &["logs", "alice", "Web"],
        &["logs", "%%", "web"],
        &["artifacts", "--env", "x y"],
    ] {
        let error = sandbox.fails(args, 2);
        assert!(
            error.contains("hint:") || error.contains("invalid"),
            "{args:?}: {error}"
        );
    }
    assert!(
        !sandbox.home.join("projects").exists(),
        "nothing was built or started"
    );
    // A well-formed name that is an environment's is refused before the build, as a failure.
    let error = sandbox.fails(&["up", "dev"], 1);
    assert!(error.contains("is the name of an environment"), "{error}");
    assert!(
        !sandbox.home.join("projects/names/build-logs").exists(),
        "{error}"
    );
}

#[test]
fn init_writes_a_starter_that_builds_and_refuses_to_overwrite() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["init", "--name", "starter"]);
    assert!(out.contains("sandpit.toml"));
    let text = std::fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    assert!(text.contains("name = \"starter\""), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 5,
        "commented: {text}"
    );
    let error = sandbox.fails(&["init"], 1);
    assert!(error.contains("already exists"), "{error}");
    let error = sandbox.fails(&["-C", "/tmp", "init", "--name", "Bad_Name"], 2);
    assert!(error.contains("Bad_Name"), "{error}");
}

#[test]
fn every_spec_problem_is_reported_with_its_location() {
    let sandbox = Sandbox::with_files(&[(
        "sandpit.toml",
        r#"[project]
name = "broken"

[services.Web]
path = "web"
run = "x"

[services.api]
path = "../outside"
hellth = "/"
run = "y"
depends_on = ["ghost"]
"#,
    )]);
    let error = sandbox.fails(&["build"], 1);
    assert!(
        error.contains("sandpit.toml:4:"),
        "bad name located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:9:"),
        "bad path located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:12:"),
        "unknown dependency located: {error}"
    );
    assert!(
        error.contains("sandpit.toml:10:1: unknown key `hellth` in service `api`")
            && error.contains("did you mean `health`?"),
        "unknown key refused with a suggestion: {error}"
    );
    assert!(error.contains("hint:"), "{error}");
}

/// The commands listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The argument lines of a short help (`-h`: one line per argument) without a description.
fn undescribed(help: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut in_arguments = false;
    for line in help.lines() {
        if line.starts_with("Arguments:") || line.starts_with("Options:") {
            in_arguments = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_arguments = false;
        }
        // `  -f, --follow  Keep printing…`: the argument, then two spaces, then what it does.
        if in_arguments && line.trim().split("  ").filter(|p| !p.is_empty()).count() < 2 {
            missing.push(line.trim().to_owned());
        }
    }
    missing
}

/// Every command's help, walked through the real binary, describes every argument.
#[test]
fn help_describes_sandpit_every_command_and_every_argument() {
    let sandbox = Sandbox::new();
    let help = sandbox.ok(&["--help"]);
    assert!(
        help.contains("environments") && help.contains("biomes"),
        "says what sandpit is for: {help}"
    );
    assert!(
        !help.contains("sandpit-ops"),
        "not the crate's description: {help}"
    );
    assert!(help.contains("Environment variables:"), "{help}");
    for variable in [
        "SANDPIT_HOME",
        "SANDPIT_USER",
        "SANDPIT_STOP_GRACE_MS",
        "SANDPIT_LOG_MAX_BYTES",
        "SANDPIT_DATABASE_TIMEOUT_MS",
        "ORT_DYLIB_PATH",
        "SANDPIT_PYTHON",
        "NO_COLOR",
        "XDG_DATA_HOME",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(variable)),
            "{variable} is listed: {help}"
        );
    }
    let mut walked = 0;
    let mut pending: Vec<Vec<String>> = subcommands(&help).into_iter().map(|c| vec![c]).collect();
    assert!(pending.len() > 10, "{help}");
    let mut missing = Vec::new();
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        let short = sandbox.ok(&args);
        walked += 1;
        let first = short.lines().next().unwrap_or_default();
        if first.trim().is_empty() || first.starts_with("Usage:") {
            missing.push(format!("{}: no description", path.join(" ")));
        }
        for line in undescribed(&short) {
            missing.push(format!("{}: `{line}` has no description", path.join(" ")));
        }
        for sub in subcommands(&short) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
    }
    assert!(
        walked > 15,
        "subcommands of subcommands are walked too: {walked}"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

const ONE_JOB: &str =
    "[project]\nname = \"looks\"\n\n[jobs.prepare]\npath = \"job\"\nrun = \"true\"\n";

fn header_line<'a>(table: &'a str, first: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no header line starting {first}: {table}"))
}

fn assert_aligned(table: &str, first_header: &str, row_start: &str, columns: &[(&str, &str)]) {
    let header = header_line(table, first_header);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with(row_start))
        .unwrap_or_else(|| panic!("no row {row_start}: {table}"));
    for (column, value) in columns {
        let at = header
            .find(column)
            .unwrap_or_else(|| panic!("no column {column}: {table}"));
        assert_eq!(
            row.get(at..at + value.len()),
            Some(*value),
            "`{value}` sits under {column}:\n{header}\n{row}"
        );
    }
}

/// Regression: `short()` cut versions to 12 characters, so a build of uncommitted changes looked
/// like its commit in `status`, `ls` and `history`.
#[test]
fn a_dirty_biome_looks_dirty_in_status_ls_and_history() {
    let sandbox = Sandbox::with_files(&[("sandpit.toml", ONE_JOB), ("job/run.sh", "true\n")]);
    sandbox.write("job/run.sh", "echo changed\n");
    let up = sandbox.json(&["up", "wip", "--allow-dirty"]);
    let version = up["sha"].as_str().unwrap().to_owned();
    let (commit, dirt) = version.split_once("-dirty-").expect("a dirty version");
    let shown = format!("{}-dirty-{dirt}", &commit[..12]);
    let status = sandbox.ok(&["status", "wip"]);
    assert!(status.contains(&shown), "{status}");
    let ls = sandbox.ok(&["ls"]);
    assert!(ls.contains(&shown), "{ls}");
    let history = sandbox.ok(&["history", "wip"]);
    assert!(history.contains(&shown), "{history}");
    assert_aligned(&ls, "BIOME", "wip", &[("SHA", &shown)]);
    assert_aligned(&history, "ID", "1", &[("SHA", &shown)]);
}

/// Regression: fixed-width columns (24 characters for a biome) pushed every later column of a
/// row with a 40-character name out of line with its header.
#[test]
fn columns_line_up_with_a_forty_character_biome_name() {
    let sandbox = Sandbox::with_files(&[("sandpit.toml", ONE_JOB), ("job/run.sh", "true\n")]);
    let biome = "a-biome-whose-name-is-forty-characters-x";
    assert_eq!(biome.len(), 40);
    let up = sandbox.json(&["up", biome]);
    let sha = up["sha"].as_str().unwrap()[..12].to_owned();
    let state = up["state"].as_str().unwrap().to_owned();

    let ls = sandbox.ok(&["ls"]);
    assert_aligned(
        &ls,
        "BIOME",
        biome,
        &[("ENV", "dev"), ("SHA", &sha), ("STATE", &state)],
    );
    let history = sandbox.ok(&["history", biome]);
    let target = format!("dev/{biome}");
    assert_aligned(
        &history,
        "ID",
        "1",
        &[
            ("TARGET", &target),
            ("SHA", &sha),
            ("STATE", "succeeded"),
            ("KIND", "up"),
        ],
    );
    let status = sandbox.ok(&["status", biome]);
    let job_state = sandbox.status(biome)["components"][0]["state"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_aligned(
        &status,
        "COMPONENT",
        "prepare",
        &[("KIND", "job"), ("STATE", &job_state)],
    );
    let artifacts = sandbox.ok(&["artifacts"]);
    let artifact = format!("prepare-{}.zip", up["sha"].as_str().unwrap());
    assert_aligned(
        &artifacts,
        "ARTIFACT",
        &artifact,
        &[("INTEGRITY", "intact")],
    );
}

#[test]
fn the_state_store_is_where_sandpit_state_says_and_a_bad_location_is_refused() {
    let mut sandbox = Sandbox::with_files(&[(
        "sandpit.toml",
        "[project]\nname = \"stateful\"\n\n[environments.dev]\n\n[jobs.noop]\npath = \".\"\nrun = \"true\"\n",
    )]);
    // A SQLite file outside the home: the deployment is recorded there and nowhere else.
    let elsewhere = sandbox.home.with_file_name("shared-state").join("state.db");
    sandbox
        .extra_env
        .push(("SANDPIT_STATE".into(), elsewhere.display().to_string()));
    sandbox.ok(&["deploy", "dev"]);
    assert!(elsewhere.exists(), "SANDPIT_STATE names the store");
    assert!(
        !sandbox.home.join("state.db").exists(),
        "the home's default store is not used"
    );
    let history = sandbox.json(&["history", "dev"]);
    assert_eq!(
        history["deployments"].as_array().unwrap().len(),
        1,
        "{history:#}"
    );

    // Another location is another store: nothing deployed there.
    let other = sandbox.home.with_file_name("other-state.db");
    sandbox.extra_env.pop();
    sandbox
        .extra_env
        .push(("SANDPIT_STATE".into(), other.display().to_string()));
    let history = sandbox.json(&["history", "dev"]);
    assert_eq!(
        history["deployments"].as_array().unwrap().len(),
        0,
        "{history:#}"
    );

    // Neither a URL sandpit speaks nor a file path: said, with the password hidden.
    sandbox.extra_env.pop();
    sandbox.extra_env.push((
        "SANDPIT_STATE".into(),
        "mysql://u:hunter2@127.0.0.1/state".into(),
    ));
    let error = sandbox.fails(&["history", "dev"], 1);
    assert!(
        error.contains("SANDPIT_STATE") && error.contains("postgres://"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    sandbox.extra_env.pop();
    let error = sandbox.fails(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "redis://h/0",
        ],
        1,
    );
    assert!(error.contains("--state"), "{error}");
    // A PostgreSQL nobody listens on stops the server before it serves anything.
    let error = sandbox.fails(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "postgres://u:pw@127.0.0.1:1/state",
        ],
        1,
    );
    assert!(error.contains("cannot open the state store"), "{error}");
    assert!(!error.contains(":pw@"), "{error}");
}
