//! The supervisor: keeps every biome's processes matching its desired state.
//!
//! A biome's desired state ([`BiomeSpec`]) is persisted before anything is started. `converge`
//! walks its components in dependency order: jobs run to completion, services are started (each
//! watched by a task of its own that probes health and restarts crashes with backoff) and waited
//! for until healthy. After a restart of the daemon, [`Supervisor::recover`] adopts the processes
//! that survived, stops any it cannot account for, and converges every biome again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandpit_artifact::store::ArtifactStore;
use sandpit_domain::{Backoff, ByteSize, ComponentKind, ComponentState, Name};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::health::{HealthProbe, ProbeResult};
use crate::logs;
use crate::process::{self, Launch, ProcessIdentity, Program};
use crate::protocol::{BiomeSpec, BiomeStatus, ComponentSpec, ComponentStatus, InstanceKey, Reply};
use crate::secret_env::{self, ResolvedSecrets};

mod fingerprint;
mod instances;
use fingerprint::fingerprint;
use instances::{Instance, PersistedInstance};

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
        })
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

    fn data_dir(&self, key: &BiomeKey) -> PathBuf {
        self.biome_dir(key).join("data")
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
        let key = BiomeKey {
            project: spec.project.clone(),
            biome: spec.biome.clone(),
        };
        let lock = self.operation_lock(&key);
        let _guard = lock.lock().await;
        {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            let biome = biomes.entry(key.clone()).or_insert_with(|| Biome {
                spec: spec.clone(),
                units: BTreeMap::new(),
                ports: BTreeMap::new(),
            });
            if biome.spec.env != spec.env && !biome.units.is_empty() {
                return Err(format!(
                    "biome `{}` already runs in environment `{}`; run `sandpit down {}` first to move it to `{}`",
                    key.biome, biome.spec.env, key.biome, spec.env
                ));
            }
            biome.spec = spec.clone();
            for component in spec
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Service)
            {
                if !biome.ports.contains_key(&component.name) {
                    let port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
                    biome.ports.insert(component.name.clone(), port);
                }
            }
            biome
                .ports
                .retain(|name, _| spec.components.iter().any(|c| &c.name == name));
        }
        self.persist();
        self.converge(&key, events).await?;
        self.status(&key)
            .ok_or_else(|| format!("biome `{}` vanished while starting", key.biome))
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
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let biome = biomes.get(key).expect("status found it");
            // Stop dependants before what they depend on.
            biome
                .spec
                .components
                .iter()
                .rev()
                .map(|c| c.name.clone())
                .collect()
        };
        for name in names {
            emit(events, Some(&name), "stopping");
            self.stop_unit(key, &name).await;
        }
        self.biomes.lock().expect("biomes poisoned").remove(key);
        self.persist();
        let dir = self.biome_dir(key);
        if let Err(error) = fs::remove_dir_all(&dir) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {error}", dir.display());
            }
        }
        status.state = "stopped".into();
        for component in &mut status.components {
            component.state = ComponentState::Stopped;
            component.pid = None;
        }
        Ok(status)
    }

    pub fn status(&self, key: &BiomeKey) -> Option<BiomeStatus> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        biomes.get(key).map(|biome| self.describe(key, biome))
    }

    pub fn list(&self, project: Option<&Name>) -> Vec<BiomeStatus> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        biomes
            .iter()
            .filter(|(key, _)| project.is_none_or(|p| &key.project == p))
            .map(|(key, biome)| self.describe(key, biome))
            .collect()
    }

    /// Stops every process, keeping desired state so the next daemon brings them back.
    pub async fn shutdown(self: &Arc<Self>) {
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
        self.persist();
    }

    fn describe(&self, key: &BiomeKey, biome: &Biome) -> BiomeStatus {
        let mut components = Vec::new();
        for spec in &biome.spec.components {
            let unit = biome.units.get(&spec.name);
            let port = biome.ports.get(&spec.name).copied();
            let state = unit.map(|u| u.run.state).unwrap_or(ComponentState::Stopped);
            // A unit still running an older artifact reports what it actually runs.
            let running_spec = unit.map(|u| &u.spec).unwrap_or(spec);
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
            });
        }
        let states: Vec<ComponentState> = components
            .iter()
            .filter(|c| c.kind != ComponentKind::Model)
            .map(|c| c.state)
            .collect();
        let state = if states.iter().all(|s| s.is_good()) {
            "healthy"
        } else if states.iter().any(|s| {
            matches!(
                s,
                ComponentState::Crashed | ComponentState::Failed | ComponentState::Unhealthy
            )
        }) {
            "degraded"
        } else if states.iter().all(|s| *s == ComponentState::Stopped) {
            "stopped"
        } else {
            "starting"
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
        }
    }

    // ----- convergence ----------------------------------------------------------------------

    async fn converge(self: &Arc<Self>, key: &BiomeKey, events: &Events) -> Result<(), String> {
        let spec = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            match biomes.get(key) {
                Some(biome) => biome.spec.clone(),
                None => return Ok(()),
            }
        };
        // Components no longer declared go first.
        let removed: Vec<Name> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let biome = biomes.get(key).expect("checked above");
            biome
                .units
                .keys()
                .filter(|name| !spec.components.iter().any(|c| &c.name == *name))
                .cloned()
                .collect()
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
        fs::create_dir_all(self.data_dir(key))
            .map_err(|e| format!("cannot create {}: {e}", self.data_dir(key).display()))?;
        let services: Vec<Name> = spec
            .components
            .iter()
            .filter(|c| c.kind == ComponentKind::Service)
            .map(|c| c.name.clone())
            .collect();
        for component in &spec.components {
            match component.kind {
                ComponentKind::Model => {
                    emit(events, Some(&component.name), "models are registered with the model endpoint, which this version does not run yet; skipped");
                }
                ComponentKind::Job => {
                    self.converge_job(key, &spec, component, &services, events)
                        .await?
                }
                ComponentKind::Service => {
                    self.converge_service(key, &spec, component, &services, events)
                        .await?
                }
            }
        }
        self.persist();
        Ok(())
    }

    /// Extracts the component's artifact (verifying its digest) unless already extracted.
    fn prepare_working_dir(
        &self,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
    ) -> Result<PathBuf, String> {
        let dir = self
            .biome_dir(key)
            .join("components")
            .join(component.name.as_str())
            .join(&component.digest.hex()[..16]);
        if dir.is_dir() {
            return Ok(dir);
        }
        let store = ArtifactStore::open(&spec.store).map_err(|e| {
            format!(
                "cannot open the artifact store {}: {e}",
                spec.store.display()
            )
        })?;
        let blob = store.open_verified(&component.digest).map_err(|e| {
            format!(
                "refusing to start `{}` from {}: {e}",
                component.name, component.artifact
            )
        })?;
        sandpit_artifact::extract::extract(&blob, &dir, ByteSize(spec.max_artifact_size)).map_err(
            |e| {
                format!(
                    "cannot extract {} for `{}`: {e}",
                    component.artifact, component.name
                )
            },
        )?;
        Ok(dir)
    }

    /// What a component's process is started with: the base variables, its own `env`, its
    /// secrets (read from their files by the caller, [`resolve_secrets`]), then what sandpit
    /// injects. Only the process gets the secrets; they are not kept anywhere else.
    fn component_env(
        &self,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        secrets: &ResolvedSecrets,
    ) -> Vec<(String, String)> {
        let ports = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes.get(key).map(|b| b.ports.clone()).unwrap_or_default()
        };
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
        for service in services.iter().filter(|s| **s != component.name) {
            if let Some(port) = ports.get(service) {
                env.insert(
                    format!("SANDPIT_URL_{}", service.upper_snake()),
                    format!("http://127.0.0.1:{port}"),
                );
            }
        }
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
    ) -> Result<(), String> {
        let secrets = resolve_secrets(component)?;
        let fingerprint = fingerprint(component, services, &secrets);
        let already_done = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .get(key)
                .and_then(|b| b.units.get(&component.name))
                .is_some_and(|u| u.succeeded_fingerprint.as_deref() == Some(fingerprint.as_str()))
        };
        if already_done {
            emit(
                events,
                Some(&component.name),
                "unchanged; already succeeded",
            );
            return Ok(());
        }
        let working_dir = self.prepare_working_dir(key, spec, component)?;
        let log_path = self.log_path(key, &component.name);
        let launch = Launch {
            program: Program::Shell(component.run.clone()),
            working_dir: working_dir.clone(),
            env: self.component_env(key, spec, component, services, &secrets),
            log_path: log_path.clone(),
            run_as: None,
        };
        emit(
            events,
            Some(&component.name),
            format!("running job ({})", component.artifact),
        );
        let (mut child, identity) = process::spawn(&launch)
            .map_err(|e| format!("cannot start job `{}`: {e}", component.name))?;
        self.install_unit(key, component, &fingerprint, working_dir, |unit| {
            unit.run.process = Some(identity);
            unit.run.state = ComponentState::Starting;
        });
        self.persist();
        let timeout = Duration::from_secs(component.start_timeout_secs);
        let outcome = tokio::time::timeout(timeout, child.wait()).await;
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
        // Whatever the job left behind in its group goes with it.
        process::stop_group(identity, None, self.config.stop_grace).await;
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
        self.persist();
        match result {
            Ok(()) => {
                emit(events, Some(&component.name), "job succeeded");
                Ok(())
            }
            Err(message) => Err(with_log_tail(message, &log_path)),
        }
    }

    async fn converge_service(
        self: &Arc<Self>,
        key: &BiomeKey,
        spec: &BiomeSpec,
        component: &ComponentSpec,
        services: &[Name],
        events: &Events,
    ) -> Result<(), String> {
        let secrets = resolve_secrets(component)?;
        let fingerprint = fingerprint(component, services, &secrets);
        // Running the same thing already (or adoptable after a daemon restart)?
        let (unchanged, adoptable) = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let unit = biomes.get(key).and_then(|b| b.units.get(&component.name));
            match unit {
                Some(unit) if unit.fingerprint == fingerprint => {
                    let watched = unit
                        .run
                        .task
                        .as_ref()
                        .is_some_and(|t| !t.handle.is_finished());
                    let alive = unit.run.process.filter(|p| process::is_running(*p));
                    (watched, if watched { None } else { alive })
                }
                _ => (false, None),
            }
        };
        if !unchanged {
            // Extract before stopping the old version, so a bad artifact leaves it running.
            let working_dir = self.prepare_working_dir(key, spec, component)?;
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
                env: self.component_env(key, spec, component, services, &secrets),
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
        self.wait_ready(key, component, events).await
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
            match state {
                ComponentState::Healthy => {
                    emit(events, Some(&component.name), "healthy");
                    return Ok(());
                }
                ComponentState::Crashed | ComponentState::Unhealthy | ComponentState::Stopped => {
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
                _ => {}
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
            // A finished job keeps its outcome: it decides whether the job runs again.
            if !matches!(
                run.state,
                ComponentState::Succeeded | ComponentState::Failed
            ) {
                run.state = ComponentState::Stopped;
            }
            run.state_tx.send_replace(run.state);
        });
    }

    // ----- persistence and recovery -----------------------------------------------------------

    /// Writes the state file atomically. Failures are logged, not fatal: the processes run on.
    pub fn persist(&self) {
        let _guard = self.persist_lock.lock().expect("persist lock poisoned");
        let persisted = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            Persisted {
                biomes: biomes
                    .values()
                    .map(|biome| PersistedBiome {
                        spec: biome.spec.clone(),
                        ports: biome.ports.clone(),
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
        let path = self.state_file();
        let write = || -> io::Result<()> {
            fs::create_dir_all(self.runtime_dir())?;
            let temporary = path.with_extension("json.tmp");
            fs::write(&temporary, serde_json::to_vec_pretty(&persisted)?)?;
            fs::rename(&temporary, &path)
        };
        if let Err(error) = write() {
            tracing::error!(
                "cannot save supervisor state to {}: {error}",
                path.display()
            );
        }
    }

    /// Called once when the daemon starts: adopts surviving processes, stops the ones nobody
    /// recorded, then brings every biome back to its desired state in the background.
    pub async fn recover(self: &Arc<Self>) -> Result<(), String> {
        let persisted: Persisted = match fs::read(self.state_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "the supervisor state {} is corrupt ({e}); move it aside to start from scratch",
                    self.state_file().display()
                )
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Persisted::default(),
            Err(error) => {
                return Err(format!(
                    "cannot read {}: {error}",
                    self.state_file().display()
                ))
            }
        };
        let mut known_groups = BTreeSet::new();
        {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            for saved in persisted.biomes {
                let key = BiomeKey {
                    project: saved.spec.project.clone(),
                    biome: saved.spec.biome.clone(),
                };
                let mut units = BTreeMap::new();
                for (name, saved_unit) in saved.units {
                    let alive = saved_unit.process.filter(|p| process::is_running(*p));
                    // Only services are adopted; a job cut short by the crash is run again.
                    let adopt = alive.filter(|_| saved_unit.spec.kind == ComponentKind::Service);
                    if let Some(identity) = adopt {
                        known_groups.insert(identity.pid);
                    }
                    let state = match (saved_unit.spec.kind, adopt) {
                        (ComponentKind::Job, _)
                            if saved_unit.state == ComponentState::Succeeded =>
                        {
                            ComponentState::Succeeded
                        }
                        (_, Some(_)) => ComponentState::Starting,
                        _ => ComponentState::Stopped,
                    };
                    units.insert(
                        name,
                        Unit {
                            spec: saved_unit.spec,
                            fingerprint: saved_unit.fingerprint,
                            working_dir: saved_unit.working_dir,
                            succeeded_fingerprint: saved_unit.succeeded_fingerprint,
                            run: Running::new(state, adopt, saved_unit.restarts),
                        },
                    );
                }
                biomes.insert(
                    key,
                    Biome {
                        spec: saved.spec,
                        units,
                        ports: saved.ports,
                    },
                );
            }
        }
        self.restore_instances(persisted.instances, &mut known_groups);
        // Anything carrying our marker that is not an adopted group is an orphan: stop it.
        for pid in process::processes_with_env_marker(&self.marker) {
            let group = process::stat(pid)
                .map(|s| s.process_group as u32)
                .unwrap_or(pid);
            if known_groups.contains(&group) {
                continue;
            }
            tracing::info!("stopping orphaned process {pid} (group {group})");
            if let Some(start_ticks) = process::stat(group).map(|s| s.start_ticks) {
                process::stop_group(
                    ProcessIdentity {
                        pid: group,
                        start_ticks,
                    },
                    None,
                    self.config.stop_grace,
                )
                .await;
            } else {
                let _ = process::signal_group(group, nix::sys::signal::Signal::SIGKILL);
            }
        }
        // Instances first: biomes may need them (their database) to converge.
        self.resume_instances();
        self.persist();
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
        loop {
            let (mut child, identity) = match adopt.take() {
                Some(identity) => (None, identity),
                None => match process::spawn(&self.launch) {
                    Ok((child, identity)) => (Some(child), identity),
                    Err(error) => {
                        let message =
                            format!("cannot start `{}`: {error}", self.launch.program.display());
                        failures += 1;
                        self.set(|run| {
                            run.state = ComponentState::Crashed;
                            run.detail = Some(message.clone());
                        });
                        if self.wait_or_stop(backoff.delay(failures), &mut stop).await {
                            return self.stopped();
                        }
                        continue;
                    }
                },
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
            self.supervisor.persist();
            let started = Instant::now();
            match self
                .watch(identity, child.as_mut(), started, &mut stop)
                .await
            {
                Watched::StopRequested => {
                    process::stop_group_with(
                        identity,
                        child.as_mut(),
                        self.supervisor.config.stop_grace,
                        self.polite_signal,
                    )
                    .await;
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
                    failures = backoff.next_failures(failures, started.elapsed());
                    let delay = backoff.delay(failures);
                    tracing::info!("{} {how}; restarting in {delay:?}", self.slot);
                    let still_ours = self.set(|run| {
                        run.state = ComponentState::Crashed;
                        run.process = None;
                        run.restarts += 1;
                        run.detail = Some(format!("{how}; restarting in {}ms", delay.as_millis()));
                    });
                    if !still_ours {
                        return;
                    }
                    self.supervisor.persist();
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
        let mut ever_healthy = false;
        let mut consecutive_failures = 0u32;
        loop {
            let interval = if ever_healthy {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(100)
            };
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
            match probed {
                ProbeResult::Healthy => {
                    ever_healthy = true;
                    consecutive_failures = 0;
                    self.set(|run| {
                        run.state = ComponentState::Healthy;
                        run.detail = None;
                    });
                }
                ProbeResult::Unhealthy(why) => {
                    consecutive_failures += 1;
                    let timed_out = !ever_healthy && started.elapsed() >= self.start_timeout;
                    // A healthy service gets three chances before it is reported unhealthy.
                    if timed_out || (ever_healthy && consecutive_failures >= 3) {
                        self.set(|run| {
                            run.state = ComponentState::Unhealthy;
                            run.detail = Some(why.clone());
                        });
                    } else if !ever_healthy {
                        self.set(|run| run.detail = Some(why.clone()));
                    }
                }
            }
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
        self.supervisor.persist();
    }
}

/// Reads the component's secrets from their files, when it is about to be (re)started.
fn resolve_secrets(component: &ComponentSpec) -> Result<ResolvedSecrets, String> {
    secret_env::resolve(&component.secret_env)
        .map_err(|error| format!("cannot start `{}`: {error}", component.name))
}

fn check_spec(spec: &BiomeSpec) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for component in &spec.components {
        for dependency in &component.depends_on {
            if !seen.contains(dependency) {
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

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
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
