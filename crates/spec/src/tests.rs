//! Table-driven tests of [`crate::parse`]: each input and the exact diagnostics it produces, plus
//! the model built from a valid file, the starter file and the checked-in JSON Schema.

use std::time::Duration;

use sandpit_domain::{ByteSize, ComponentKind, Name};

use crate::*;

/// What a user would see: the diagnostics of a refused file, or nothing for an accepted one.
fn rendered(input: &str) -> String {
    match parse(input) {
        Ok(_) => String::new(),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

/// Inputs and expectations are written as raw strings starting on the line after `r#"`.
fn check(input: &str, expect: &str) {
    let input = input.strip_prefix('\n').unwrap_or(input);
    assert_eq!(
        rendered(input),
        expect.trim_matches('\n'),
        "input:\n{input}"
    );
}

fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap()
}

#[test]
fn syntax_error_is_one_diagnostic_at_the_parser_position() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "api
run = "x"
"#,
        r#"
sandpit.toml:5:12: invalid TOML: invalid basic string
"#,
    );
    check(
        r#"
[project]
name = "demo"
name = "again"
"#,
        r#"
sandpit.toml:3:1: invalid TOML: duplicate key `name` in table `project`
"#,
    );
}

#[test]
fn bad_names() {
    check(
        r#"
[project]
name = "demo"

[services.Grade_API]
path = "."
run = "x"
"#,
        r#"
sandpit.toml:4:11: invalid service name `Grade_API`: it must start with a lowercase letter
  hint: names are DNS labels: 1 to 40 of `a-z`, `0-9` and `-`, starting with a letter and not ending with `-`, e.g. `grade-api`
"#,
    );
    check(
        r#"
[project]
name = "demo"

[environments.dev-]
biomes = true
"#,
        r#"
sandpit.toml:4:15: invalid environment name `dev-`: it ends with `-`, which is not allowed in a hostname
  hint: names are DNS labels: 1 to 40 of `a-z`, `0-9` and `-`, starting with a letter and not ending with `-`, e.g. `grade-api`
"#,
    );
    check(
        r#"
[project]
name = "My Project"
"#,
        r#"
sandpit.toml:2:8: invalid `name` `My Project`: it must start with a lowercase letter
  hint: names are DNS labels: 1 to 40 of `a-z`, `0-9` and `-`, starting with a letter and not ending with `-`, e.g. `grade-api`
"#,
    );
}

#[test]
fn missing_required_keys_point_at_the_table_header() {
    check(
        r#"
[project]
max_artifact_size = "1GiB"
"#,
        r#"
sandpit.toml:1:1: `[project]` has no `name`
  hint: add name = "my-project"
"#,
    );
    check(
        r#"
[services.api]
path = "."
run = "x"
"#,
        r#"
sandpit.toml:1:1: sandpit.toml has no `[project]` section
  hint: add a `[project]` section at the top of the file
"#,
    );
    check(
        r#"
[project]
name = "demo"

[services.grade-api]
path = "."
"#,
        r#"
sandpit.toml:4:1: service `grade-api` has no `run` command
  hint: add run = "python3 app.py"
"#,
    );
}

#[test]
fn wrong_types() {
    check(
        r#"
[project]
name = "demo"

[environments.dev]
biomes = "yes"
"#,
        r#"
sandpit.toml:5:10: `biomes` must be a boolean, found a string
  hint: write biomes = true
"#,
    );
    check(
        r#"
[project]
name = "demo"
max_artifact_size = "lots"

[services.api]
path = 1
run = "x"
start_timeout = 0
health = "health"
depends_on = "db"
"#,
        r#"
sandpit.toml:3:21: `max_artifact_size` must be a size, found `lots`
  hint: write a number of bytes or a number with a unit (B, KiB, MiB, GiB, TiB; KB, MB, GB and TB count in 1024s too), e.g. max_artifact_size = "2GiB"
sandpit.toml:6:8: `path` must be a string, found an integer
  hint: write path = "services/api"
sandpit.toml:8:17: `start_timeout` must be at least 1, found 0
  hint: write start_timeout = 60
sandpit.toml:9:10: `health` must be an HTTP path starting with `/`, found `health`
  hint: write health = "/health"
sandpit.toml:10:14: `depends_on` must be an array of names, found a string
  hint: write depends_on = ["migrate"]
"#,
    );
    check(
        r#"
[project]
name = "demo"

[[services]]
path = "."
"#,
        r#"
sandpit.toml:4:1: `services` must be a table, found an array of tables
  hint: write each service as a `[services.<name>]` section
"#,
    );
}

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "."
run = "x"
heatlh = "/h"
colour = "blue"

[servics.web]
path = "."
"#,
        r#"
sandpit.toml:7:1: unknown key `heatlh` in service `api`
  hint: did you mean `health`?
sandpit.toml:8:1: unknown key `colour` in service `api`
  hint: known keys here are `path`, `inputs`, `build`, `output`, `run`, `health`, `start_timeout`, `env`, `depends_on`
sandpit.toml:10:2: unknown section `servics`
  hint: did you mean `services`?
"#,
    );
    // One unknown key alone refuses the file: before, it was a warning printed after the build,
    // and the misspelt key's default was used (regression: `heatlh` waited out a 60 s timeout).
    let diagnostics = parse("[project]\nname = \"demo\"\nnmae = 1\n").unwrap_err();
    assert_eq!(diagnostics.errors.len(), 1);
    assert_eq!(
        diagnostics.errors[0].message,
        "unknown key `nmae` in `[project]`"
    );
}

#[test]
fn unknown_keys_are_refused_in_every_kind_of_table() {
    // One table per case: the section kind, a file with one unknown key in it, and the one
    // diagnostic expected (the did-you-mean hint included).
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown section (a typo of a named table)",
            "[project]\nname = \"demo\"\n[service.api]\npath = \".\"\nrun = \"x\"\n",
            "sandpit.toml:3:2: unknown section `service`\n  hint: did you mean `services`?",
        ),
        (
            "unknown section with nothing close",
            "[project]\nname = \"demo\"\n[workflows]\n",
            "sandpit.toml:3:2: unknown section `workflows`\n  hint: sections are `project`, `environments`, `services`, `jobs`, `models`, `terraform`, `database`, `pipelines`, `gateway`, `biomes`, `gitlab`",
        ),
        (
            "unknown key at the top level",
            "version = 2\n[project]\nname = \"demo\"\n",
            "sandpit.toml:1:1: unknown key `version` at the top of the file\n  hint: keys belong in a section; sections are `project`, `environments`, `services`, `jobs`, `models`, `terraform`, `database`, `pipelines`, `gateway`, `biomes`, `gitlab`",
        ),
        (
            "[project]",
            "[project]\nname = \"demo\"\nmax_artifact_sise = 1\n",
            "sandpit.toml:3:1: unknown key `max_artifact_sise` in `[project]`\n  hint: did you mean `max_artifact_size`?",
        ),
        (
            "an environment",
            "[project]\nname = \"demo\"\n[environments.dev]\n[environments.test]\npromote_form = \"dev\"\n",
            "sandpit.toml:5:1: unknown key `promote_form` in environment `test`\n  hint: did you mean `promote_from`?",
        ),
        (
            "an environment's [database]",
            "[project]\nname = \"demo\"\n[environments.prod.database]\nurl_env = \"PROD_URL\"\npasword = \"x\"\n",
            "sandpit.toml:5:1: unknown key `pasword` in `[environments.prod.database]`\n  hint: known keys here are `url`, `url_env`",
        ),
        (
            "an environment's [models]",
            "[project]\nname = \"demo\"\n[environments.dev.models]\nmax_model = 2\n",
            "sandpit.toml:4:1: unknown key `max_model` in `[environments.dev.models]`\n  hint: did you mean `max_models`?",
        ),
        (
            "a service",
            "[project]\nname = \"demo\"\n[services.api]\npath = \".\"\nrun = \"x\"\nheatlh = \"/\"\n",
            "sandpit.toml:6:1: unknown key `heatlh` in service `api`\n  hint: did you mean `health`?",
        ),
        (
            "a job",
            "[project]\nname = \"demo\"\n[jobs.migrate]\npath = \".\"\nrun = \"x\"\ndependson = []\n",
            "sandpit.toml:6:1: unknown key `dependson` in job `migrate`\n  hint: did you mean `depends_on`?",
        ),
        (
            "a model",
            "[project]\nname = \"demo\"\n[models.m]\npath = \"m\"\nfile = \"m.onnx\"\nouput = \"dist\"\n",
            "sandpit.toml:6:1: unknown key `ouput` in model `m`\n  hint: did you mean `output`?",
        ),
        (
            "[database]",
            "[project]\nname = \"demo\"\n[database]\nmigrations = \"db\"\nsead = \"s.sql\"\n",
            "sandpit.toml:5:1: unknown key `sead` in `[database]`\n  hint: did you mean `seed`?",
        ),
        (
            "an environment's [models] written as a dotted key",
            "[project]\nname = \"demo\"\n[environments.dev]\nmodels.max_modles = 2\n",
            "sandpit.toml:4:8: unknown key `max_modles` in `[environments.dev.models]`\n  hint: did you mean `max_models`?",
        ),
    ];
    for (kind, input, expect) in cases {
        assert_eq!(rendered(input), *expect, "{kind}:\n{input}");
    }
}

#[test]
fn component_env_stays_free_form() {
    // `env` is the one table whose keys are the user's: any variable name is accepted, even one
    // that looks like a misspelt sandpit key.
    let spec = parse(
        r#"
[project]
name = "demo"

[services.api]
path = "."
run = "x"
env = { heatlh = "yes", ANYTHING_AT_ALL = "1" }

[jobs.migrate]
path = "."
run = "x"
[jobs.migrate.env]
promote_form = "dev"
"#,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let api = &spec.components[&name("api")];
    assert_eq!(
        api.env.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ANYTHING_AT_ALL", "heatlh"]
    );
    let migrate = &spec.components[&name("migrate")];
    assert_eq!(
        migrate.env.get("promote_form").map(String::as_str),
        Some("dev")
    );
}

#[test]
fn environment_seed_defaults_to_false() {
    let spec = parse(
        r#"
[project]
name = "demo"

[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"
seed = true
"#,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert!(!spec.environments[&name("dev")].seed, "absent means false");
    assert!(spec.environments[&name("test")].seed);
    // The assumed `dev` of a file without environments is not seeded either.
    let spec = parse("[project]\nname = \"tiny\"\n").unwrap();
    assert!(!spec.environments[&name("dev")].seed);
    check(
        r#"
[project]
name = "demo"

[environments.test]
seed = "db/seed.sql"
"#,
        r#"
sandpit.toml:5:8: `seed` must be a boolean, found a string
  hint: write seed = true
"#,
    );
}

#[test]
fn dependencies_must_exist_and_not_loop() {
    check(
        r#"
[project]
name = "demo"

[services.web]
path = "."
run = "x"
depends_on = ["ap", "zzz"]

[services.api]
path = "."
run = "x"
"#,
        r#"
sandpit.toml:7:15: service `web` depends on `ap`, which is not a component in this file
  hint: did you mean `api`?
sandpit.toml:7:21: service `web` depends on `zzz`, which is not a component in this file
  hint: declared components are `api`, `web`
"#,
    );
    check(
        r#"
[project]
name = "demo"

[services.a]
path = "."
run = "x"
depends_on = ["b"]

[services.b]
path = "."
run = "x"
depends_on = ["c"]

[jobs.c]
path = "."
run = "x"
depends_on = ["a"]

[services.d]
path = "."
run = "x"
depends_on = ["d"]
"#,
        r#"
sandpit.toml:7:15: dependency cycle: `a -> b -> c -> a`
  hint: components cannot wait for each other; remove one of these `depends_on` entries
sandpit.toml:22:15: service `d` depends on itself
  hint: remove it from `depends_on`
"#,
    );
}

#[test]
fn names_are_unique_across_kinds() {
    check(
        r#"
[project]
name = "demo"

[services.x]
path = "."
run = "x"

[jobs.x]
path = "."
run = "x"
"#,
        r#"
sandpit.toml:8:7: `x` is declared as both a service and a job
  hint: component names must be unique across services, jobs, models and terraform components; rename one
"#,
    );
}

#[test]
fn paths_stay_inside_the_project() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "/srv/api"
run = "x"
output = "../dist"

[database]
migrations = "db/../../m"
"#,
        r#"
sandpit.toml:5:8: `path` must be a relative path, found `/srv/api`
  hint: write it relative to the directory holding sandpit.toml, e.g. "services/api"
sandpit.toml:7:10: `output` must stay inside the project, found `..` in `../dist`
  hint: sandpit builds from a clean checkout of this repository; move what you need inside it
sandpit.toml:10:14: `migrations` must stay inside the project, found `..` in `db/../../m`
  hint: sandpit builds from a clean checkout of this repository; move what you need inside it
"#,
    );
}

#[test]
fn env_var_keys_are_checked() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "."
run = "x"
env = { "LOG-LEVEL" = "info", PORT = "1", SANDPIT_X = "y", WORKERS = 4, OK = "fine" }
"#,
        r#"
sandpit.toml:7:9: `LOG-LEVEL` is not a valid environment variable name
  hint: environment variable names are letters, digits and `_`, not starting with a digit, e.g. `LOG_LEVEL`
sandpit.toml:7:31: `PORT` is set by sandpit and cannot be overridden in `env`
  hint: sandpit sets PORT, DATABASE_URL and SANDPIT_* for every component; choose another name
sandpit.toml:7:43: `SANDPIT_X` is set by sandpit and cannot be overridden in `env`
  hint: sandpit sets PORT, DATABASE_URL and SANDPIT_* for every component; choose another name
sandpit.toml:7:70: environment variable `WORKERS` must be a string, found an integer
  hint: quote it: WORKERS = "4"
"#,
    );
}

#[test]
fn promotion_references_and_cycles() {
    check(
        r#"
[project]
name = "demo"

[environments.dev]
biomes = true
promote_from = "dev"

[environments.test]
promote_from = "dve"

[environments.a]
promote_from = "c"

[environments.b]
promote_from = "a"

[environments.c]
promote_from = "b"
"#,
        r#"
sandpit.toml:6:16: environment `dev` promotes from itself
  hint: remove `promote_from`, or name the environment whose artifacts are promoted here
sandpit.toml:9:16: environment `test` promotes from `dve`, which is not declared
  hint: did you mean `dev`?
sandpit.toml:12:16: promotion cycle: `a -> b -> c -> a`
  hint: promotion must flow one way, e.g. dev -> test -> prod; remove one of these `promote_from` keys
"#,
    );
}

#[test]
fn approvals_need_protection() {
    check(
        r#"
[project]
name = "demo"

[environments.test]
approvals = 2
"#,
        r#"
sandpit.toml:5:13: environment `test` requires 2 approvals but is not protected
  hint: add protected = true, or remove `approvals`
"#,
    );
}

#[test]
fn auto_promote_needs_an_environment_to_promote_from() {
    check(
        r#"
[project]
name = "demo"

[environments.dev]
biomes = true
auto_promote = true

[environments.test]
promote_from = "dev"
auto_promote = true
"#,
        r#"
sandpit.toml:6:16: environment `dev` sets auto_promote = true but promotes from no environment
  hint: add promote_from = "ENV" naming where its artifacts come from, or remove `auto_promote`
"#,
    );
    let spec = parse(
        "[project]\nname = \"demo\"\n[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\nauto_promote = true\n[environments.prod]\npromote_from = \"test\"\n",
    )
    .unwrap();
    assert!(spec.environments[&name("test")].auto_promote);
    assert!(!spec.environments[&name("prod")].auto_promote);
    assert!(!spec.environments[&name("dev")].auto_promote);
}

#[test]
fn database_url_is_exactly_one_of_two() {
    check(
        r#"
[project]
name = "demo"

[environments.prod.database]
url = "postgres://x"
url_env = "PROD_URL"

[environments.test.database]
"#,
        r#"
sandpit.toml:6:1: `[environments.prod.database]` sets both `url` and `url_env`
  hint: keep one; `url_env` keeps the secret out of the repository
sandpit.toml:8:1: `[environments.test.database]` has neither `url` nor `url_env`
  hint: add url_env = "PROD_DATABASE_URL" naming the variable that holds the URL
"#,
    );
}

#[test]
fn model_files_are_onnx() {
    check(
        r#"
[project]
name = "demo"

[models.recovery]
path = "models/recovery"
file = "model.pt"
"#,
        r#"
sandpit.toml:6:8: model `recovery`: `file` must be an ONNX file ending in `.onnx`, found `model.pt`
  hint: export the model to ONNX and name the file, e.g. file = "model.onnx"
"#,
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "/abs"

[jobs.Migrate]
path = "."
run = "x"

[environments.dev]
biomes = 1
protectd = true
"#,
        r#"
sandpit.toml:4:1: service `api` has no `run` command
  hint: add run = "python3 app.py"
sandpit.toml:5:8: `path` must be a relative path, found `/abs`
  hint: write it relative to the directory holding sandpit.toml, e.g. "services/api"
sandpit.toml:7:7: invalid job name `Migrate`: it must start with a lowercase letter
  hint: names are DNS labels: 1 to 40 of `a-z`, `0-9` and `-`, starting with a letter and not ending with `-`, e.g. `grade-api`
sandpit.toml:12:10: `biomes` must be a boolean, found an integer
  hint: write biomes = true
sandpit.toml:13:1: unknown key `protectd` in environment `dev`
  hint: did you mean `protected`?
"#,
    );
    // Unknown keys and sections are collected with everything else, not reported alone.
    let diagnostics =
        parse("[project]\nname = 1\nnmae = \"x\"\n[services.a]\nheatlh = \"/\"\n[service.b]\n")
            .unwrap_err();
    let messages: Vec<&str> = diagnostics
        .errors
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "`name` must be a string, found an integer",
            "unknown key `nmae` in `[project]`",
            "service `a` has no `path`",
            "service `a` has no `run` command",
            "unknown key `heatlh` in service `a`",
            "unknown section `service`",
        ]
    );
    assert!(diagnostics
        .errors
        .windows(2)
        .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
}

#[test]
fn columns_count_characters_not_bytes() {
    check(
        "[project]\nname = \"demo\"\n[services.api]\npath = \".\"\nrun = \"x\"\nenv = { \"ÉTAT\" = \"x\", \"Ü\" = \"y\" }\n",
        r#"
sandpit.toml:6:9: `ÉTAT` is not a valid environment variable name
  hint: environment variable names are letters, digits and `_`, not starting with a digit, e.g. `LOG_LEVEL`
sandpit.toml:6:23: `Ü` is not a valid environment variable name
  hint: environment variable names are letters, digits and `_`, not starting with a digit, e.g. `LOG_LEVEL`
"#,
    );
}

const FULL: &str = r#"
[project]
name = "grades"
max_artifact_size = "512MiB"

[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"
[environments.test.models]
max_memory = "4GiB"
max_models = 3

[environments.prod]
promote_from = "test"
protected = true
[environments.prod.database]
url_env = "PROD_DATABASE_URL"

[services.grade-api]
path = "./services/grade-api/"
build = "make"
output = "dist"
run = "python3 app.py"
health = "/healthz"
env = { LOG_LEVEL = "debug" }
depends_on = ["migrate", "recovery"]

[services.web]
path = "web"
run = "node server.js"
depends_on = ["grade-api"]

[jobs.migrate]
path = "."
run = "sandpit-migrate"

[models.recovery]
path = "models/recovery"
file = "recovery.onnx"

[database]
migrations = "db/migrations"
seed = "db/seed.sql"
"#;

#[test]
fn a_full_file_builds_the_model() {
    let spec = parse(FULL).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(spec.project.name, name("grades"));
    assert_eq!(
        spec.project.max_artifact_size,
        ByteSize(512 * ByteSize::MIB)
    );

    let environments: Vec<&str> = spec.environments.keys().map(Name::as_str).collect();
    assert_eq!(environments, ["dev", "prod", "test"]);
    let dev = &spec.environments[&name("dev")];
    assert!(dev.biomes && !dev.protected && dev.approvals == 0 && dev.promote_from.is_none());
    let test = &spec.environments[&name("test")];
    assert!(!test.biomes);
    assert_eq!(test.promote_from, Some(name("dev")));
    assert_eq!(
        (test.models_max_memory, test.models_max_count),
        (Some(ByteSize(4 * ByteSize::GIB)), Some(3))
    );
    let prod = &spec.environments[&name("prod")];
    assert!(prod.protected);
    assert_eq!(prod.approvals, 1, "protected defaults to one approval");
    assert_eq!(
        prod.database_url,
        Some(DatabaseUrl::FromEnv("PROD_DATABASE_URL".into()))
    );

    let api = &spec.components[&name("grade-api")];
    assert_eq!(api.kind, ComponentKind::Service);
    assert_eq!(api.path, "services/grade-api");
    assert_eq!(api.build.as_deref(), Some("make"));
    assert_eq!(api.output, "dist");
    assert_eq!(api.run.as_deref(), Some("python3 app.py"));
    assert_eq!(api.health.as_deref(), Some("/healthz"));
    assert_eq!(api.start_timeout, Duration::from_secs(60));
    assert_eq!(api.env.get("LOG_LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(api.depends_on, [name("migrate"), name("recovery")]);

    let web = &spec.components[&name("web")];
    assert_eq!(
        (
            web.output.as_str(),
            web.health.as_deref(),
            web.build.as_deref()
        ),
        (".", Some("/"), None)
    );
    let migrate = &spec.components[&name("migrate")];
    assert_eq!(
        (
            migrate.kind,
            migrate.start_timeout,
            migrate.health.as_deref()
        ),
        (ComponentKind::Job, Duration::from_secs(600), None)
    );
    let recovery = &spec.components[&name("recovery")];
    assert_eq!(
        (
            recovery.kind,
            recovery.run.as_deref(),
            recovery.file.as_deref()
        ),
        (ComponentKind::Model, None, Some("recovery.onnx"))
    );

    let database = spec.database.as_ref().unwrap();
    assert_eq!(
        (
            database.migrations.as_str(),
            database.seed.as_deref(),
            database.shared.as_deref()
        ),
        ("db/migrations", Some("db/seed.sql"), None)
    );

    let order: Vec<&str> = spec.start_order().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["migrate", "recovery", "grade-api", "web"]);
    assert_eq!(spec.services().count(), 2);
}

#[test]
fn a_file_without_environments_gets_dev_with_biomes() {
    let spec = parse("[project]\nname = \"tiny\"\n").unwrap();
    assert_eq!(spec.project.max_artifact_size, ByteSize(2 * ByteSize::GIB));
    let environments: Vec<(&str, bool)> = spec
        .environments
        .values()
        .map(|e| (e.name.as_str(), e.biomes))
        .collect();
    assert_eq!(environments, [("dev", true)]);
    assert!(spec.components.is_empty() && spec.database.is_none());
    // Integer byte counts are sizes too.
    let spec = parse("[project]\nname = \"tiny\"\nmax_artifact_size = 1000\n").unwrap();
    assert_eq!(spec.project.max_artifact_size, ByteSize(1000));
}

#[test]
fn diagnostics_render_in_file_order() {
    let diagnostics = parse("[project]\nnmae = \"x\"\n").unwrap_err();
    assert_eq!(
        diagnostics.to_string(),
        "sandpit.toml:1:1: `[project]` has no `name`\n  hint: add name = \"my-project\"\n\
         sandpit.toml:2:1: unknown key `nmae` in `[project]`\n  hint: did you mean `name`?"
    );
    let error: &dyn std::error::Error = &diagnostics;
    assert!(error.to_string().starts_with("sandpit.toml:1:1:"));
    let plain = Diagnostic {
        line: 12,
        column: 7,
        message: "bad".into(),
        hint: None,
    };
    assert_eq!(plain.render("x/sandpit.toml"), "x/sandpit.toml:12:7: bad");
}

#[test]
fn starter_file_parses_cleanly() {
    for project in ["demo", "grade-api", "a", "x1"] {
        let spec = parse(&starter_file(project)).unwrap_or_else(|d| panic!("{project}:\n{d}"));
        assert_eq!(spec.project.name, name(project));
        let prod = &spec.environments[&name("prod")];
        assert!(prod.protected && prod.approvals == 1);
        assert_eq!(prod.promote_from, Some(name("test")));
        assert!(spec.environments[&name("dev")].biomes);
        assert_eq!(spec.components.len(), 2);
    }
    // Commented-out sections are valid too once uncommented.
    let uncommented: String = starter_file("demo")
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || is_assignment(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let spec = parse(&uncommented).unwrap_or_else(|d| panic!("{d}\n{uncommented}"));
    assert!(spec.database.is_some());
    assert_eq!(spec.components.len(), 3);
}

#[test]
fn starter_file_names_only_what_a_new_project_has() {
    let starter = starter_file("demo");
    // Regression: it pointed at docs/sandpit.schema.json, which only sandpit's own repository has.
    assert!(!starter.contains("docs/"), "{starter}");
    assert!(
        starter.contains("`sandpit schema > sandpit.schema.json`"),
        "{starter}"
    );
    // Files and directories a new project does not have appear only in comments.
    for line in starter.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for missing in ["db/", "models/", "dist", "export.py", "make "] {
            assert!(
                !line.contains(missing),
                "uncommented `{line}` names {missing}"
            );
        }
    }
    // The placeholder service listens on loopback only: it serves the project's own files.
    assert!(starter.contains("--bind 127.0.0.1 $PORT"), "{starter}");
}

/// `key = value`, as opposed to prose that happens to contain ` = `.
fn is_assignment(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn the_checked_in_json_schema_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/sandpit.schema.json"
    );
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    #[allow(clippy::disallowed_methods)] // a test switch, not a setting of sandpit
    let bless = std::env::var_os("SANDPIT_BLESS").is_some_and(|value| value == "1");
    if bless {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/sandpit.schema.json is out of date with crates/spec/src/schema.rs; regenerate it with\n  \
         SANDPIT_BLESS=1 cargo test -p sandpit-spec the_checked_in_json_schema_is_current"
    );
}

#[test]
fn json_schema_lists_every_key_with_types_and_defaults() {
    let schema = json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["required"], serde_json::json!(["project"]));
    let service =
        &schema["properties"]["services"]["patternProperties"]["^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"];
    assert_eq!(service["required"], serde_json::json!(["path", "run"]));
    assert_eq!(service["properties"]["health"]["default"], "/");
    assert_eq!(service["properties"]["start_timeout"]["default"], 60);
    assert_eq!(service["properties"]["start_timeout"]["type"], "integer");
    let environment = &schema["properties"]["environments"]["patternProperties"]
        ["^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"];
    assert_eq!(environment["properties"]["biomes"]["type"], "boolean");
    assert_eq!(environment["properties"]["seed"]["type"], "boolean");
    assert_eq!(environment["properties"]["seed"]["default"], false);
    assert_eq!(
        environment["properties"]["database"]["properties"]["url_env"]["type"],
        "string"
    );
}

#[test]
fn extra_inputs_are_paths_inside_the_project() {
    let parsed = parse(
        r#"
[project]
name = "demo"

[services.api]
path = "api"
inputs = ["./lib//common/", "proto"]
run = "x"
"#,
    )
    .unwrap();
    let api = &parsed.components[&Name::parse("api").unwrap()];
    assert_eq!(api.inputs, ["lib/common", "proto"]);

    let errors = parse(
        r#"
[project]
name = "demo"

[services.api]
path = "api"
inputs = ["../outside", 7]
run = "x"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("sandpit.toml:7:11: `inputs` entry"),
        "{errors}"
    );
    assert!(
        errors.contains("sandpit.toml:7:25: `inputs` must list paths as strings, found an integer"),
        "{errors}"
    );
}

#[test]
fn json_schema_refuses_unknown_keys_where_the_checker_does() {
    let schema = json_schema();
    let entry = |section: &str| {
        schema["properties"][section]["patternProperties"]["^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"]
            .clone()
    };
    let closed = [
        ("the file", schema.clone()),
        ("[project]", schema["properties"]["project"].clone()),
        ("[database]", schema["properties"]["database"].clone()),
        ("an environment", entry("environments")),
        (
            "an environment's [database]",
            entry("environments")["properties"]["database"].clone(),
        ),
        (
            "an environment's [models]",
            entry("environments")["properties"]["models"].clone(),
        ),
        ("a service", entry("services")),
        ("a job", entry("jobs")),
        ("a model", entry("models")),
        // The named tables themselves take only names.
        ("[services]", schema["properties"]["services"].clone()),
    ];
    for (what, table) in &closed {
        assert_eq!(table["additionalProperties"], false, "{what}: {table:#}");
    }
    // A component's `env` is the user's own: open to any variable, as long as it is a string.
    for kind in ["services", "jobs", "models"] {
        assert_eq!(
            entry(kind)["properties"]["env"]["additionalProperties"],
            serde_json::json!({ "type": "string" }),
            "{kind}"
        );
    }
    // And no object in the schema is left open by accident: every one with `properties` is closed.
    fn walk(at: &str, value: &serde_json::Value, open: &mut Vec<String>) {
        if let Some(object) = value.as_object() {
            if object.contains_key("properties")
                && object.get("additionalProperties") != Some(&serde_json::json!(false))
            {
                open.push(at.to_owned());
            }
            for (key, child) in object {
                walk(&format!("{at}/{key}"), child, open);
            }
        }
    }
    let mut open = Vec::new();
    walk("", &schema, &mut open);
    assert!(open.is_empty(), "open objects: {open:?}");
}

#[test]
fn nul_in_env_value_is_a_located_error() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "."
run = "x"
env = { A = "x\u0000y", B = "fine" }
"#,
        r#"
sandpit.toml:7:13: environment variable `A` contains a NUL character (character 2 of the string), which cannot be passed to a process
  hint: remove the `\u0000` escape from the string
"#,
    );
}

#[test]
fn nul_in_run_and_build_commands_is_a_located_error() {
    check(
        r#"
[project]
name = "demo"

[services.api]
path = "."
build = "make\u0000all"
run = "\u0000"

[jobs.migrate]
path = "a\u0000b"
inputs = ["lib", "x\u0000"]
run = "ok"
"#,
        r#"
sandpit.toml:6:9: `build` contains a NUL character (character 5 of the string), which cannot be passed to a process
  hint: remove the `\u0000` escape from the string
sandpit.toml:7:7: `run` contains a NUL character (character 1 of the string), which cannot be passed to a process
  hint: remove the `\u0000` escape from the string
sandpit.toml:10:8: `path` contains a NUL character (character 2 of the string), which cannot be part of a path
  hint: remove the `\u0000` escape from the string
sandpit.toml:11:18: `inputs` entry contains a NUL character (character 2 of the string), which cannot be part of a path
  hint: remove the `\u0000` escape from the string
"#,
    );
}

#[test]
fn control_characters_in_echoed_input_are_escaped() {
    check(
        r#"
[project]
name = "demo"
"a\u001b[31m\u0000" = 1

[services.api]
path = "."
run = "x"
health = "h\u0007"
"#,
        r#"
sandpit.toml:3:1: unknown key `a\u{1b}[31m\0` in `[project]`
  hint: known keys here are `name`, `max_artifact_size`
sandpit.toml:8:10: `health` must be an HTTP path starting with `/`, found `h\u{7}`
  hint: write health = "/h\u0007"
"#,
    );
}

#[test]
fn control_characters_in_a_toml_syntax_error_are_escaped() {
    check(
        r#"
[project]
name = "demo"
"a\u0000" = 1
"a\u0000" = 2
"#,
        r#"
sandpit.toml:4:1: invalid TOML: duplicate key `a\0` in table `project`
"#,
    );
}

#[test]
fn gitlab_reporting_is_read_with_its_default_token_secret() {
    let spec = parse(
        "[project]\nname = \"demo\"\n[gitlab]\napi_url = \"https://gitlab.example/api/v4/\"\nproject = \"group/app\"\n",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        spec.gitlab,
        Some(Gitlab {
            api_url: "https://gitlab.example/api/v4".to_owned(),
            project: "group/app".to_owned(),
            token_secret: "GITLAB_TOKEN".to_owned(),
        }),
        "the trailing `/` is dropped, the token's secret defaults"
    );
    let spec = parse(
        "[project]\nname = \"demo\"\n[gitlab]\napi_url = \"http://127.0.0.1:9/api/v4\"\nproject = \"42\"\ntoken_secret = \"CI_TOKEN\"\n",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(spec.gitlab.unwrap().token_secret, "CI_TOKEN");
    assert_eq!(parse("[project]\nname = \"demo\"\n").unwrap().gitlab, None);
}

#[test]
fn gitlab_api_url_must_be_http_and_the_rest_usable() {
    let cases: &[(&str, &str)] = &[
        (
            "api_url = \"ftp://gitlab.example/api/v4\"\nproject = \"g/a\"\n",
            "sandpit.toml:4:11: `api_url` is not an http(s) URL: `ftp://gitlab.example/api/v4`\n  hint: write the API's root, e.g. api_url = \"https://gitlab.example/api/v4\"",
        ),
        (
            "api_url = \"https:///api/v4\"\nproject = \"g/a\"\n",
            "sandpit.toml:4:11: `api_url` names no host: `https:///api/v4`\n  hint: write the API's root, e.g. api_url = \"https://gitlab.example/api/v4\"",
        ),
        (
            "api_url = \"https://gitlab.example/api/v4?x=1\"\nproject = \"g/a\"\n",
            "sandpit.toml:4:11: `api_url` has a query or fragment, which the API paths cannot follow: `https://gitlab.example/api/v4?x=1`\n  hint: write the API's root, e.g. api_url = \"https://gitlab.example/api/v4\"",
        ),
        (
            "api_url = \"https://gitlab.example/api/v4\"\nproject = \"/g\"\n",
            "sandpit.toml:5:11: `project` `/g` is not a GitLab project\n  hint: write its path (project = \"group/app\") or its numeric id (project = \"42\")",
        ),
        (
            "api_url = \"https://gitlab.example/api/v4\"\nproject = \"g/a\"\ntoken_secret = \"gitlab_token\"\n",
            "sandpit.toml:6:16: `token_secret` `gitlab_token` cannot name a configuration secret, whose names are upper case\n  hint: write token_secret = \"GITLAB_TOKEN\"",
        ),
        (
            "project = \"g/a\"\n",
            "sandpit.toml:3:1: `[gitlab]` has no `api_url`\n  hint: add api_url = \"https://gitlab.example/api/v4\"",
        ),
    ];
    for (body, expect) in cases {
        let input = format!("[project]\nname = \"demo\"\n[gitlab]\n{body}");
        assert_eq!(rendered(&input), *expect, "input:\n{input}");
    }
}

#[test]
fn pipelines_list_branch_patterns_and_the_environment_tags_go_to() {
    let spec = parse(
        "[project]\nname = \"demo\"\n[environments.dev]\nbiomes = true\n[environments.test]\npromote_from = \"dev\"\n[pipelines]\nbranches = [\"release/*\"]\ntag_promotes_to = \"test\"\n",
    )
    .unwrap();
    assert_eq!(spec.pipelines.branches, ["release/*"]);
    assert_eq!(spec.pipelines.tag_promotes_to, Some(name("test")));
    assert!(spec.pipelines.lists_branch("release/2"));

    let refused = parse(
        "[project]\nname = \"demo\"\n[environments.dev]\n[pipelines]\nbranches = [\"ok\", \"bad name\", 3]\ntag_promotes_to = \"tset\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("`bad name` is not a branch name or pattern"),
        "{refused}"
    );
    assert!(
        refused.contains("must list branches as strings"),
        "{refused}"
    );
    assert!(
        refused.contains("`tag_promotes_to` names environment `tset`, which is not declared"),
        "{refused}"
    );
    let unknown = parse("[project]\nname = \"demo\"\n[pipelines]\nbranch = [\"x\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("branches"),
        "a did-you-mean for `branch`: {unknown}"
    );
}

#[test]
fn biomes_gateway_and_idle_bases_have_defaults_and_located_refusals() {
    let plain = parse("[project]\nname = \"demo\"\n").unwrap();
    assert_eq!(plain.biomes, Biomes::default());
    assert_eq!(plain.biomes.ttl.as_secs(), 7 * 86_400);
    assert_eq!(plain.biomes.idle_timeout, None);
    assert_eq!(plain.gateway.port, None);
    assert_eq!(plain.environments[&name("dev")].idle_timeout, None);

    let spec = parse(
        "[project]\nname = \"demo\"\n[environments.dev]\nbiomes = true\nidle_timeout = \"2h\"\n[gateway]\nport = 8480\n[biomes]\nidle_timeout = \"30m\"\nttl = \"3d\"\noverlay = true\nreap_max_percent = 20\n",
    )
    .unwrap();
    assert_eq!(spec.gateway.port, Some(8480));
    assert_eq!(spec.biomes.idle_timeout.map(|s| s.as_secs()), Some(1_800));
    assert_eq!(spec.biomes.ttl.as_secs(), 3 * 86_400);
    assert!(spec.biomes.overlay);
    assert_eq!(spec.biomes.reap_max_percent, 20);
    assert_eq!(
        spec.environments[&name("dev")]
            .idle_timeout
            .map(|s| s.as_secs()),
        Some(7_200)
    );

    for (body, expect) in [
        (
            "[biomes]\nttl = \"7 days\"\n",
            "sandpit.toml:5:7: `ttl` must be a span of time, found `7 days`",
        ),
        (
            "[biomes]\nidle_timeout = \"0s\"\n",
            "sandpit.toml:5:16: `idle_timeout` must be a span of time, found `0s`",
        ),
        (
            "[biomes]\nidle_timeout = 30\n",
            "sandpit.toml:5:16: `idle_timeout` must be a span of time such as \"30m\" or \"7d\"",
        ),
        (
            "[biomes]\nreap_max_percent = 150\n",
            "sandpit.toml:5:20: `reap_max_percent` is a percentage, at most 100, found 150",
        ),
        (
            "[gateway]\nport = 70000\n",
            "sandpit.toml:5:8: `port` must be a port from 1 to 65535, found 70000",
        ),
        (
            "[biomes]\nidle = \"3m\"\n",
            "sandpit.toml:5:1: unknown key `idle`",
        ),
    ] {
        let input = format!("[project]\nname = \"demo\"\n\n{body}");
        let shown = rendered(&input);
        assert!(shown.contains(expect), "input:\n{input}\nshown:\n{shown}");
    }
}

#[test]
fn terraform_components_and_the_binary_setting() {
    let spec = parse(
        r#"
[project]
name = "demo"

[terraform]
binary = "tofu"

[terraform.network]
path = "infra/network"

[terraform.infra]
path = "infra/app"
vars = { region = "local", replicas = "2" }
depends_on = ["network"]

[services.api]
path = "api"
run = "x"
depends_on = ["infra"]
"#,
    )
    .unwrap();
    assert_eq!(spec.terraform.binary, "tofu");
    let infra = &spec.components[&name("infra")];
    assert_eq!(infra.kind, ComponentKind::Terraform);
    assert_eq!(infra.path, "infra/app");
    assert_eq!(infra.output, ".");
    assert_eq!(infra.run, None);
    assert_eq!(infra.build, None);
    assert_eq!(infra.depends_on, vec![name("network")]);
    assert_eq!(infra.vars.get("region").map(String::as_str), Some("local"));
    assert_eq!(infra.vars.len(), 2);
    let order: Vec<&str> = spec
        .terraform_components()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(order, ["network", "infra"]);
    assert_eq!(
        spec.components[&name("api")].depends_on,
        vec![name("infra")]
    );

    let plain = parse("[project]\nname = \"demo\"\n[terraform.infra]\npath = \"infra\"\n").unwrap();
    assert_eq!(plain.terraform.binary, "terraform");
    assert!(plain.components[&name("infra")].vars.is_empty());
}

#[test]
fn terraform_mistakes_are_located() {
    check(
        r#"
[project]
name = "demo"

[terraform.infra]
path = "infra"
vars = { sha = "x", "bad-name" = "y", count = 3 }
run = "terraform apply"
"#,
        r#"
sandpit.toml:6:10: `sha` is set by sandpit and cannot be given in `vars`
  hint: sandpit passes `sha` (the commit), `env` and `biome` to every terraform run; declare them as variables in the module and choose another name here
sandpit.toml:6:21: `bad-name` is not a valid terraform variable name
  hint: it is passed as TF_VAR_<name>: letters, digits and `_`, not starting with a digit
sandpit.toml:6:47: terraform variable `count` must be a string, found an integer
  hint: quote it: count = "3"
sandpit.toml:7:1: unknown key `run` in terraform component `infra`
  hint: known keys here are `path`, `vars`, `depends_on`
"#,
    );
    check(
        r#"
[project]
name = "demo"

[jobs.prepare]
path = "prepare"
run = "x"

[terraform.infra]
path = "infra"
depends_on = ["prepare", "nowhere"]
"#,
        r#"
sandpit.toml:10:15: terraform component `infra` depends on `prepare`, a job
  hint: terraform is applied before services and jobs start; it may depend only on other terraform components (let the service depend on the terraform component instead)
sandpit.toml:10:26: terraform component `infra` depends on `nowhere`, which is not a component in this file
  hint: declared components are `infra`, `prepare`
"#,
    );
    check(
        r#"
[project]
name = "demo"

[terraform]
binary = ""

[terraform.infra]
"#,
        r#"
sandpit.toml:5:10: `binary` must name a program, found ``
  hint: write binary = "terraform", "tofu" or a path to one
sandpit.toml:7:1: terraform component `infra` has no `path`
  hint: add path = "infra"
"#,
    );
    check(
        r#"
[project]
name = "demo"

[terraform.binary]
path = "infra"
"#,
        r#"
sandpit.toml:4:12: `binary` is a setting of `[terraform]`, not a terraform component name
  hint: write binary = "tofu" under `[terraform]`, and give the terraform component another name
"#,
    );
}
