//! The supervisor: keeps every biome's processes matching its desired state.
//!
//! A biome's desired state ([`BiomeSpec`]) is persisted before anything is started, and its
//! removal before anything is stopped; a change whose state cannot be saved is refused. `converge`
//! walks its components in dependency order: jobs run to completion, services are started (each
//! watched by a task of its own that probes health and restarts crashes with backoff) and waited
//! for until healthy. Every start extracts the verified artifact afresh and first makes sure the
//! service's port is not held by someone else. After a restart of the daemon,
//! [`Supervisor::recover`] adopts the processes that survived, stops any it cannot account for,
//! finishes interrupted removals, and converges every biome again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sandpit_artifact::store::ArtifactStore;
use sandpit_domain::{Backoff, ByteSize, ComponentKind, ComponentState, Digest, Name};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::health::{HealthProbe, ProbeResult};
use crate::logs;
use crate::ports::{self, Claim, Holder};
use crate::process::{self, Launch, ProcessIdentity, Program};
use crate::protocol::{
    default_component, BiomeSpec, BiomeStatus, ComponentEnv, ComponentSpec, ComponentStatus,
    InstanceKey, Reply,
};
use crate::secret_env::{self, ResolvedSecrets};
use crate::state_file::{self, StateFileError};

mod biome_state;
mod borrowing;
mod crash_restart;
mod fingerprint;
mod gateway;
mod health_verdict;
mod instances;
mod port_allocation;
mod reconcile;
mod recovery;
mod sleep;
#[cfg(test)]
mod test_support;
mod waves;
use crash_restart::Ended;
use fingerprint::fingerprint;
use health_verdict::{Answer, ProbeHistory, ReadyWait, Verdict};
use instances::{Instance, PersistedInstance};
use reconcile::{Convergence, Held, JobAction};
pub use sleep::RequestActivity;
use sleep::{epoch_secs, Activity};

/// How the supervisor behaves; read once by the daemon from its settings.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// `$SANDPIT_HOME`.
    pub home: PathBuf,
    /// The variables every component inherits (PATH, HOME, LANG, …); nothing else leaks through.
    pub base_env: Vec<(String, String)>,
    /// A component's log is rotated past this size.
    pub log_max_bytes: u64,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    pub backoff: Backoff,
    /// The `sandpit` executable: each component's output goes through its hidden `log-writer`
    /// command, which timestamps every line (see `log_writer.rs`).
    pub executable: PathBuf,
}

/// A biome is identified by its project and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BiomeKey {
    pub project: Name,
    pub biome: Name,
}

/// Where progress messages of a request go (nowhere when nobody is waiting).
pub type Events = Option<mpsc::UnboundedSender<Reply>>;

fn emit(events: &Events, component: Option<&Name>, message: impl Into<String>) {
    if let Some(sender) = events {
        let _ = sender.send(Reply::Event {
            component: component.cloned(),
            message: message.into(),
        });
    }
}

struct Unit {
    spec: ComponentSpec,
    fingerprint: String,
    working_dir: PathBuf,
    /// Jobs: the fingerprint of the last successful run, so an unchanged job is not run again.
    succeeded_fingerprint: Option<String>,
    run: Running,
}

/// What is known about a supervised process: what a watcher observes and changes.
struct Running {
    state: ComponentState,
    detail: Option<String>,
    process: Option<ProcessIdentity>,
    restarts: u32,
    /// Bumped whenever a new watcher task takes over, so a stale task cannot overwrite state.
    generation: u64,
    task: Option<UnitTask>,
    state_tx: watch::Sender<ComponentState>,
}

impl Running {
    /// Its watcher task is still running (one that returned after a stop or a replacement is not).
    fn is_watched(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.handle.is_finished())
    }

    fn new(state: ComponentState, process: Option<ProcessIdentity>, restarts: u32) -> Running {
        Running {
            state,
            detail: None,
            process,
            restarts,
            generation: 0,
            task: None,
            state_tx: watch::channel(state).0,
        }
    }
}

struct UnitTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

struct Biome {
    spec: BiomeSpec,
    units: BTreeMap<Name, Unit>,
    ports: BTreeMap<Name, u16>,
    /// `down` has begun: recorded before anything is stopped, so a daemon killed half-way never
    /// brings the biome back.
    removing: bool,
    /// Asleep since then: nothing of it runs until it wakes (`sleep.rs`).
    sleeping_since: Option<SystemTime>,
    /// Requests through the gateway (not persisted: a new daemon counts idleness from its start).
    activity: Activity,
}

/// What survives a restart of the daemon.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    biomes: Vec<PersistedBiome>,
    #[serde(default)]
    instances: Vec<PersistedInstance>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedBiome {
    spec: BiomeSpec,
    ports: BTreeMap<Name, u16>,
    units: BTreeMap<Name, PersistedUnit>,
    #[serde(default)]
    removing: bool,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    sleeping_since: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedUnit {
    spec: ComponentSpec,
    fingerprint: String,
    working_dir: PathBuf,
    state: ComponentState,
    process: Option<ProcessIdentity>,
    restarts: u32,
    succeeded_fingerprint: Option<String>,
}

/// The supervisor of every biome under one `$SANDPIT_HOME`.
pub struct Supervisor {
    config: SupervisorConfig,
    /// `SANDPIT_SUPERVISOR=<id>`, put in every component's environment so a restarted daemon can
    /// find processes it started even if it died before recording them.
    marker: String,
    biomes: Mutex<BTreeMap<BiomeKey, Biome>>,
    /// One operation (up, down) at a time per biome.
    operation_locks: Mutex<HashMap<BiomeKey, Arc<tokio::sync::Mutex<()>>>>,
    persist_lock: Mutex<()>,
    probe: HealthProbe,
    /// Environment-level processes (the embedded PostgreSQL instance), see `instances.rs`.
    instances: Mutex<BTreeMap<InstanceKey, Instance>>,
    /// One `ensure_instance` at a time.
    instance_lock: tokio::sync::Mutex<()>,
    /// What the last recovery had to say to a person (a corrupt state file set aside, processes
    /// nobody recorded), shown by `sandpit daemon status`.
    notices: Mutex<Vec<String>>,
    /// The ports the home's gateway listens on; the first is the home's own, which public URLs
    /// name when a project asks for none (`[gateway] port`).
    gateway_ports: Mutex<Vec<u16>>,
    /// Stops the gateway's listeners when the daemon stops.
    gateway_stop: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(config: SupervisorConfig) -> Arc<Supervisor> {
        let id = hex::encode(&Sha256::digest(config.home.as_os_str().as_encoded_bytes())[..8]);
        Arc::new(Supervisor {
            marker: format!("SANDPIT_SUPERVISOR={id}"),
            config,
            biomes: Mutex::new(BTreeMap::new()),
            operation_locks: Mutex::new(HashMap::new()),
            persist_lock: Mutex::new(()),
            probe: HealthProbe::new(),
            instances: Mutex::new(BTreeMap::new()),
            instance_lock: tokio::sync::Mutex::new(()),
            notices: Mutex::new(Vec::new()),
            gateway_ports: Mutex::new(Vec::new()),
            gateway_stop: watch::channel(false).0,
        })
    }

    /// The gateway now listens on `port` too (the first one recorded is the home's own).
    pub fn add_gateway_port(&self, port: u16) {
        let mut ports = self.gateway_ports.lock().expect("gateway ports poisoned");
        if !ports.contains(&port) {
            ports.push(port);
        }
    }

    /// The ports the gateway listens on, the home's own first.
    pub fn gateway_ports(&self) -> Vec<u16> {
        self.gateway_ports
            .lock()
            .expect("gateway ports poisoned")
            .clone()
    }

    /// The gateway port a biome's public URLs use: its project's, else the home's.
    fn public_port(&self, spec: &BiomeSpec) -> Option<u16> {
        spec.gateway_port.or_else(|| {
            self.gateway_ports
                .lock()
                .expect("gateway ports poisoned")
                .first()
                .copied()
        })
    }

    /// What the last recovery had to say (e.g. the state file was corrupt and is kept aside).
    pub fn notices(&self) -> Vec<String> {
        self.notices.lock().expect("notices poisoned").clone()
    }

    /// The `NAME=value` marker in every component's environment.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    fn runtime_dir(&self) -> PathBuf {
        self.config.home.join("runtime")
    }

    fn state_file(&self) -> PathBuf {
        self.runtime_dir().join("state.json")
    }

    fn biome_dir(&self, key: &BiomeKey) -> PathBuf {
        self.runtime_dir()
            .join(key.project.as_str())
            .join(key.biome.as_str())
    }

    fn log_path(&self, key: &BiomeKey, component: &Name) -> PathBuf {
        self.biome_dir(key)
            .join("logs")
            .join(format!("{component}.log"))
    }

    /// How a component's output reaches its log (see [`process::spawn_logged`]).
    fn log_writer(&self, key: &BiomeKey, component: &Name) -> process::LogWriter {
        process::LogWriter {
            executable: self.config.executable.clone(),
            marker: self.marker.clone(),
            max_bytes: self.config.log_max_bytes,
            label: format!("{}/{}/{component}", key.project, key.biome),
        }
    }

    fn data_dir(&self, key: &BiomeKey) -> PathBuf {
        self.biome_dir(key).join("data")
    }

    /// Where a component's artifact is extracted (named by its digest, apart from the data dir).
    fn working_dir(&self, key: &BiomeKey, component: &ComponentSpec) -> PathBuf {
        self.biome_dir(key)
            .join("components")
            .join(component.name.as_str())
            .join(&component.digest.hex()[..16])
    }

    fn operation_lock(&self, key: &BiomeKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .operation_locks
            .lock()
            .expect("operation locks poisoned");
        locks.entry(key.clone()).or_default().clone()
    }

    // ----- requests -------------------------------------------------------------------------

    /// Makes the biome match `spec`, returning its status once every component is healthy (or
    /// has succeeded), or an error that explains the first component that did not.
    pub async fn up(
        self: &Arc<Self>,
        spec: BiomeSpec,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        check_spec(&spec)?;
        if let Some(port) = spec.gateway_port {
            self.ensure_gateway_port(port).await?;
        }
        self.check_lenders(&spec)?;
        let key = BiomeKey {
            project: spec.project.clone(),
            biome: spec.biome.clone(),
        };
        let lock = self.operation_lock(&key);
        let _guard = lock.lock().await;
        // What the biome wanted before, to put back if the new desired state cannot be saved.
        let previous: Option<(BiomeSpec, BTreeMap<Name, u16>)>;
        {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            // Ports of every biome and instance, kept for their lives: never handed out twice.
            let mut reserved: BTreeSet<u16> = biomes
                .values()
                .flat_map(|b| b.ports.values().copied())
                .collect();
            reserved.extend(
                self.instances
                    .lock()
                    .expect("instances poisoned")
                    .values()
                    .map(|i| i.spec.port),
            );
            previous = biomes.get(&key).map(|b| (b.spec.clone(), b.ports.clone()));
            let biome = biomes.entry(key.clone()).or_insert_with(|| Biome {
                spec: spec.clone(),
                units: BTreeMap::new(),
                ports: BTreeMap::new(),
                removing: false,
                sleeping_since: None,
                activity: Activity::now(),
            });
            if biome.spec.env != spec.env && !biome.units.is_empty() {
                return Err(format!(
                    "biome `{}` already runs in environment `{}`; run `sandpit down {}` first to move it to `{}`",
                    key.biome, biome.spec.env, key.biome, spec.env
                ));
            }
            let ports = port_allocation::allocate_ports(
                &biome.ports,
                &spec.components,
                &reserved,
                port_allocation::system_offer,
            );
            biome.ports = match ports {
                Ok(ports) => ports,
                Err(error) => {
                    if previous.is_none() {
                        biomes.remove(&key);
                    }
                    return Err(format!("cannot find a free port: {error}"));
                }
            };
            biome.spec = spec.clone();
            // An `up` wakes a sleeping biome (it converges everything) and counts as activity.
            biome.sleeping_since = None;
            biome.activity.last = std::time::Instant::now();
        }
        // Desired state is saved before it is acted on; if it cannot be, nothing changes.
        if let Err(error) = self.persist() {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            match previous {
                Some((spec, ports)) => {
                    if let Some(biome) = biomes.get_mut(&key) {
                        biome.spec = spec;
                        biome.ports = ports;
                    }
                }
                None => {
                    biomes.remove(&key);
                }
            }
            return Err(format!(
                "cannot save the desired state of biome `{}`: {error}; nothing was started or changed\nhint: {}, then run `sandpit up` again",
                key.biome,
                error.remedy()
            ));
        }
        let ready_wait = self.converge(&key, events).await?;
        let mut status = self
            .status(&key)
            .ok_or_else(|| format!("biome `{}` vanished while starting", key.biome))?;
        status.ready_wait_ms = Some(ready_wait.as_millis().try_into().unwrap_or(u64::MAX));
        Ok(status)
    }

    /// Stops every process of the biome, forgets it and removes its files.
    pub async fn down(
        self: &Arc<Self>,
        key: &BiomeKey,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        let lock = self.operation_lock(key);
        let _guard = lock.lock().await;
        let Some(mut status) = self.status(key) else {
            return Err(format!(
                "there is no biome `{}` in project `{}`; `sandpit ls` lists them",
                key.biome, key.project
            ));
        };
        let names: Vec<Name> = {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            let biome = biomes.get_mut(key).expect("status found it");
            biome.removing = true;
            // Stop dependants before what they depend on.
            biome
                .spec
                .components
                .iter()
                .rev()
                .map(|c| c.name.clone())
                .collect()
        };
        // The removal is saved before anything stops: a daemon killed half-way through finishes
        // it at its next start instead of bringing the biome back.
        if let Err(error) = self.persist() {
            if let Some(biome) = self.biomes.lock().expect("biomes poisoned").get_mut(key) {
                biome.removing = false;
            }
            return Err(format!(
                "cannot record that biome `{}` is being removed: {error}; nothing was stopped\nhint: {}, then run `sandpit down {}` again",
                key.biome,
                error.remedy(),
                key.biome
            ));
        }
        for name in names {
            emit(events, Some(&name), "stopping");
            self.stop_unit(key, &name).await;
        }
        self.biomes.lock().expect("biomes poisoned").remove(key);
        if let Err(error) = self.persist() {
            // Its removal is on disk already: whichever daemon reads the state next drops it.
            tracing::warn!(
                "biome {}/{} is stopped, but the state file still lists it as being removed: {error}",
                key.project,
                key.biome
            );
        }
        let dir = self.biome_dir(key);
        if let Err(error) = fs::remove_dir_all(&dir) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {error}", dir.display());
            }
        }
        status.state = biome_state::BiomeState::Stopped.as_str().into();
        for component in &mut status.components {
            component.state = ComponentState::Stopped;
            component.pid = None;
        }
        status.usage = Some(Default::default());
        Ok(status)
    }

    pub fn status(&self, key: &BiomeKey) -> Option<BiomeStatus> {
        let status = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .get(key)
                .map(|biome| self.describe_with_borrowed(&biomes, key, biome))
        };
        status.map(|status| with_usage(vec![status]).remove(0))
    }

    pub fn list(&self, project: Option<&Name>) -> Vec<BiomeStatus> {
        let listed = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .iter()
                .filter(|(key, _)| project.is_none_or(|p| &key.project == p))
                .map(|(key, biome)| self.describe_with_borrowed(&biomes, key, biome))
                .collect()
        };
        with_usage(listed)
    }

    /// The environment `component` of the biome (the default one when `None`,
    /// [`default_component`]) is started with, its secrets read from their files now: what
    /// `sandpit exec` runs a command with.
    pub fn environment(
        &self,
        key: &BiomeKey,
        component: Option<&Name>,
    ) -> Result<ComponentEnv, String> {
        let spec = self.desired(key)?;
        let component = pick_component(&spec, component)?;
        let secrets = secret_env::resolve(&component.secret_env).map_err(|error| {
            format!(
                "cannot give the environment of `{}`: {error}",
                component.name
            )
        })?;
        let vars = self.component_env(key, &spec, component, &service_names(&spec), &secrets);
        Ok(ComponentEnv {
            component: component.name.clone(),
            vars,
            secret_names: component.secret_env.keys().cloned().collect(),
        })
    }

    /// Restarts `component` of the biome (a job runs again, even if it succeeded), or, when
    /// `None`, every service: all stopped dependants first, then started in dependency order and
    /// waited for until healthy, as `up` does. Ports are kept, so siblings' URLs stay valid.
    pub async fn restart(
        self: &Arc<Self>,
        key: &BiomeKey,
        component: Option<&Name>,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        let lock = self.operation_lock(key);
        let _guard = lock.lock().await;
        if self.is_asleep(key) {
            // Waking starts every service afresh: that is the restart of all of them.
            let status = self.wake_locked(key, events).await?;
            if component.is_none() {
                return Ok(status);
            }
        }
        let spec = self.desired(key)?;
        let targets: Vec<ComponentSpec> = match component {
            Some(name) => vec![pick_component(&spec, Some(name))?.clone()],
            None => spec
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Service)
                .cloned()
                .collect(),
        };
        if targets.is_empty() {
            return Err(format!(
                "biome `{}` has no services to restart\nhint: name a job to run it again: `sandpit restart {} JOB`",
                key.biome, key.biome
            ));
        }
        for component in targets.iter().rev() {
            if component.kind == ComponentKind::Service {
                emit(events, Some(&component.name), "stopping");
                self.stop_unit(key, &component.name).await;
            }
        }
        fs::create_dir_all(self.data_dir(key)).map_err(|e| {
            state_file::io_failure(state_file::Doing::Create, &self.data_dir(key), &e)
        })?;
        let services = service_names(&spec);
        for component in &targets {
            match component.kind {
                ComponentKind::Service => {
                    self.converge_service(key, &spec, component, &services, events)
                        .await?;
                }
                ComponentKind::Job => {
                    // Forget its success, so it runs again although nothing changed.
                    self.with_unit(key, &component.name, |unit| {
                        unit.succeeded_fingerprint = None
                    });
                    self.converge_job(key, &spec, component, &services, events)
                        .await?;
                }
                ComponentKind::Model => {
                    let name = &component.name;
                    return Err(format!("`{name}` is a model: it has no process to restart"));
                }
                ComponentKind::Terraform => {
                    let name = &component.name;
                    return Err(format!("`{name}` is a terraform component: it has no process to restart; `sandpit up` applies it again"));
                }
            }
        }
        self.persist_observed();
        self.status(key)
            .ok_or_else(|| format!("biome `{}` vanished while restarting", key.biome))
    }

    /// The biome's desired state, unless it is unknown or being removed.
    fn desired(&self, key: &BiomeKey) -> Result<BiomeSpec, String> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        match biomes.get(key) {
            None => Err(format!(
                "there is no biome `{}` in project `{}`; `sandpit ls` lists them",
                key.biome, key.project
            )),
            Some(biome) if biome.removing => Err(format!(
                "biome `{}` is being removed\nhint: `sandpit down {}` finishes removing it",
                key.biome, key.biome
            )),
            Some(biome) => Ok(biome.spec.clone()),
        }
    }

    /// Stops every process, keeping desired state so the next daemon brings them back.
    pub async fn shutdown(self: &Arc<Self>) {
        let _ = self.gateway_stop.send(true);
        let keys: Vec<(BiomeKey, Vec<Name>)> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .iter()
                .map(|(key, biome)| (key.clone(), biome.units.keys().cloned().collect()))
                .collect()
        };
        for (key, names) in keys {
            for name in names.iter().rev() {
                self.stop_unit(&key, name).await;
            }
        }
        self.stop_all_instances().await;
        self.persist_observed();
    }

    fn describe(&self, key: &BiomeKey, biome: &Biome) -> BiomeStatus {
        let mut components = Vec::new();
        for spec in &biome.spec.components {
            let unit = biome.units.get(&spec.name);
            let port = biome.ports.get(&spec.name).copied();
            let state = unit.map(|u| u.run.state).unwrap_or(ComponentState::Stopped);
            // A unit still running an older artifact reports what it actually runs.
            let running_spec = unit.map(|u| &u.spec).unwrap_or(spec);
            let public_url = (spec.kind == ComponentKind::Service)
                .then(|| self.public_port(&biome.spec))
                .flatten()
                .map(|gateway| public_url(&spec.name, key, gateway));
            components.push(ComponentStatus {
                name: spec.name.clone(),
                kind: spec.kind,
                state,
                pid: unit.and_then(|u| u.run.process).map(|p| p.pid),
                url: port.map(|p| format!("http://127.0.0.1:{p}")),
                port,
                restarts: unit.map(|u| u.run.restarts).unwrap_or(0),
                artifact: running_spec.artifact.clone(),
                digest: running_spec.digest.clone(),
                log: self.log_path(key, &spec.name),
                detail: unit.and_then(|u| u.run.detail.clone()),
                public_url,
                borrowed_from: None,
            });
        }
        let states: Vec<ComponentState> = components
            .iter()
            .filter(|c| c.kind != ComponentKind::Model)
            .map(|c| c.state)
            .collect();
        let state = if biome.sleeping_since.is_some() {
            // `sleeping` once nothing of it runs any more; its processes are being stopped
            // until then.
            if biome.activity.falling_asleep {
                "stopping"
            } else {
                "sleeping"
            }
        } else {
            biome_state::biome_state(&states).as_str()
        };
        BiomeStatus {
            project: key.project.clone(),
            biome: key.biome.clone(),
            env: biome.spec.env.clone(),
            sha: biome.spec.version.clone(),
            state: state.into(),
            components,
            data_dir: self.data_dir(key),
            database: biome.spec.database.clone(),
            ready_wait_ms: None,
            sleeping_since: biome.sleeping_since.map(epoch_secs),
            last_request: biome.activity.last_request.map(epoch_secs),
            idle_timeout_secs: biome.spec.idle_timeout_secs,
            usage: None,
        }
    }

    // ----- convergence ----------------------------------------------------------------------

    async fn converge(
        self: &Arc<Self>,
        key: &BiomeKey,
        events: &Events,
    ) -> Result<Duration, String> {
        let spec = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            match biomes.get(key) {
                Some(biome) => biome.spec.clone(),
                None => return Ok(Duration::ZERO),
            }
        };
        // Components no longer declared go first.
        let removed: Vec<Name> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let biome = biomes.get(key).expect("checked above");
            reconcile::removed_components(biome.units.keys(), &spec.components)
        };
        for name in removed {
            emit(events, Some(&name), "removed from the biome; stopping");
            self.stop_unit(key, &name).await;
            self.biomes
                .lock()
                .expect("biomes poisoned")
                .get_mut(key)
                .map(|b| b.units.remove(&name));
            let _ = fs::remove_dir_all(self.biome_dir(key).join("components").join(name.as_str()));
        }
        fs::create_dir_all(self.data_dir(key)).map_err(|e| {
            state_file::io_failure(state_file::Doing::Create, &self.data_dir(key), &e)
        })?;
        let services = service_names(&spec);
        // Independent components start together; each wave waits for the one before. The
        // time spent waiting for readiness is the longest wait of each wave, summed.
        let mut ready_wait = Duration::ZERO;
        for wave in waves::convergence_waves(&spec.components) {
            let results = futures_util::future::join_all(wave.iter().map(|&index| {
                self.converge_component(key, &spec, &spec.components[index], &services, events)
            }))
            .await;
            let mut longest = Duration::ZERO;
            for result in results {
                longest = longest.max(result?);
            }
            ready_wait += longest;
        }
        self.persist_observed();
        Ok(ready_wait)
    }

    /// Converges one component; answers how long it waited for the component to become ready.
    async fn converge_component(
        self: &Arc<Self>,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        events: &Events,
    ) -> Result<Duration, String> {
        match component.kind {
            ComponentKind::Model => {
                emit(events, Some(&component.name), "models are registered with the model endpoint, which this version does not run yet; skipped");
                Ok(Duration::ZERO)
            }
            // Applied by sandpit before the biome was handed over; nothing runs here.
            ComponentKind::Terraform => Ok(Duration::ZERO),
            ComponentKind::Job => {
                self.converge_job(key, spec, component, services, events)
                    .await
            }
            ComponentKind::Service => {
                self.converge_service(key, spec, component, services, events)
                    .await
            }
        }
    }

    /// Extracts the component's artifact afresh (verifying its digest) into its working
    /// directory, so what runs is exactly the verified bytes whatever was left there before.
    fn prepare_working_dir(
        &self,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
    ) -> Result<PathBuf, String> {
        let dir = self.working_dir(key, component);
        ArtifactSource::of(spec, component).extract_fresh(&dir)?;
        Ok(dir)
    }

    /// What a component gets as its environment: the base variables, its own `env`, its secrets
    /// (read from their files by the caller, [`resolve_secrets`]), then what sandpit injects.
    /// Every process started for it ([`Self::launch_env`]) and every `sandpit exec` in it
    /// ([`Self::environment`]) get exactly this, so the two can never differ. Only those get the
    /// secrets; they are not kept anywhere else.
    fn component_env(
        &self,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        secrets: &ResolvedSecrets,
    ) -> BTreeMap<String, String> {
        let mut ports = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes.get(key).map(|b| b.ports.clone()).unwrap_or_default()
        };
        // An overlay biome reaches the services it borrows at the lender's ports.
        let borrowed = self.borrowed_ports(spec);
        ports.extend(
            borrowed
                .iter()
                .map(|(service, port)| (service.clone(), *port)),
        );
        let mut env: BTreeMap<String, String> = self.config.base_env.iter().cloned().collect();
        for (name, value) in &component.env {
            env.insert(name.clone(), value.clone());
        }
        for (name, value) in secrets.values() {
            env.insert(name.to_owned(), value.to_owned());
        }
        if let Some(port) = ports.get(&component.name) {
            env.insert("PORT".into(), port.to_string());
        }
        env.insert("SANDPIT_PROJECT".into(), spec.project.to_string());
        env.insert("SANDPIT_ENV".into(), spec.env.to_string());
        env.insert("SANDPIT_BIOME".into(), spec.biome.to_string());
        env.insert("SANDPIT_SHA".into(), spec.version.clone());
        env.insert("SANDPIT_COMPONENT".into(), component.name.to_string());
        env.insert(
            "SANDPIT_DATA_DIR".into(),
            self.data_dir(key).display().to_string(),
        );
        let siblings = services.iter().chain(borrowed.keys());
        for service in siblings.filter(|s| **s != component.name) {
            if let Some(port) = ports.get(service) {
                env.insert(
                    format!("SANDPIT_URL_{}", service.upper_snake()),
                    format!("http://127.0.0.1:{port}"),
                );
            }
        }
        // Every service's address through the gateway, its own included (for links it prints).
        if let Some(gateway) = self.public_port(spec) {
            for service in services.iter().chain(spec.borrowed.keys()) {
                env.insert(
                    format!("SANDPIT_PUBLIC_URL_{}", service.upper_snake()),
                    public_url(service, key, gateway),
                );
            }
        }
        env
    }

    /// What a component's process is started with: [`Self::component_env`] and the supervisor's
    /// marker, by which a later daemon recognises the process as its own.
    fn launch_env(
        &self,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        secrets: &ResolvedSecrets,
    ) -> Vec<(String, String)> {
        let mut env = self.component_env(key, spec, component, services, secrets);
        let (marker_name, marker_value) = self.marker.split_once('=').expect("marker has a =");
        env.insert(marker_name.into(), marker_value.into());
        env.into_iter().collect()
    }

    async fn converge_job(
        self: &Arc<Self>,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        events: &Events,
    ) -> Result<Duration, String> {
        let secrets = resolve_secrets(component)?;
        let fingerprint = borrowing::with_borrowed_ports(
            fingerprint(component, services, &secrets),
            &self.borrowed_ports(spec),
        );
        let action = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let succeeded_with = biomes
                .get(key)
                .and_then(|b| b.units.get(&component.name))
                .and_then(|u| u.succeeded_fingerprint.as_deref());
            reconcile::job_action(succeeded_with, &fingerprint)
        };
        if action == JobAction::AlreadySucceeded {
            emit(
                events,
                Some(&component.name),
                "unchanged; already succeeded",
            );
            return Ok(Duration::ZERO);
        }
        let working_dir = self.prepare_working_dir(key, spec, component)?;
        let log_path = self.log_path(key, &component.name);
        let launch = Launch {
            program: Program::Shell(component.run.clone()),
            working_dir: working_dir.clone(),
            env: self.launch_env(key, spec, component, services, &secrets),
            log_path: log_path.clone(),
            run_as: None,
        };
        emit(
            events,
            Some(&component.name),
            format!("running job ({})", component.artifact),
        );
        mark(
            &log_path,
            format!("running job {}: {}", component.name, component.run),
        );
        let (mut child, identity) =
            process::spawn_logged(&launch, &self.log_writer(key, &component.name))
                .map_err(|e| format!("cannot start job `{}`: {e}", component.name))?;
        self.install_unit(key, component, &fingerprint, working_dir, |unit| {
            unit.run.process = Some(identity);
            unit.run.state = ComponentState::Starting;
        });
        self.persist_observed();
        let timeout = Duration::from_secs(component.start_timeout_secs);
        let waiting = Instant::now();
        let outcome = tokio::time::timeout(timeout, child.wait()).await;
        let waited = waiting.elapsed();
        let result = match outcome {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "job `{}` failed: {}",
                component.name,
                describe_exit(status)
            )),
            Ok(Err(error)) => Err(format!(
                "job `{}`: lost track of its process: {error}",
                component.name
            )),
            Err(_) => {
                process::stop_group(identity, Some(&mut child), self.config.stop_grace).await;
                Err(format!(
                    "job `{}` did not finish within {}s",
                    component.name,
                    timeout.as_secs()
                ))
            }
        };
        // Whatever the job left behind in its group goes with it (its log writer, once it has
        // written the job's last lines).
        process::stop_group(identity, None, self.config.stop_grace).await;
        // The tail a failure quotes is read before the outcome is marked, so it says it once.
        let failure = result
            .as_ref()
            .err()
            .map(|message| with_log_tail(message.clone(), &log_path));
        mark(
            &log_path,
            match &result {
                Ok(()) => format!("job {} succeeded", component.name),
                Err(message) => message.replace('`', ""),
            },
        );
        self.with_unit(key, &component.name, |unit| {
            unit.run.process = None;
            match &result {
                Ok(()) => {
                    unit.run.state = ComponentState::Succeeded;
                    unit.run.detail = None;
                    unit.succeeded_fingerprint = Some(fingerprint.clone());
                }
                Err(message) => {
                    unit.run.state = ComponentState::Failed;
                    unit.run.detail = Some(message.clone());
                }
            }
            unit.run.state_tx.send_replace(unit.run.state);
        });
        self.persist_observed();
        match failure {
            None => {
                emit(events, Some(&component.name), "job succeeded");
                Ok(waited)
            }
            Some(failure) => Err(failure),
        }
    }

    async fn converge_service(
        self: &Arc<Self>,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        events: &Events,
    ) -> Result<Duration, String> {
        let secrets = resolve_secrets(component)?;
        let fingerprint = borrowing::with_borrowed_ports(
            fingerprint(component, services, &secrets),
            &self.borrowed_ports(spec),
        );
        // Running the same thing already (or adoptable after a daemon restart)?
        let action = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let unit = biomes.get(key).and_then(|b| b.units.get(&component.name));
            reconcile::convergence(unit.map(|unit| Held {
                unchanged: unit.fingerprint == fingerprint,
                watched: unit.run.is_watched(),
                alive: unit.run.process.filter(|p| process::is_running(*p)),
            }))
        };
        let adoptable = match action {
            Convergence::Adopt(identity) => Some(identity),
            _ => None,
        };
        if action != Convergence::Keep {
            let source = ArtifactSource::of(spec, component);
            let working_dir = self.working_dir(key, component);
            // Verify before stopping the old version, so a bad artifact leaves it running. The
            // watcher extracts the verified bytes afresh right before every start.
            if adoptable.is_none() {
                source.verified_blob()?;
            }
            if adoptable.is_some() {
                emit(
                    events,
                    Some(&component.name),
                    "adopting the running process",
                );
            } else {
                self.stop_unit(key, &component.name).await;
                emit(
                    events,
                    Some(&component.name),
                    format!("starting {}", component.artifact),
                );
            }
            let launch = Launch {
                program: Program::Shell(component.run.clone()),
                working_dir: working_dir.clone(),
                env: self.launch_env(key, spec, component, services, &secrets),
                log_path: self.log_path(key, &component.name),
                run_as: None,
            };
            let port = {
                let biomes = self.biomes.lock().expect("biomes poisoned");
                biomes
                    .get(key)
                    .and_then(|b| b.ports.get(&component.name).copied())
            }
            .ok_or_else(|| format!("no port was allocated for `{}`", component.name))?;
            let generation = self.install_unit(key, component, &fingerprint, working_dir, |unit| {
                unit.run.state = ComponentState::Starting;
                unit.run.process = adoptable;
            });
            let (stop_tx, stop_rx) = watch::channel(false);
            let watcher = ServiceWatcher {
                supervisor: Arc::clone(self),
                slot: Slot::Component(key.clone(), component.name.clone()),
                generation,
                launch,
                readiness: Readiness::Http(HealthProbe::url(
                    port,
                    component.health.as_deref().unwrap_or("/"),
                )),
                start_timeout: Duration::from_secs(component.start_timeout_secs),
                polite_signal: nix::sys::signal::Signal::SIGTERM,
                port,
                artifact: Some(source),
                own_command: None,
            };
            let handle = tokio::spawn(watcher.run(adoptable, stop_rx));
            self.with_unit(key, &component.name, |unit| {
                unit.run.task = Some(UnitTask {
                    stop: stop_tx,
                    handle,
                });
            });
        } else {
            emit(events, Some(&component.name), "unchanged");
        }
        let waiting = Instant::now();
        self.wait_ready(key, component, events).await?;
        Ok(waiting.elapsed())
    }

    async fn wait_ready(
        &self,
        key: &BiomeKey,
        component: &ComponentSpec,
        events: &Events,
    ) -> Result<(), String> {
        let Some(mut state_rx) = ({
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .get(key)
                .and_then(|b| b.units.get(&component.name))
                .map(|u| u.run.state_tx.subscribe())
        }) else {
            return Err(format!("`{}` is not running", component.name));
        };
        let deadline = Instant::now() + Duration::from_secs(component.start_timeout_secs);
        let log_path = self.log_path(key, &component.name);
        loop {
            let state = *state_rx.borrow_and_update();
            match health_verdict::service_ready_wait(state) {
                ReadyWait::Ready => {
                    emit(events, Some(&component.name), "healthy");
                    return Ok(());
                }
                ReadyWait::GaveUp => {
                    let detail = self
                        .unit_detail(key, &component.name)
                        .unwrap_or_else(|| state.as_str().to_owned());
                    return Err(with_log_tail(
                        format!(
                            "service `{}` did not become healthy: {detail}",
                            component.name
                        ),
                        &log_path,
                    ));
                }
                ReadyWait::Waiting => {}
            }
            match tokio::time::timeout_at(deadline, state_rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => {
                    return Err(format!("`{}` was replaced while starting", component.name))
                }
                Err(_) => {
                    // The watcher keeps probing; until it sees a 2xx the service counts as unhealthy.
                    self.with_unit(key, &component.name, |unit| {
                        if unit.run.state == ComponentState::Starting {
                            unit.run.state = ComponentState::Unhealthy;
                            unit.run.state_tx.send_replace(unit.run.state);
                        }
                    });
                    let detail = self.unit_detail(key, &component.name).unwrap_or_default();
                    return Err(with_log_tail(
                        format!(
                            "service `{}` did not become healthy within {}s: {detail}",
                            component.name, component.start_timeout_secs
                        ),
                        &log_path,
                    ));
                }
            }
        }
    }

    fn unit_detail(&self, key: &BiomeKey, name: &Name) -> Option<String> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        biomes.get(key)?.units.get(name)?.run.detail.clone()
    }

    /// Creates or replaces the unit record for a component; returns its new generation.
    fn install_unit(
        &self,
        key: &BiomeKey,
        component: &ComponentSpec,
        fingerprint: &str,
        working_dir: PathBuf,
        configure: impl FnOnce(&mut Unit),
    ) -> u64 {
        let mut biomes = self.biomes.lock().expect("biomes poisoned");
        let biome = biomes.get_mut(key).expect("biome exists while converging");
        let unit = biome
            .units
            .entry(component.name.clone())
            .or_insert_with(|| Unit {
                spec: component.clone(),
                fingerprint: fingerprint.to_owned(),
                working_dir: working_dir.clone(),
                succeeded_fingerprint: None,
                run: Running::new(ComponentState::Stopped, None, 0),
            });
        if unit.fingerprint != fingerprint {
            unit.run.restarts = 0;
        }
        let old_dir = std::mem::replace(&mut unit.working_dir, working_dir);
        if old_dir != unit.working_dir {
            let _ = fs::remove_dir_all(&old_dir);
        }
        unit.spec = component.clone();
        unit.fingerprint = fingerprint.to_owned();
        unit.run.detail = None;
        unit.run.generation += 1;
        configure(unit);
        unit.run.state_tx.send_replace(unit.run.state);
        unit.run.generation
    }

    fn with_unit<T>(
        &self,
        key: &BiomeKey,
        name: &Name,
        change: impl FnOnce(&mut Unit) -> T,
    ) -> Option<T> {
        let mut biomes = self.biomes.lock().expect("biomes poisoned");
        biomes.get_mut(key)?.units.get_mut(name).map(change)
    }

    /// The process record behind a slot, whichever map holds it.
    fn with_running<T>(&self, slot: &Slot, change: impl FnOnce(&mut Running) -> T) -> Option<T> {
        match slot {
            Slot::Component(key, name) => self.with_unit(key, name, |unit| change(&mut unit.run)),
            Slot::Instance(key) => {
                let mut instances = self.instances.lock().expect("instances poisoned");
                instances
                    .get_mut(key)
                    .map(|instance| change(&mut instance.run))
            }
        }
    }

    /// Changes a record only if `generation` still owns it.
    fn update_if_current(
        &self,
        slot: &Slot,
        generation: u64,
        change: impl FnOnce(&mut Running),
    ) -> bool {
        self.with_running(slot, |run| {
            if run.generation != generation {
                return false;
            }
            change(run);
            run.state_tx.send_replace(run.state);
            true
        })
        .unwrap_or(false)
    }

    async fn stop_unit(&self, key: &BiomeKey, name: &Name) {
        self.stop_slot(
            &Slot::Component(key.clone(), name.clone()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .await
    }

    /// Stops the slot's watcher (which stops its process group) and waits for it.
    async fn stop_slot(&self, slot: &Slot, polite: nix::sys::signal::Signal) {
        let (task, orphan) = match self.with_running(slot, |run| {
            run.generation += 1;
            (run.task.take(), run.process.take())
        }) {
            Some(found) => found,
            None => return,
        };
        if let Some(task) = task {
            let _ = task.stop.send(true);
            let _ = task.handle.await;
        }
        // A process no watcher owned (adopted, not yet watched) is stopped here.
        if let Some(identity) = orphan {
            process::stop_group_with(identity, None, self.config.stop_grace, polite).await;
        }
        self.with_running(slot, |run| {
            run.state = reconcile::state_after_stop(run.state);
            run.state_tx.send_replace(run.state);
        });
    }

    // ----- persistence and recovery -----------------------------------------------------------

    /// Writes the state file atomically (the old one stays intact when this fails). Callers that
    /// change desired state refuse the change on an error; observations use [`Self::persist_observed`].
    pub fn persist(&self) -> Result<(), StateFileError> {
        let _guard = self.persist_lock.lock().expect("persist lock poisoned");
        let persisted = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            Persisted {
                biomes: biomes
                    .values()
                    .map(|biome| PersistedBiome {
                        spec: biome.spec.clone(),
                        ports: biome.ports.clone(),
                        removing: biome.removing,
                        sleeping_since: biome.sleeping_since.map(epoch_secs),
                        units: biome
                            .units
                            .iter()
                            .map(|(name, unit)| {
                                (
                                    name.clone(),
                                    PersistedUnit {
                                        spec: unit.spec.clone(),
                                        fingerprint: unit.fingerprint.clone(),
                                        working_dir: unit.working_dir.clone(),
                                        state: unit.run.state,
                                        process: unit.run.process,
                                        restarts: unit.run.restarts,
                                        succeeded_fingerprint: unit.succeeded_fingerprint.clone(),
                                    },
                                )
                            })
                            .collect(),
                    })
                    .collect(),
                instances: self.persisted_instances(),
            }
        };
        let bytes = serde_json::to_vec_pretty(&persisted).map_err(StateFileError::Encode)?;
        state_file::write_atomically(&self.state_file(), &bytes)
    }

    /// Saves what was observed (a process started or crashed, a job finished). A failure is
    /// logged, not fatal: the processes run on, and the desired state, saved before it was acted
    /// on, is intact; at worst the next daemon restarts what it could have adopted.
    fn persist_observed(&self) {
        if let Err(error) = self.persist() {
            tracing::error!("cannot save the supervisor state: {error}");
        }
    }

    /// The process groups the supervisor runs now (components and instances).
    fn supervised_groups(&self) -> BTreeSet<u32> {
        let mut groups: BTreeSet<u32> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .values()
                .flat_map(|b| b.units.values().filter_map(|u| u.run.process))
                .map(|p| p.pid)
                .collect()
        };
        let instances = self.instances.lock().expect("instances poisoned");
        groups.extend(
            instances
                .values()
                .filter_map(|i| i.run.process.map(|p| p.pid)),
        );
        groups
    }

    /// Reads the state file. A corrupt one is set aside (never overwritten) and the daemon starts
    /// from nothing, saying so; a missing one is nothing.
    fn load_state(&self) -> Result<Persisted, String> {
        let path = self.state_file();
        let bytes = match state_file::read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Persisted::default()),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        let error = match serde_json::from_slice(&bytes) {
            Ok(persisted) => return Ok(persisted),
            Err(error) => error,
        };
        let kept = state_file::keep_aside(&path, SystemTime::now()).map_err(|e| {
            format!(
                "the supervisor state {} is corrupt ({error}) and cannot be set aside: {e}\nhint: move it elsewhere by hand, then run `sandpit daemon start` again",
                path.display()
            )
        })?;
        let notice = format!(
            "the supervisor state {} was corrupt ({error}); it is kept as {} and the daemon started without it: it stopped every process of this SANDPIT_HOME it found, and `sandpit up` brings biomes back",
            path.display(),
            kept.display()
        );
        tracing::error!("{notice}");
        self.notices.lock().expect("notices poisoned").push(notice);
        Ok(Persisted::default())
    }

    /// Called once when the daemon starts: adopts surviving processes, finishes interrupted
    /// removals, stops every process of this home that nobody recorded (all of them, instances
    /// included, when the state file is missing or corrupt), then brings every biome back to its
    /// desired state in the background.
    pub async fn recover(self: &Arc<Self>) -> Result<(), String> {
        state_file::create_private_dir(&self.runtime_dir()).map_err(|e| e.to_string())?;
        let had_state = self.state_file().is_file();
        let persisted = self.load_state()?;
        let recovery = recovery::recover_biomes(persisted.biomes, process::is_running);
        let mut known_groups = recovery.adopted_groups;
        let mut removed_dirs = Vec::new();
        for key in recovery.finish_removal {
            tracing::info!(
                "finishing the removal of biome {}/{}",
                key.project,
                key.biome
            );
            removed_dirs.push(self.biome_dir(&key));
        }
        {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            for restored in recovery.restore {
                let units = restored
                    .units
                    .into_iter()
                    .map(|(name, saved, recovered)| {
                        let unit = Unit {
                            spec: saved.spec,
                            fingerprint: saved.fingerprint,
                            working_dir: saved.working_dir,
                            succeeded_fingerprint: saved.succeeded_fingerprint,
                            run: Running::new(
                                recovered.state(),
                                recovered.process(),
                                saved.restarts,
                            ),
                        };
                        (name, unit)
                    })
                    .collect();
                biomes.insert(
                    restored.key,
                    Biome {
                        spec: restored.spec,
                        units,
                        ports: restored.ports,
                        removing: false,
                        sleeping_since: restored
                            .sleeping_since
                            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
                        activity: Activity::now(),
                    },
                );
            }
        }
        self.restore_instances(persisted.instances, &mut known_groups);
        // Anything carrying our marker that is not an adopted group is an orphan: stop it, each
        // group the way it asked to be stopped (PostgreSQL: SIGINT), all at once.
        let marked = process::processes_with_env_marker(&self.marker);
        let orphans = process::orphan_groups(&marked, &known_groups);
        if let Some(notice) =
            recovery::missing_state_notice(&self.state_file(), had_state, orphans.len())
        {
            tracing::warn!("{notice}");
            self.notices.lock().expect("notices poisoned").push(notice);
        }
        let mut stopping = tokio::task::JoinSet::new();
        for (group, signal) in orphans {
            tracing::info!("stopping orphaned process group {group}");
            stopping.spawn(process::stop_leftover_group(
                group,
                process::polite_signal(signal.as_deref()),
                self.config.stop_grace,
            ));
        }
        while stopping.join_next().await.is_some() {}
        for dir in removed_dirs {
            if let Err(error) = fs::remove_dir_all(&dir) {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("could not remove {}: {error}", dir.display());
                }
            }
        }
        // Instances first: biomes may need them (their database) to converge.
        self.resume_instances();
        self.persist_observed();
        let keys: Vec<BiomeKey> = self
            .biomes
            .lock()
            .expect("biomes poisoned")
            .keys()
            .cloned()
            .collect();
        for key in keys {
            let supervisor = Arc::clone(self);
            tokio::spawn(async move {
                let lock = supervisor.operation_lock(&key);
                let _guard = lock.lock().await;
                let env = supervisor
                    .biomes
                    .lock()
                    .expect("biomes poisoned")
                    .get(&key)
                    // A sleeping biome stays asleep until something asks for it.
                    .filter(|b| b.sleeping_since.is_none())
                    .map(|b| b.spec.env.clone());
                let Some(env) = env else {
                    return;
                };
                supervisor
                    .wait_environment_instances(&key.project, &env)
                    .await;
                if let Err(error) = supervisor.converge(&key, &None).await {
                    tracing::warn!(
                        "biome {}/{} did not recover: {error}",
                        key.project,
                        key.biome
                    );
                }
            });
        }
        Ok(())
    }

    /// Keeps every component's log under the cap; run periodically by the daemon.
    pub fn enforce_log_caps(&self) {
        let logs: Vec<PathBuf> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .iter()
                .flat_map(|(key, biome)| {
                    biome
                        .units
                        .keys()
                        .map(|name| self.log_path(key, name))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for log in logs {
            if let Err(error) = logs::enforce_cap(&log, self.config.log_max_bytes) {
                tracing::warn!("cannot rotate {}: {error}", log.display());
            }
        }
    }
}

/// Watches one service: starts (or adopts) its process, probes its health, restarts it with
/// backoff when it crashes, and stops it when told to.
struct ServiceWatcher {
    supervisor: Arc<Supervisor>,
    slot: Slot,
    generation: u64,
    launch: Launch,
    readiness: Readiness,
    start_timeout: Duration,
    /// The signal that asks the process to stop before SIGKILL insists.
    polite_signal: nix::sys::signal::Signal,
    /// The loopback port it serves on: before each start it must be free (or held by a leftover
    /// of this home, which is stopped), and a passing probe counts only when the listener on it
    /// belongs to this process group.
    port: u16,
    /// Services: the verified artifact extracted afresh into the working directory before every
    /// start, so an edited or added file never runs.
    artifact: Option<ArtifactSource>,
    /// Instances: a process running exactly this command line is a leftover of ours even without
    /// the marker (an older daemon started it; its data directory is under this home).
    own_command: Option<Vec<String>>,
}

/// Where a component's bytes come from: its artifact in a digest-verified store.
#[derive(Debug, Clone)]
struct ArtifactSource {
    store: PathBuf,
    digest: Digest,
    artifact: String,
    component: Name,
    max_size: u64,
}

impl ArtifactSource {
    fn of(spec: &BiomeSpec, component: &ComponentSpec) -> ArtifactSource {
        ArtifactSource {
            store: spec.store.clone(),
            digest: component.digest.clone(),
            artifact: component.artifact.clone(),
            component: component.name.clone(),
            max_size: spec.max_artifact_size,
        }
    }

    /// The blob, re-hashed now; a mismatch is refused.
    fn verified_blob(&self) -> Result<PathBuf, String> {
        let store = ArtifactStore::open(&self.store).map_err(|e| {
            format!(
                "cannot open the artifact store {}: {e}",
                self.store.display()
            )
        })?;
        store.open_verified(&self.digest).map_err(|e| {
            format!(
                "refusing to start `{}` from {}: {e}",
                self.component, self.artifact
            )
        })
    }

    /// Replaces `dir` by a fresh extraction of the verified blob. Whatever was there (an edited
    /// file, one a previous run added, `__pycache__`) is gone; the data dir lives elsewhere.
    fn extract_fresh(&self, dir: &Path) -> Result<(), String> {
        let blob = self.verified_blob()?;
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(format!(
                    "cannot clear the working directory {} of `{}`: {error}",
                    dir.display(),
                    self.component
                ))
            }
        }
        sandpit_artifact::extract::extract(&blob, dir, ByteSize(self.max_size)).map_err(|e| {
            let why = match &e {
                sandpit_artifact::extract::ExtractError::WriteOutput { path, source } => {
                    state_file::io_failure(state_file::Doing::Write, path, source)
                }
                _ => e.to_string(),
            };
            format!(
                "cannot extract {} for `{}`: {why}",
                self.artifact, self.component
            )
        })?;
        Ok(())
    }
}

/// How a watcher tells that its process is ready.
#[derive(Debug, Clone)]
enum Readiness {
    /// Any 2xx from this URL.
    Http(String),
    /// A TCP connection to this loopback port is accepted.
    Tcp(u16),
}

/// Which record a watcher reports into.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Component(BiomeKey, Name),
    Instance(InstanceKey),
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Component(key, name) => write!(f, "{}/{}/{name}", key.project, key.biome),
            Slot::Instance(key) => write!(f, "{}/{}/{}", key.project, key.env, key.name),
        }
    }
}

enum Watched {
    Exited(String),
    StopRequested,
}

impl ServiceWatcher {
    async fn run(self, mut adopt: Option<ProcessIdentity>, mut stop: watch::Receiver<bool>) {
        let backoff = self.supervisor.config.backoff;
        let mut failures = 0u32;
        if let Some(identity) = adopt {
            self.mark(|name| {
                format!(
                    "adopted {name} (pid {}), which kept running while no daemon watched it",
                    identity.pid
                )
            });
        }
        loop {
            let started = match adopt.take() {
                Some(identity) => Ok((None, identity)),
                None => match self.prepare_start().await {
                    Ok(()) => {
                        self.mark(|name| {
                            format!("starting {name}: {}", self.launch.program.display())
                        });
                        self.spawn()
                            .map(|(child, identity)| (Some(child), identity))
                            .map_err(|error| {
                                format!("cannot start `{}`: {error}", self.launch.program.display())
                            })
                    }
                    Err(why) => Err(why),
                },
            };
            let (mut child, identity) = match started {
                Ok(started) => started,
                Err(why) => {
                    let retry =
                        crash_restart::retry_after(&backoff, failures, Ended::FailedToStart);
                    failures = retry.failures;
                    let delay = retry.delay;
                    tracing::warn!("{}: {why}; retrying in {delay:?}", self.slot);
                    self.mark(|_| {
                        format!("{why}; retrying in {}", humantime::format_duration(delay))
                    });
                    let still_ours = self.set(|run| {
                        run.state = ComponentState::Crashed;
                        run.detail = Some(format!("{why}; retrying in {}ms", delay.as_millis()));
                    });
                    if !still_ours {
                        return;
                    }
                    if self.wait_or_stop(delay, &mut stop).await {
                        return self.stopped();
                    }
                    continue;
                }
            };
            if !self.set(|run| run.process = Some(identity)) {
                // Replaced while starting: this process is not ours to keep.
                process::stop_group_with(
                    identity,
                    child.as_mut(),
                    self.supervisor.config.stop_grace,
                    self.polite_signal,
                )
                .await;
                return;
            }
            self.supervisor.persist_observed();
            let started = Instant::now();
            match self
                .watch(identity, child.as_mut(), started, &mut stop)
                .await
            {
                Watched::StopRequested => {
                    self.mark(|name| format!("stopping {name} (pid {})", identity.pid));
                    process::stop_group_with(
                        identity,
                        child.as_mut(),
                        self.supervisor.config.stop_grace,
                        self.polite_signal,
                    )
                    .await;
                    self.mark(|name| format!("stopped {name}"));
                    return self.stopped();
                }
                Watched::Exited(how) => {
                    // Leftovers of the group (a child of the shell) would hold the port.
                    process::stop_group_with(
                        identity,
                        None,
                        self.supervisor.config.stop_grace,
                        self.polite_signal,
                    )
                    .await;
                    let retry = crash_restart::retry_after(
                        &backoff,
                        failures,
                        Ended::Exited {
                            uptime: started.elapsed(),
                        },
                    );
                    failures = retry.failures;
                    let delay = retry.delay;
                    tracing::info!("{} {how}; restarting in {delay:?}", self.slot);
                    // After the group is gone: the writer has written the last lines before it.
                    self.mark(|name| {
                        format!(
                            "restarting {name} ({how}) in {}",
                            humantime::format_duration(delay)
                        )
                    });
                    let still_ours = self.set(|run| {
                        run.state = ComponentState::Crashed;
                        run.process = None;
                        if retry.counts_as_restart {
                            run.restarts += 1;
                        }
                        run.detail = Some(format!("{how}; restarting in {}ms", delay.as_millis()));
                    });
                    if !still_ours {
                        return;
                    }
                    self.supervisor.persist_observed();
                    if self.wait_or_stop(delay, &mut stop).await {
                        return self.stopped();
                    }
                }
            }
        }
    }

    /// Follows one process until it exits or a stop is requested, probing health meanwhile.
    async fn watch(
        &self,
        identity: ProcessIdentity,
        mut child: Option<&mut tokio::process::Child>,
        started: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> Watched {
        let mut history = ProbeHistory::default();
        loop {
            let interval = history.next_interval();
            let exited = async {
                match child.as_mut() {
                    Some(child) => match child.wait().await {
                        Ok(status) => describe_exit(status),
                        Err(error) => format!("lost track of the process: {error}"),
                    },
                    None => loop {
                        // An adopted process is not our child; poll it.
                        if !process::is_running(identity) {
                            break "exited".to_owned();
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    },
                }
            };
            tokio::select! {
                how = exited => return Watched::Exited(how),
                _ = stop.changed() => return Watched::StopRequested,
                _ = tokio::time::sleep(interval) => {}
            }
            let probed = match &self.readiness {
                Readiness::Http(url) => self.supervisor.probe.probe(url).await,
                Readiness::Tcp(port) => probe_tcp(*port).await,
            };
            let probed = match probed {
                // An answer counts only if it comes from this process group: on a port kept for
                // the biome's life, a squatter's answers are not this service's health.
                ProbeResult::Healthy => {
                    let answering =
                        ports::answering(self.port, identity.pid, self.supervisor.marker());
                    match health_verdict::answer(answering) {
                        Answer::Counts => ProbeResult::Healthy,
                        Answer::HeldBy(holder) => {
                            let why = self.held_by(&holder);
                            self.set(|run| {
                                run.state = ComponentState::Unhealthy;
                                run.detail = Some(why.clone());
                            });
                            continue;
                        }
                        Answer::ProbeAgain => continue,
                    }
                }
                unhealthy => unhealthy,
            };
            match history.record(probed, started.elapsed() >= self.start_timeout) {
                Verdict::Healthy => {
                    self.set(|run| {
                        run.state = ComponentState::Healthy;
                        run.detail = None;
                    });
                }
                Verdict::Unhealthy(why) => {
                    self.set(|run| {
                        run.state = ComponentState::Unhealthy;
                        run.detail = Some(why);
                    });
                }
                Verdict::NotReadyYet(why) => {
                    self.set(|run| run.detail = Some(why));
                }
                Verdict::Tolerated => {}
            }
        }
    }

    /// What must hold before a process is started: the working directory is exactly the verified
    /// artifact, and the port is free.
    async fn prepare_start(&self) -> Result<(), String> {
        if let Some(artifact) = self.artifact.clone() {
            let dir = self.launch.working_dir.clone();
            tokio::task::spawn_blocking(move || artifact.extract_fresh(&dir))
                .await
                .map_err(|e| format!("the extraction was interrupted: {e}"))??;
        }
        self.claim_port().await
    }

    /// Makes sure the port can be bound: a leftover of this home holding it is stopped (the way
    /// it asks to be), anyone else's process is reported and left alone.
    async fn claim_port(&self) -> Result<(), String> {
        // Leftovers are stopped in the first round; the second only checks they let go.
        for _ in 0..2 {
            if ports::is_free(self.port) {
                return Ok(());
            }
            let holders = match ports::holders(self.port, self.supervisor.marker()) {
                Some(holders) if !holders.is_empty() => holders,
                // In use, yet no listener (an outgoing connection bound to it, or one closing).
                _ => return Err(format!("port {} is in use", self.port)),
            };
            let supervised = self.supervisor.supervised_groups();
            match ports::claim(&holders, &supervised, self.own_command.as_deref()) {
                Claim::HeldBy(holder) => return Err(self.held_by(&holder)),
                Claim::StopLeftovers(groups) => {
                    for (group, signal) in groups {
                        tracing::info!(
                            "{}: stopping process group {group}, left by this SANDPIT_HOME on port {}",
                            self.slot,
                            self.port
                        );
                        let polite = signal
                            .as_deref()
                            .map(|name| process::polite_signal(Some(name)))
                            .unwrap_or(self.polite_signal);
                        process::stop_leftover_group(
                            group,
                            polite,
                            self.supervisor.config.stop_grace,
                        )
                        .await;
                    }
                }
            }
        }
        Err(format!(
            "port {} is still held after stopping what this SANDPIT_HOME left on it",
            self.port
        ))
    }

    /// "port 41234 is held by pid 999 (user nobody), not by this service"
    fn held_by(&self, holder: &Holder) -> String {
        let what = match &self.slot {
            Slot::Component(..) => "this service".to_owned(),
            Slot::Instance(key) => format!("this {} instance", key.name),
        };
        format!(
            "port {} is held by {}, not by {what}",
            self.port,
            holder.describe()
        )
    }

    /// Starts the process: a component through its log writer, an instance straight into its
    /// own log (PostgreSQL's has a format of its own).
    fn spawn(&self) -> io::Result<(tokio::process::Child, ProcessIdentity)> {
        match &self.slot {
            Slot::Component(key, name) => {
                process::spawn_logged(&self.launch, &self.supervisor.log_writer(key, name))
            }
            Slot::Instance(_) => process::spawn(&self.launch),
        }
    }

    /// Marks a moment of a component's life in its log (stream `sandpit`); instances' logs
    /// keep their own format.
    fn mark(&self, text: impl FnOnce(&Name) -> String) {
        if let Slot::Component(_, name) = &self.slot {
            mark(&self.launch.log_path, text(name));
        }
    }

    /// Sleeps `delay`; true when a stop was requested meanwhile.
    async fn wait_or_stop(&self, delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return true;
        }
        tokio::select! {
            _ = stop.changed() => true,
            _ = tokio::time::sleep(delay) => false,
        }
    }

    fn set(&self, change: impl FnOnce(&mut Running)) -> bool {
        self.supervisor
            .update_if_current(&self.slot, self.generation, change)
    }

    fn stopped(&self) {
        self.supervisor.with_running(&self.slot, |run| {
            run.process = None;
            run.state = ComponentState::Stopped;
            run.state_tx.send_replace(run.state);
        });
        self.supervisor.persist_observed();
    }
}

/// Reads the component's secrets from their files, when it is about to be (re)started.
fn resolve_secrets(component: &ComponentSpec) -> Result<ResolvedSecrets, String> {
    secret_env::resolve(&component.secret_env)
        .map_err(|error| format!("cannot start `{}`: {error}", component.name))
}

/// The component `wanted` names (the default one when `None`), or why there is none: an unknown
/// name gets a did-you-mean, or the list of what there is.
fn pick_component<'s>(
    spec: &'s BiomeSpec,
    wanted: Option<&Name>,
) -> Result<&'s ComponentSpec, String> {
    let Some(name) = wanted else {
        return default_component(&spec.components).ok_or_else(|| {
            format!(
                "biome `{}` runs no service or job (models are served by the model endpoint)",
                spec.biome
            )
        });
    };
    if let Some(found) = spec.components.iter().find(|c| &c.name == name) {
        return Ok(found);
    }
    if let Some(lender) = spec.borrowed.get(name) {
        return Err(format!(
            "biome `{}` borrows `{name}` from `{lender}`: it runs there, not in the biome\nhint: name `{lender}` instead, e.g. `sandpit restart {lender} {name}`",
            spec.biome
        ));
    }
    let known = spec.components.iter().map(|c| c.name.as_str());
    let hint =
        sandpit_domain::suggestion::did_you_mean(name.as_str(), known).unwrap_or_else(|| {
            let all: Vec<String> = spec
                .components
                .iter()
                .map(|c| format!("`{}`", c.name))
                .collect();
            if all.is_empty() {
                "it runs no service or job".to_owned()
            } else {
                format!("it runs {}", all.join(", "))
            }
        });
    Err(format!(
        "biome `{}` has no component `{name}`\nhint: {hint}",
        spec.biome
    ))
}

/// The biome's services, in start order: each gets a `SANDPIT_URL_<SERVICE>` of the others.
/// A service's address through the home's gateway: `*.localhost` resolves to loopback.
pub fn public_url(service: &Name, key: &BiomeKey, gateway_port: u16) -> String {
    format!(
        "http://{service}.{}.{}.localhost:{gateway_port}",
        key.biome, key.project
    )
}

fn service_names(spec: &BiomeSpec) -> Vec<Name> {
    spec.components
        .iter()
        .filter(|c| c.kind == ComponentKind::Service)
        .map(|c| c.name.clone())
        .collect()
}

fn check_spec(spec: &BiomeSpec) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for component in &spec.components {
        for dependency in &component.depends_on {
            // A borrowed service runs already, in its lender (checked by `check_lenders`).
            if !seen.contains(dependency) && !spec.borrowed.contains_key(dependency) {
                return Err(format!(
                    "`{}` depends on `{dependency}`, which is not started before it",
                    component.name
                ));
            }
        }
        if !seen.insert(component.name.clone()) {
            return Err(format!("component `{}` appears twice", component.name));
        }
    }
    Ok(())
}

/// `biomes` with what their processes cost now, from one read of `/proc` for all of them; done
/// after the biomes lock is released, so reading `/proc` never holds up the watchers.
fn with_usage(mut biomes: Vec<BiomeStatus>) -> Vec<BiomeStatus> {
    crate::usage::attach(&mut biomes);
    biomes
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => "exited".to_owned(),
    }
}

/// Appends a supervisor mark to a component's log; a log that cannot be written is no reason
/// to stop supervising.
fn mark(log: &Path, text: String) {
    if let Err(error) = logs::append(log, logs::Stream::Sandpit, &text) {
        tracing::warn!("cannot write to {}: {error}", log.display());
    }
}

fn with_log_tail(message: String, log: &Path) -> String {
    let tail = logs::tail(log, 20);
    if tail.trim().is_empty() {
        format!("{message}\n(the log {} is empty)", log.display())
    } else {
        format!("{message}\n--- last lines of {} ---\n{tail}", log.display())
    }
}

async fn probe_tcp(port: u16) -> ProbeResult {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => ProbeResult::Healthy,
        Ok(Err(error)) => {
            ProbeResult::Unhealthy(format!("127.0.0.1:{port} refused a connection: {error}"))
        }
        Err(_) => ProbeResult::Unhealthy(format!(
            "127.0.0.1:{port} did not accept a connection within 2s"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn biome_of(components: &[(&str, ComponentKind)]) -> BiomeSpec {
        let name = |n: &str| Name::parse(n).unwrap();
        BiomeSpec {
            project: name("geo"),
            env: name("dev"),
            biome: name("alice"),
            version: "0123456789ab".into(),
            store: PathBuf::from("/nowhere"),
            max_artifact_size: 1,
            components: components
                .iter()
                .map(|(n, kind)| ComponentSpec {
                    name: name(n),
                    kind: *kind,
                    artifact: format!("{n}-0123456789ab.zip"),
                    digest: Digest::of(n.as_bytes()),
                    run: "true".into(),
                    health: None,
                    start_timeout_secs: 1,
                    env: BTreeMap::new(),
                    secret_env: BTreeMap::new(),
                    depends_on: Vec::new(),
                })
                .collect(),
            database: None,
            idle_timeout_secs: None,
            gateway_port: None,
            models: None,
            borrowed: BTreeMap::new(),
        }
    }

    #[test]
    fn a_component_is_the_named_one_or_the_first_service_else_the_first_job() {
        use ComponentKind::{Job, Service};
        // (components in start order, wanted, Ok(chosen) or Err(part of the message))
        type Case<'a> = (
            &'a [(&'a str, ComponentKind)],
            Option<&'a str>,
            Result<&'a str, &'a str>,
        );
        let cases: &[Case] = &[
            (
                &[("migrate", Job), ("api", Service), ("web", Service)],
                None,
                Ok("api"),
            ),
            (&[("migrate", Job), ("seed", Job)], None, Ok("migrate")),
            (
                &[("migrate", Job), ("web", Service)],
                Some("migrate"),
                Ok("migrate"),
            ),
            (&[], None, Err("biome `alice` runs no service or job")),
            (
                &[("migrate", Job), ("web", Service)],
                Some("wbe"),
                Err("biome `alice` has no component `wbe`\nhint: did you mean `web`?"),
            ),
            (
                &[("migrate", Job), ("web", Service)],
                Some("recovery"),
                Err("has no component `recovery`\nhint: it runs `migrate`, `web`"),
            ),
        ];
        for (components, wanted, expected) in cases {
            let spec = biome_of(components);
            let wanted = wanted.map(|w| Name::parse(w).unwrap());
            match (pick_component(&spec, wanted.as_ref()), expected) {
                (Ok(chosen), Ok(name)) => assert_eq!(chosen.name.as_str(), *name),
                (Err(message), Err(part)) => assert!(message.contains(part), "{message}"),
                (got, expected) => panic!("{wanted:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
