//! The one description of `sandpit.toml`'s shape: sections, keys, types, defaults, descriptions.
//!
//! Both the type checker ([`crate::typecheck`]) and the JSON Schema generator ([`json_schema`])
//! read these tables, so the editor schema and the parser can never disagree about a key.

use serde_json::{json, Map, Value as Json};

/// The file name sandpit looks for at the project root.
pub const FILE_NAME: &str = "sandpit.toml";

/// [`sandpit_domain::Name`] as a regular expression, for editors.
pub(crate) const NAME_PATTERN: &str = "^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$";

/// A POSIX-ish environment variable name.
pub(crate) const ENV_VAR_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// What [`sandpit_domain::ByteSize::parse`] accepts when given a string.
/// What [`sandpit_domain::Span::parse`] accepts, less its ordering and non-zero rules.
const SPAN_PATTERN: &str = "^\\s*([0-9]+[wdhms])+\\s*$";
const SIZE_PATTERN: &str = "^\\s*[0-9]+\\s*(B|K|KB|kB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)?\\s*$";

/// The type of a key's value, including the checks every value of that type gets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Any string.
    String,
    /// A shell command: a non-blank string.
    Command,
    /// A relative path that stays inside the project; stored normalised.
    Path,
    /// An HTTP path starting with `/`.
    HttpPath,
    /// The name of an environment variable.
    EnvVarName,
    Bool,
    /// An integer within `min..=u32::MAX`.
    Integer {
        min: u32,
    },
    /// A byte size: `"2GiB"` or a number of bytes.
    Size,
    /// A span of time: `"30m"`, `"7d"`, `"1h30m"` ([`sandpit_domain::Span`]).
    Span,
    /// A TCP port: an integer in 1..=65535.
    Port,
    /// A [`sandpit_domain::Name`] given as a string value.
    Name,
    /// An array of names.
    Names,
    /// An array of relative paths that stay inside the project; stored normalised.
    Paths,
    /// An array of branch names or glob patterns (`release/*`).
    BranchPatterns,
    /// A table of environment variables (`NAME = "value"`) handed to a component.
    EnvVars,
    /// A table of Terraform input variables (`name = "value"`), passed as `TF_VAR_<name>`.
    TerraformVars,
    /// A fixed sub-table.
    Table(&'static Section),
    /// A table whose keys are names chosen by the user, each holding one `Section`.
    Named(&'static Section),
    /// A table holding the keys of `settings` (values that are not tables) and, under every
    /// other key, a named entry of `named`: `[terraform] binary = "tofu"` beside
    /// `[terraform.infra]`. A setting's name is reserved: no entry may be called that.
    NamedWithSettings {
        settings: &'static Section,
        named: &'static Section,
    },
}

/// A default written into the model when the key is absent (and shown in the JSON Schema).
#[derive(Debug, Clone, Copy)]
pub(crate) enum DefaultValue {
    None,
    String(&'static str),
    Bool(bool),
    Integer(u32),
}

#[derive(Debug)]
pub(crate) struct KeySpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: DefaultValue,
    pub description: &'static str,
    /// The right-hand side of a good example, used in hints (`add run = "python3 app.py"`).
    pub example: &'static str,
}

#[derive(Debug)]
pub(crate) struct Section {
    /// For [`Kind::Named`] entries: what one entry is called in messages (`service`).
    pub label: &'static str,
    pub description: &'static str,
    pub keys: &'static [KeySpec],
}

impl Section {
    pub fn key(&self, name: &str) -> Option<&'static KeySpec> {
        self.keys.iter().find(|key| key.name == name)
    }
}

const fn key(
    name: &'static str,
    kind: Kind,
    description: &'static str,
    example: &'static str,
) -> KeySpec {
    KeySpec {
        name,
        kind,
        required: false,
        default: DefaultValue::None,
        description,
        example,
    }
}

const fn required(mut spec: KeySpec) -> KeySpec {
    spec.required = true;
    spec
}

const fn with_default(mut spec: KeySpec, default: DefaultValue) -> KeySpec {
    spec.default = default;
    spec
}

pub(crate) static PROJECT: Section = Section {
    label: "project",
    description: "The project: one git repository with this file at its root.",
    keys: &[
        required(key(
            "name",
            Kind::Name,
            "The project's name, a DNS label (lowercase letters, digits, `-`).",
            "\"my-project\"",
        )),
        with_default(
            key(
                "max_artifact_size",
                Kind::Size,
                "The most bytes one artifact may expand to, refused at packaging and at extraction: a size such as \"2GiB\" or a number of bytes.",
                "\"2GiB\"",
            ),
            DefaultValue::String("2GiB"),
        ),
    ],
};

pub(crate) static ENVIRONMENT_DATABASE: Section = Section {
    label: "database",
    description: "The environment's shared PostgreSQL instance; set exactly one of `url` and `url_env`.",
    keys: &[
        key(
            "url",
            Kind::String,
            "Connection URL of the PostgreSQL instance, written in the file.",
            "\"postgres://localhost:5432/postgres\"",
        ),
        key(
            "url_env",
            Kind::EnvVarName,
            "Name of the environment variable holding the connection URL, so the secret stays out of the repository.",
            "\"PROD_DATABASE_URL\"",
        ),
    ],
};

pub(crate) static ENVIRONMENT_MODELS: Section = Section {
    label: "models",
    description: "Limits of the environment's shared model endpoint.",
    keys: &[
        key(
            "max_memory",
            Kind::Size,
            "Memory the loaded models may use before the least recently used ones are unloaded: a size such as \"4GiB\".",
            "\"4GiB\"",
        ),
        key(
            "max_models",
            Kind::Integer { min: 1 },
            "How many models may be loaded at once.",
            "8",
        ),
    ],
};

pub(crate) static ENVIRONMENT: Section = Section {
    label: "environment",
    description: "A long-lived environment (dev, test, prod) with its own artifact store, database instance and model endpoint.",
    keys: &[
        with_default(
            key(
                "biomes",
                Kind::Bool,
                "Whether biomes (short-lived personal or per-branch sub-environments) may be created here. When the file declares no environment, a `dev` environment with biomes = true is assumed.",
                "true",
            ),
            DefaultValue::Bool(false),
        ),
        key(
            "promote_from",
            Kind::Name,
            "The environment whose artifacts are promoted into this one.",
            "\"dev\"",
        ),
        with_default(
            key(
                "auto_promote",
                Kind::Bool,
                "Whether a pipeline promotes into this environment by itself once the deployment in `promote_from` is healthy (a protected environment's promotion still waits for approval).",
                "true",
            ),
            DefaultValue::Bool(false),
        ),
        with_default(
            key(
                "protected",
                Kind::Bool,
                "Whether promotions into this environment need approval by someone else.",
                "true",
            ),
            DefaultValue::Bool(false),
        ),
        key(
            "approvals",
            Kind::Integer { min: 0 },
            "Approvals a promotion into this environment needs; only for protected environments, default 1 there.",
            "1",
        ),
        with_default(
            key(
                "keep_deployments",
                Kind::Integer { min: 1 },
                "How many of the newest deployments of each target here keep their artifacts safe from `sandpit gc`.",
                "10",
            ),
            DefaultValue::Integer(10),
        ),
        with_default(
            key(
                "seed",
                Kind::Bool,
                "Whether the `[database] seed` file runs into this environment's own (base) database when it is created. Biomes always get the seed; an environment's own database (test's, prod's) never does unless it sets seed = true.",
                "true",
            ),
            DefaultValue::Bool(false),
        ),
        key(
            "idle_timeout",
            Kind::Span,
            "Lets this environment's base sleep after this long without a request through the gateway, like a biome (bases never sleep unless they say so).",
            "\"2h\"",
        ),
        key(
            "database",
            Kind::Table(&ENVIRONMENT_DATABASE),
            "The environment's shared PostgreSQL instance.",
            "{ url_env = \"PROD_DATABASE_URL\" }",
        ),
        key(
            "models",
            Kind::Table(&ENVIRONMENT_MODELS),
            "Limits of the environment's shared model endpoint.",
            "{ max_models = 8 }",
        ),
    ],
};

const PATH: KeySpec = required(key(
    "path",
    Kind::Path,
    "Source subtree, relative to the project root (\".\" for the root itself).",
    "\"services/api\"",
));
const BUILD: KeySpec = key(
    "build",
    Kind::String,
    "Shell command run in `path` inside a clean checkout; leave it out to package the subtree as is.",
    "\"make build\"",
);
const OUTPUT: KeySpec = with_default(
    key(
        "output",
        Kind::Path,
        "Directory packaged into the artifact, relative to `path`.",
        "\"dist\"",
    ),
    DefaultValue::String("."),
);
const RUN: KeySpec = required(key(
    "run",
    Kind::Command,
    "Shell command that starts the process, run in the unpacked artifact.",
    "\"python3 app.py\"",
));
const ENV: KeySpec = key(
    "env",
    Kind::EnvVars,
    "Extra environment variables for build and run. sandpit sets PORT, DATABASE_URL and SANDPIT_* itself.",
    "{ LOG_LEVEL = \"info\" }",
);
const INPUTS: KeySpec = key(
    "inputs",
    Kind::Paths,
    "More source subtrees the build reads (e.g. a shared library); a change in any of them rebuilds the component, like a change in `path`.",
    "[\"lib/common\"]",
);
const DEPENDS_ON: KeySpec = key(
    "depends_on",
    Kind::Names,
    "Services, jobs or models that must be healthy (or have succeeded) before this one starts.",
    "[\"migrate\"]",
);

pub(crate) static SERVICE: Section = Section {
    label: "service",
    description: "A long-running HTTP process.",
    keys: &[
        PATH,
        INPUTS,
        BUILD,
        OUTPUT,
        RUN,
        with_default(
            key(
                "health",
                Kind::HttpPath,
                "HTTP path that answers 2xx when the service is healthy.",
                "\"/health\"",
            ),
            DefaultValue::String("/"),
        ),
        with_default(
            key(
                "start_timeout",
                Kind::Integer { min: 1 },
                "Seconds to wait for the health path to answer 2xx.",
                "60",
            ),
            DefaultValue::Integer(60),
        ),
        ENV,
        DEPENDS_ON,
    ],
};

pub(crate) static JOB: Section = Section {
    label: "job",
    description: "A process that runs to completion: migrations, data pipelines.",
    keys: &[
        PATH,
        INPUTS,
        BUILD,
        OUTPUT,
        RUN,
        with_default(
            key(
                "start_timeout",
                Kind::Integer { min: 1 },
                "Seconds the job may run before it counts as failed.",
                "600",
            ),
            DefaultValue::Integer(600),
        ),
        ENV,
        DEPENDS_ON,
    ],
};

pub(crate) static MODEL: Section = Section {
    label: "model",
    description: "An ONNX model served by the environment's shared model endpoint.",
    keys: &[
        PATH,
        INPUTS,
        BUILD,
        OUTPUT,
        required(key(
            "file",
            Kind::Path,
            "The ONNX file inside `output`, relative to it; must end with `.onnx`.",
            "\"model.onnx\"",
        )),
        ENV,
    ],
};

pub(crate) static DATABASE: Section = Section {
    label: "database",
    description: "The project's database: how each environment's template database is built.",
    keys: &[
        required(key(
            "migrations",
            Kind::Path,
            "Directory of ordered `.sql` migration files, relative to the project root.",
            "\"db/migrations\"",
        )),
        key(
            "seed",
            Kind::Path,
            "SQL run after the migrations when building the template, relative to the project root.",
            "\"db/seed.sql\"",
        ),
        key(
            "shared",
            Kind::Path,
            "SQL that loads the read-only shared reference database, relative to the project root.",
            "\"db/shared.sql\"",
        ),
    ],
};

pub(crate) static PIPELINES: Section = Section {
    label: "pipelines",
    description: "What pushes and tags start on a control plane (`sandpit server`).",
    keys: &[
        key(
            "branches",
            Kind::BranchPatterns,
            "Branches besides the project's own whose pushes start a pipeline: names or patterns where `*` matches any run of characters.",
            "[\"release/*\"]",
        ),
        key(
            "tag_promotes_to",
            Kind::Name,
            "The environment a pushed tag's commit goes into: promoted from the environment it `promote_from`s (which must run that commit), or deployed when it promotes from none.",
            "\"test\"",
        ),
    ],
};

pub(crate) static GATEWAY: Section = Section {
    label: "gateway",
    description: "The HTTP gateway of this sandpit home: one reverse proxy routing `<service>.<biome>.<project>.localhost` to the biome's service, and waking sleeping biomes.",
    keys: &[key(
        "port",
        Kind::Port,
        "The port the gateway listens on (loopback). Without it the home keeps the port it chose first.",
        "8480",
    )],
};

pub(crate) static BIOMES: Section = Section {
    label: "biomes",
    description: "How biomes live and die: sleeping when idle, their time to live, the reaper's guard, overlays.",
    keys: &[
        key(
            "idle_timeout",
            Kind::Span,
            "A biome with no request through the gateway for this long sleeps: its processes stop and its models unload, its database and data stay; the next request wakes it. Without it biomes never sleep.",
            "\"30m\"",
        ),
        with_default(
            key(
                "ttl",
                Kind::Span,
                "How long a biome lives after its last `up` before the reaper removes it (`sandpit extend BIOME 3d` gives it longer).",
                "\"7d\"",
            ),
            DefaultValue::String("7d"),
        ),
        with_default(
            key(
                "overlay",
                Kind::Bool,
                "Whether a biome runs only the components whose artifacts differ from its environment base's, reaching the base's running instances for the rest (`up --overlay` asks for it once).",
                "true",
            ),
            DefaultValue::Bool(false),
        ),
        with_default(
            key(
                "reap_max_percent",
                Kind::Integer { min: 1 },
                "The most biomes, as a percentage of all of this project's, that one run of the reaper removes; a run that would remove more stops and says so (`sandpit reap --force` proceeds).",
                "50",
            ),
            DefaultValue::Integer(50),
        ),
    ],
};

pub(crate) static GITLAB: Section = Section {
    label: "gitlab",
    description: "Reporting back to GitLab: each pipeline's commit status, and one note per merge request on its biome. Read from the pipeline's commit; without this section nothing is reported.",
    keys: &[
        required(key(
            "api_url",
            Kind::String,
            "The GitLab API's root, http(s) and ending in `/api/v4`.",
            "\"https://gitlab.example/api/v4\"",
        )),
        required(key(
            "project",
            Kind::String,
            "The GitLab project: its path (`group/app`) or its numeric id.",
            "\"group/app\"",
        )),
        with_default(
            key(
                "token_secret",
                Kind::EnvVarName,
                "The configuration secret holding the API token (`sandpit config set ENV --secret GITLAB_TOKEN=…`), set on the base of the environment the pipeline deploys into first (a biome pipeline: its biome's environment).",
                "\"GITLAB_TOKEN\"",
            ),
            DefaultValue::String("GITLAB_TOKEN"),
        ),
    ],
};

pub(crate) static TERRAFORM_MODULE: Section = Section {
    label: "terraform component",
    description: "A Terraform root module, applied for each environment base and biome before the components that depend on it; sandpit keeps its state.",
    keys: &[
        required(key(
            "path",
            Kind::Path,
            "The root module's directory, relative to the project root; packaged as is.",
            "\"infra\"",
        )),
        key(
            "vars",
            Kind::TerraformVars,
            "Input variables (`name = \"value\"`), passed as `TF_VAR_<name>`. sandpit sets `sha`, `env` and `biome` itself.",
            "{ region = \"local\" }",
        ),
        key(
            "depends_on",
            Kind::Names,
            "Other terraform components applied before this one.",
            "[\"network\"]",
        ),
    ],
};

pub(crate) static TERRAFORM: Section = Section {
    label: "terraform",
    description: "How Terraform runs: the binary. Each `[terraform.<name>]` below it is a terraform component.",
    keys: &[with_default(
        key(
            "binary",
            Kind::String,
            "The Terraform binary: a name looked up on PATH (`tofu` for OpenTofu) or a path.",
            "\"tofu\"",
        ),
        DefaultValue::String("terraform"),
    )],
};

/// The whole file.
pub(crate) static ROOT: Section = Section {
    label: "file",
    description: "sandpit project definition: the components of a project and the environments they are promoted through.",
    keys: &[
        required(key(
            "project",
            Kind::Table(&PROJECT),
            "The project: one git repository with this file at its root.",
            "",
        )),
        key(
            "environments",
            Kind::Named(&ENVIRONMENT),
            "Long-lived environments, by name. When none is declared, `dev` with biomes = true is assumed.",
            "",
        ),
        key("services", Kind::Named(&SERVICE), "Services, by name.", ""),
        key("jobs", Kind::Named(&JOB), "Jobs, by name.", ""),
        key("models", Kind::Named(&MODEL), "Models, by name.", ""),
        key(
            "terraform",
            Kind::NamedWithSettings {
                settings: &TERRAFORM,
                named: &TERRAFORM_MODULE,
            },
            "Terraform: `binary`, and each `[terraform.<name>]` root module, by name.",
            "",
        ),
        key(
            "database",
            Kind::Table(&DATABASE),
            "The project's database: how each environment's template database is built.",
            "",
        ),
        key(
            "pipelines",
            Kind::Table(&PIPELINES),
            "What pushes and tags start on a control plane (`sandpit server`).",
            "",
        ),
        key(
            "gateway",
            Kind::Table(&GATEWAY),
            "The HTTP gateway of this sandpit home: one reverse proxy routing `<service>.<biome>.<project>.localhost` to the biome's service, and waking sleeping biomes.",
            "",
        ),
        key(
            "biomes",
            Kind::Table(&BIOMES),
            "How biomes live and die: sleeping when idle, their time to live, the reaper's guard, overlays.",
            "",
        ),
        key(
            "gitlab",
            Kind::Table(&GITLAB),
            "Reporting back to GitLab: each pipeline's commit status, and one note per merge request on its biome. Read from the pipeline's commit; without this section nothing is reported.",
            "",
        ),
    ],
};

/// The JSON Schema (draft 2020-12) of `sandpit.toml`, for editors such as Taplo or VS Code.
///
/// Every section and every entry of a named table refuses unknown keys
/// (`additionalProperties: false`), as the parser does; only a component's `env` is open.
pub fn json_schema() -> Json {
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    schema.insert("title".into(), json!(FILE_NAME));
    schema.extend(section_schema(&ROOT));
    Json::Object(schema)
}

fn section_schema(section: &Section) -> Map<String, Json> {
    let mut properties = Map::new();
    for spec in section.keys {
        properties.insert(spec.name.to_owned(), key_schema(spec));
    }
    let required: Vec<&str> = section
        .keys
        .iter()
        .filter(|spec| spec.required)
        .map(|spec| spec.name)
        .collect();
    let mut schema = Map::new();
    schema.insert("description".into(), json!(section.description));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Json::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    // The type checker refuses any key not in the table, so editors should flag it too.
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

fn key_schema(spec: &KeySpec) -> Json {
    let mut schema = match kind_schema(spec.kind) {
        Json::Object(map) => map,
        _ => unreachable!("kind schemas are objects"),
    };
    // A section's own description is already inside; the key's description says why it is here.
    schema.insert("description".into(), json!(spec.description));
    match spec.default {
        DefaultValue::None => {}
        DefaultValue::String(value) => {
            schema.insert("default".into(), json!(value));
        }
        DefaultValue::Bool(value) => {
            schema.insert("default".into(), json!(value));
        }
        DefaultValue::Integer(value) => {
            schema.insert("default".into(), json!(value));
        }
    }
    Json::Object(schema)
}

fn kind_schema(kind: Kind) -> Json {
    match kind {
        Kind::String => json!({ "type": "string" }),
        Kind::Command => json!({ "type": "string", "minLength": 1 }),
        Kind::Path => {
            json!({ "type": "string", "minLength": 1, "not": { "pattern": "^/|(^|/)\\.\\.(/|$)" } })
        }
        Kind::HttpPath => json!({ "type": "string", "pattern": "^/" }),
        Kind::EnvVarName => json!({ "type": "string", "pattern": ENV_VAR_PATTERN }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Integer { min } => json!({ "type": "integer", "minimum": min, "maximum": u32::MAX }),
        Kind::Size => json!({
            "oneOf": [
                { "type": "string", "pattern": SIZE_PATTERN },
                { "type": "integer", "minimum": 0 }
            ]
        }),
        Kind::Span => json!({ "type": "string", "pattern": SPAN_PATTERN }),
        Kind::Port => json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
        Kind::Name => json!({ "type": "string", "pattern": NAME_PATTERN }),
        Kind::Names => json!({
            "type": "array",
            "items": { "type": "string", "pattern": NAME_PATTERN }
        }),
        Kind::Paths => json!({ "type": "array", "items": { "type": "string" } }),
        Kind::BranchPatterns => json!({
            "type": "array",
            "items": { "type": "string", "minLength": 1, "pattern": "^[^\\s~^:?\\[\\\\]+$" }
        }),
        Kind::EnvVars => json!({
            "type": "object",
            "propertyNames": { "pattern": ENV_VAR_PATTERN, "not": { "pattern": "^(SANDPIT_.*|PORT|DATABASE_URL)$" } },
            "additionalProperties": { "type": "string" }
        }),
        Kind::Table(section) => Json::Object(section_schema(section)),
        Kind::Named(section) => json!({
            "type": "object",
            "patternProperties": { NAME_PATTERN: Json::Object(section_schema(section)) },
            "additionalProperties": false
        }),
        Kind::NamedWithSettings { settings, named } => {
            let mut schema = section_schema(settings);
            // A setting's name is no entry's: the entries' pattern leaves them out.
            let reserved: Vec<&str> = settings.keys.iter().map(|spec| spec.name).collect();
            let entry_pattern = format!(
                "^(?!({})$)[a-z]([a-z0-9-]{{0,38}}[a-z0-9])?$",
                reserved.join("|")
            );
            schema.insert(
                "patternProperties".into(),
                json!({ entry_pattern: Json::Object(section_schema(named)) }),
            );
            Json::Object(schema)
        }
        Kind::TerraformVars => json!({
            "type": "object",
            "propertyNames": { "pattern": ENV_VAR_PATTERN, "not": { "pattern": "^(sha|env|biome)$" } },
            "additionalProperties": { "type": "string" }
        }),
    }
}
