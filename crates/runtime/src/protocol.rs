//! Wire types spoken between the CLI and the supervisor daemon over its Unix socket.
//!
//! One JSON object per line. A request gets zero or more `event` lines (progress) and then exactly
//! one `ok` or `error` line. These types are the only contract between the two processes; they are
//! converted by hand to and from the supervisor's own types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sandpit_domain::{ComponentKind, ComponentState, Digest, Name};
use serde::{Deserialize, Serialize};

/// A request from a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Is the daemon alive? Answers its pid and version.
    Ping,
    /// Make the biome look like this; answers its status once converged or failed.
    Up { biome: BiomeSpec },
    /// Stop and forget the biome; answers its last status.
    Down { project: Name, biome: Name },
    /// One biome's status.
    Status { project: Name, biome: Name },
    /// Every biome of a project (or of every project). `brief`: without their components
    /// (what `ls` needs: state, usage, database; a few hundred biomes' components are most of
    /// a megabyte of JSON to write and read).
    List {
        project: Option<Name>,
        #[serde(default)]
        brief: bool,
    },
    /// Start (or keep running) an environment-level process; answers once it accepts connections.
    EnsureInstance { instance: InstanceSpec },
    /// Stop an environment-level process and forget it.
    StopInstance { key: InstanceKey },
    /// Stop every process gracefully, keep the desired state, exit.
    Shutdown,
    /// The environment a component of the biome is started with, secrets included (the socket
    /// is its owner's only); `None`: the default component ([`default_component`]).
    Env {
        project: Name,
        biome: Name,
        component: Option<Name>,
    },
    /// Restart one component (a job runs again), or every service in dependency order; answers
    /// the biome's status once they are healthy again.
    Restart {
        project: Name,
        biome: Name,
        component: Option<Name>,
    },
    /// Stop every process of the biome and unload its models, keeping its desired state, ports,
    /// data and database: it wakes on the next request through the gateway (or `Wake`). Answers
    /// its status (`sleeping`).
    Sleep {
        project: Name,
        biome: Name,
        /// Why, for its logs and the daemon's: `idle for 30m`, `sandpit sleep`.
        reason: String,
    },
    /// Bring a sleeping biome back as it was (jobs that succeeded are not run again); answers
    /// its status once its services are healthy. A biome that is awake answers at once.
    Wake { project: Name, biome: Name },
}

/// One line of an answer.
// A reply is decoded, matched and dropped one line at a time: boxing the large variant would buy
// nothing but indirection in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Progress, for humans.
    Event {
        component: Option<Name>,
        message: String,
    },
    /// The final answer.
    Ok { body: ReplyBody },
    /// The request failed; `message` is ready to show to a user.
    Error { message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyBody {
    Pong {
        pid: u32,
        version: String,
        /// Environment-level processes it supervises (embedded database instances).
        #[serde(default)]
        instances: Vec<InstanceStatus>,
        /// What its start-up recovery had to say (a corrupt state file set aside, …).
        #[serde(default)]
        notices: Vec<String>,
        /// The ports the home's gateway listens on, the home's own first (absent: a daemon
        /// from before the gateway).
        #[serde(default)]
        gateway_ports: Vec<u16>,
    },
    Biome(BiomeStatus),
    Biomes {
        biomes: Vec<BiomeStatus>,
    },
    Instance(InstanceStatus),
    Done,
    /// What a component is started with (see [`Request::Env`]).
    Env(ComponentEnv),
}

/// The environment one component of a biome is started with: the same function builds it as
/// builds a started process's, minus the supervisor's marker (`SANDPIT_SUPERVISOR`, which tells
/// a daemon that it owns a process; a command run with this environment is its user's).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentEnv {
    pub component: Name,
    /// Every variable and its value, secrets included.
    pub vars: BTreeMap<String, String>,
    /// Which of `vars` are secrets (read from owner-only files: `DATABASE_URL`, …).
    pub secret_names: BTreeSet<String>,
}

/// Shows the names of secrets, never their values (a reply may end up in an error message).
impl std::fmt::Debug for ComponentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vars: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(name, value)| {
                let shown = if self.secret_names.contains(name) {
                    "********"
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("ComponentEnv")
            .field("component", &self.component)
            .field("vars", &vars)
            .field("secret_names", &self.secret_names)
            .finish()
    }
}

/// The component a biome command means when none is named: the first service in start order,
/// else the first job (models have no process).
pub fn default_component(components: &[ComponentSpec]) -> Option<&ComponentSpec> {
    let first = |kind: ComponentKind| components.iter().find(|c| c.kind == kind);
    first(ComponentKind::Service).or_else(|| first(ComponentKind::Job))
}

/// The desired state of one biome: which artifact runs as what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiomeSpec {
    pub project: Name,
    pub env: Name,
    pub biome: Name,
    /// The version (commit, or dirty version) the biome was brought up at.
    pub version: String,
    /// The artifact store the digests below are read from (verified on every read).
    pub store: PathBuf,
    /// Largest size an artifact may expand to.
    pub max_artifact_size: u64,
    /// In start order: dependencies first.
    pub components: Vec<ComponentSpec>,
    /// The biome's database, when the project has one (reported by `status`).
    #[serde(default)]
    pub database: Option<DatabaseInfo>,
    /// Sleep after this many seconds without a request through the gateway; `None`: never
    /// (`[biomes] idle_timeout`, or an environment's own for its base).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// The port the project's `[gateway] port` asks for; `None`: the home's own.
    #[serde(default)]
    pub gateway_port: Option<u16>,
    /// Where the biome's models are served, so that a sleeping biome's are unloaded.
    #[serde(default)]
    pub models: Option<ModelsRegistration>,
    /// Overlay biomes: service name → the biome whose running instance serves it (the
    /// environment's base). A borrowed service is not in `components`: the biome's
    /// `SANDPIT_URL_<SVC>` points at the lender's port, and a dependency on it is satisfied by
    /// the lender's instance being healthy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub borrowed: BTreeMap<Name, Name>,
}

/// A biome's registration with its environment's model endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelsRegistration {
    /// The endpoint's loopback port.
    pub port: u16,
    /// The registration's name on the endpoint (the biome's, or the base's label).
    pub registration: String,
    /// The owner-only file holding the endpoint's registration token (read when it is used).
    pub token_file: PathBuf,
}

/// A biome's own database on the environment's shared instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    /// The template it was cloned from (one per content hash of the migrations).
    pub template: String,
    /// The owner-only file holding the libpq URL with the biome role's password (what components
    /// get as `DATABASE_URL`); `status --show-secrets` reads it from there. The URL itself is
    /// never sent to the daemon. `None` in state saved by a version that sent the URL (whose
    /// `url` field is now ignored, so it is not saved again).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
}

/// How one component of a biome is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub name: Name,
    pub kind: ComponentKind,
    /// `<component>-<version>.zip`
    pub artifact: String,
    pub digest: Digest,
    /// Shell command, run with `sh -c` in the extracted artifact.
    pub run: String,
    /// Services only: HTTP path answering 2xx when healthy.
    pub health: Option<String>,
    /// Seconds to wait for health (services) or completion (jobs).
    pub start_timeout_secs: u64,
    /// Variables and their values; no secrets (this is saved in `runtime/state.json`).
    pub env: BTreeMap<String, String>,
    /// Secret variables (`DATABASE_URL`) and the owner-only file each value is read from when the
    /// component starts (`secret_env.rs`); they win over `env`. Absent in older state.
    #[serde(default)]
    pub secret_env: BTreeMap<String, PathBuf>,
    pub depends_on: Vec<Name>,
}

/// What a biome looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiomeStatus {
    pub project: Name,
    pub biome: Name,
    pub env: Name,
    pub sha: String,
    /// `starting|healthy|degraded|stopped`
    pub state: String,
    pub components: Vec<ComponentStatus>,
    /// The biome's persistent data directory (`SANDPIT_DATA_DIR`).
    pub data_dir: PathBuf,
    pub database: Option<DatabaseInfo>,
    /// In the answer to an `up`: how long it waited for components to become healthy (or, for
    /// jobs, to finish), the longest wait of each wave of components that start together, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_wait_ms: Option<u64>,
    /// Since when it sleeps (seconds since the Unix epoch); `None`: awake.
    #[serde(default)]
    pub sleeping_since: Option<u64>,
    /// The last request through the gateway began or ended (seconds since the Unix epoch);
    /// `None`: none since the daemon started.
    #[serde(default)]
    pub last_request: Option<u64>,
    /// See [`BiomeSpec::idle_timeout_secs`].
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// What its processes cost now (`usage.rs`); `None` from a daemon that did not measure.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// What a biome's processes cost now: every live process of its components' process groups
/// (each component and its log writer), summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub processes: u32,
    /// User and system CPU time used so far, reaped children included.
    pub cpu_seconds: f64,
    /// Resident memory now.
    pub rss_bytes: u64,
}

/// What one component looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: Name,
    pub kind: ComponentKind,
    pub state: ComponentState,
    pub pid: Option<u32>,
    pub url: Option<String>,
    pub port: Option<u16>,
    pub restarts: u32,
    pub artifact: String,
    pub digest: Digest,
    pub log: PathBuf,
    /// Why it is not healthy, when known (e.g. the exit status of the last crash).
    pub detail: Option<String>,
    /// Services: its address through the home's gateway
    /// (`http://<service>.<biome>.<project>.localhost:<port>`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// A service an overlay biome borrows: the biome whose instance serves it (its state, URL,
    /// port, artifact and log are that instance's; `pid` is `None`, it is not this biome's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowed_from: Option<Name>,
}

/// An environment-level process, such as the environment's embedded PostgreSQL instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    pub project: Name,
    pub env: Name,
    /// What it is, e.g. `postgres`.
    pub name: Name,
}

/// How to run an environment-level process; the daemon keeps it running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub key: InstanceKey,
    pub program: crate::process::Program,
    pub working_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// uid and gid to run as, e.g. PostgreSQL's system user when sandpit runs as root.
    pub run_as: Option<(u32, u32)>,
    /// Ready once this loopback port accepts connections.
    pub port: u16,
    pub log: PathBuf,
    /// The polite stop signal (`SIGINT` is PostgreSQL's fast shutdown), SIGKILL after the grace.
    pub stop_signal: String,
    pub start_timeout_secs: u64,
}

/// What an environment-level process looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub key: InstanceKey,
    pub state: ComponentState,
    pub pid: Option<u32>,
    pub port: u16,
    pub restarts: u32,
    pub log: PathBuf,
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a daemon of the previous version saved in `runtime/state.json` for a component with
    /// a database and for its biome's database (the URL, password included, in both).
    const OLD_COMPONENT: &str = r#"{
        "name": "web", "kind": "service", "artifact": "web-0123456789ab.zip",
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "run": "python3 server.py", "health": null, "start_timeout_secs": 30,
        "env": {"DATABASE_URL": "postgres://geo_alice:hunter2@127.0.0.1:5432/geo_alice"},
        "depends_on": []
    }"#;
    const OLD_DATABASE: &str = r#"{
        "name": "geo_alice", "template": "geo_template_abc",
        "url": "postgres://geo_alice:hunter2@127.0.0.1:5432/geo_alice"
    }"#;

    #[test]
    fn a_list_request_of_an_older_client_is_a_full_list() {
        let older: Request = serde_json::from_str(r#"{"request":"list","project":"geo"}"#).unwrap();
        assert!(
            matches!(older, Request::List { brief: false, .. }),
            "{older:?}"
        );
        let brief = serde_json::to_string(&Request::List {
            project: None,
            brief: true,
        })
        .unwrap();
        assert_eq!(brief, r#"{"request":"list","project":null,"brief":true}"#);
    }

    #[test]
    fn state_saved_by_the_previous_version_still_loads() {
        let component: ComponentSpec = serde_json::from_str(OLD_COMPONENT).unwrap();
        assert!(component.secret_env.is_empty());
        assert_eq!(component.env.len(), 1);
        let database: DatabaseInfo = serde_json::from_str(OLD_DATABASE).unwrap();
        assert_eq!(database.url_file, None);
        let saved_again = serde_json::to_string(&database).unwrap();
        assert!(
            !saved_again.contains("hunter2"),
            "the old URL is not saved again: {saved_again}"
        );
    }

    #[test]
    fn an_environment_reply_never_shows_a_secret_when_printed() {
        let env = ComponentEnv {
            component: Name::parse("web").unwrap(),
            vars: BTreeMap::from([
                (
                    "DATABASE_URL".to_owned(),
                    "postgres://a:hunter2@h/db".to_owned(),
                ),
                ("PORT".to_owned(), "41000".to_owned()),
            ]),
            secret_names: BTreeSet::from(["DATABASE_URL".to_owned()]),
        };
        let shown = format!("{:?}", ReplyBody::Env(env.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(r#""DATABASE_URL": "********""#), "{shown}");
        assert!(shown.contains(r#""PORT": "41000""#), "{shown}");
        // On the wire (the owner-only socket) the value travels, for `sandpit exec`.
        let line = serde_json::to_string(&ReplyBody::Env(env.clone())).unwrap();
        match serde_json::from_str::<ReplyBody>(&line).unwrap() {
            ReplyBody::Env(back) => assert_eq!(back, env),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_variables_travel_as_file_names() {
        let mut component: ComponentSpec = serde_json::from_str(OLD_COMPONENT).unwrap();
        component.env.clear();
        component.secret_env.insert(
            "DATABASE_URL".into(),
            PathBuf::from("/home/projects/geo/databases/dev/alice.database-url"),
        );
        let line = serde_json::to_string(&component).unwrap();
        assert!(line.contains(r#""secret_env":{"DATABASE_URL":"/home/projects/geo/databases/dev/alice.database-url"}"#), "{line}");
        let back: ComponentSpec = serde_json::from_str(&line).unwrap();
        assert_eq!(back, component);
    }
}
