//! The commented starter `sandpit.toml` that `sandpit init` writes.

/// A starter file for a project called `project_name`: one service, one job, and the usual
/// dev → test → prod environments, with the optional sections shown commented out.
///
/// `project_name` should already be a valid name; it is written as a TOML string either way.
pub fn starter_file(project_name: &str) -> String {
    let quoted = quote(project_name);
    format!(
        r#"# sandpit.toml: how sandpit builds, runs and promotes this project.
# Reference: every key is described in docs/sandpit.schema.json (point your editor at it).

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

# Services are long-running HTTP processes. sandpit sets PORT and DATABASE_URL for them.
[services.web]
# Source subtree, relative to this file; only changes here cause a rebuild.
path = "."
# Build command run in a clean checkout (leave it out to package the subtree as is).
# build = "make build"
# Directory packaged into the artifact, relative to `path`.
# output = "dist"
run = "python3 -m http.server $PORT"
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
# [database]
# migrations = "db/migrations"
# seed = "db/seed.sql"

# Models are ONNX files served by the environment's shared model endpoint.
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
