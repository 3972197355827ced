//! The commented starter `sandpit.toml` that `sandpit init` writes.

/// A starter file for a project called `project_name`: one service, one job, and the usual
/// dev → test → prod environments, with the optional sections shown commented out.
///
/// `project_name` should already be a valid name; it is written as a TOML string either way.
pub fn starter_file(project_name: &str) -> String {
    let quoted = quote(project_name);
    format!(
        r#"# sandpit.toml: how sandpit builds, runs and promotes this project.
# Every key is checked: a misspelt one is an error, reported before anything is built.
# `sandpit schema > sandpit.schema.json` writes a JSON Schema of this file for editor completion
# (with Taplo or "Even Better TOML", put `#:schema ./sandpit.schema.json` on the first line).

# The project: a git repository with this file at its root.
[project]
name = {quoted}
# The most bytes one artifact may expand to.
max_artifact_size = "2GiB"

# Environments are long-lived targets. Artifacts are promoted along `promote_from`, byte for byte.
# Biomes (short-lived personal or per-branch copies) are created inside environments with biomes = true.
[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"

[environments.prod]
promote_from = "test"
# Promotions into prod need approval by someone other than the promoter.
protected = true
approvals = 1
# Where prod's shared PostgreSQL instance is; the URL itself stays out of the repository.
# [environments.prod.database]
# url_env = "PROD_DATABASE_URL"

# Services are long-running HTTP processes. sandpit sets PORT for them (and DATABASE_URL once
# there is a [database]).
[services.web]
# Source subtree, relative to this file; only changes here cause a rebuild.
path = "."
# Build command run in a clean checkout (leave it out to package the subtree as is).
# build = "make build"
# Directory packaged into the artifact, relative to `path`.
# output = "dist"
# A placeholder that serves this directory on loopback; replace it with your own service.
run = "python3 -m http.server --bind 127.0.0.1 $PORT"
# HTTP path that answers 2xx once the service is ready.
health = "/"
start_timeout = 60
depends_on = ["migrate"]
# env = {{ LOG_LEVEL = "info" }}

# Jobs run to completion before what depends on them starts: migrations, data preparation.
[jobs.migrate]
path = "."
run = "echo 'nothing to migrate yet'"

# The project's database: each environment gets a template built from these, and each biome a copy.
# Create the migrations directory (ordered `.sql` files) and commit it before uncommenting.
# [database]
# migrations = "db/migrations"
# Runs into every biome's database; an environment's own only with `seed = true` under it.
# seed = "db/seed.sql"

# Models are ONNX files served by the environment's shared model endpoint; `build` must write
# `file` into `output`.
# [models.recovery]
# path = "models/recovery"
# build = "python3 export.py"
# output = "dist"
# file = "model.onnx"
"#
    )
}

/// A TOML basic string, so even an odd name cannot break the file's syntax.
fn quote(raw: &str) -> String {
    let mut quoted = String::from("\"");
    for c in raw.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
