//! What every use case needs to know about where it runs, gathered once by the CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sandpit_runtime::SupervisorConfig;

/// Settings for one invocation of sandpit.
#[derive(Debug, Clone)]
pub struct Context {
    /// `$SANDPIT_HOME`: all state, artifacts and runtime files live below it.
    pub home: PathBuf,
    /// Where the project is read from: a checkout (`-C DIR`, or the current directory) or one
    /// commit of a repository (a server's mirror).
    pub source: crate::source::Source,
    /// The variables builds and components inherit (PATH, HOME, LANG, …); nothing else leaks in.
    pub base_env: Vec<(String, String)>,
    /// The `sandpit` executable, used to start the daemon in the background.
    pub executable: PathBuf,
    /// sandpit's own version, recorded in provenance.
    pub version: String,
    /// The whole process environment, for settings `sandpit.toml` names by variable
    /// (`url_env`); never passed on to builds or components.
    pub process_env: BTreeMap<String, String>,
    /// How the daemon runs components when this invocation has to start it.
    pub supervisor: SupervisorConfig,
    /// How long database operations may take before they are given up (`SANDPIT_DATABASE_TIMEOUT_MS`
    /// sets the per-statement limit, and the connect limit when shorter).
    pub database_timeouts: sandpit_database::Timeouts,
    /// How long a terraform run waits for another's lock on its state before it says who holds
    /// it (`SANDPIT_TF_LOCK_TIMEOUT_MS`).
    pub terraform_lock_timeout: std::time::Duration,
    /// `SANDPIT_PG_BIN`: the one directory PostgreSQL's server programs are taken from, instead
    /// of looking on `PATH` and under `/usr/lib/postgresql/*/bin`.
    pub pg_bin_dir: Option<PathBuf>,
    /// Who is asking: recorded as the requester or approver of what they do.
    pub principal: crate::principal::Principal,
    /// How pipelines report back to a forge (`sandpit server` rings the report worker).
    pub reporting: crate::report::Reporting,
    /// Where deployments, pipelines, tokens and hook deliveries are recorded: `state.db` in
    /// `home` by default, or a PostgreSQL database shared by several servers
    /// (`SANDPIT_STATE`, `sandpit server --state`).
    pub state: sandpit_state::StateLocation,
}

impl Context {
    /// A context over `home` that reads nothing from the process (no project, an empty
    /// environment, a principal named `test@example.com`): for tests of use cases and handlers.
    pub fn for_home(home: &std::path::Path) -> Context {
        let executable = PathBuf::from("/nonexistent/sandpit");
        Context {
            home: home.to_path_buf(),
            source: crate::Source::Checkout {
                dir: home.to_path_buf(),
            },
            base_env: Vec::new(),
            executable: executable.clone(),
            version: "test".to_owned(),
            process_env: BTreeMap::new(),
            supervisor: SupervisorConfig {
                home: home.to_path_buf(),
                base_env: Vec::new(),
                log_max_bytes: 1024 * 1024,
                stop_grace: std::time::Duration::from_secs(1),
                backoff: Default::default(),
                executable,
            },
            database_timeouts: Default::default(),
            terraform_lock_timeout: crate::terraform::DEFAULT_LOCK_TIMEOUT,
            pg_bin_dir: None,
            principal: crate::principal::Principal::local(Some("test@example.com")),
            reporting: Default::default(),
            state: sandpit_state::StateLocation::in_home(home),
        }
    }

    /// Where a project's artifacts are stored.
    pub fn artifact_store_root(&self, project: &str) -> PathBuf {
        self.home.join("projects").join(project).join("artifacts")
    }

    /// Where build logs of a project are kept.
    pub fn build_log_dir(&self, project: &str) -> PathBuf {
        self.home.join("projects").join(project).join("build-logs")
    }
}
