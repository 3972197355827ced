//! Environment-level processes the daemon keeps running beside the biomes: today the embedded
//! PostgreSQL instance each environment's biomes share.
//!
//! They are watched by the same [`ServiceWatcher`] as services (crash restarts with backoff,
//! adoption after a daemon restart, the port checked before every start and behind every passing
//! check), with a TCP readiness check instead of an HTTP one. They carry the supervisor's marker
//! and their polite stop signal in their environment, so a daemon that lost its state file still
//! finds them and stops them properly (PostgreSQL with SIGINT) before starting new ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sandpit_domain::{ComponentState, Name};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::health_verdict::{self, ReadyWait};
use super::reconcile::{self, Convergence, Held};
use super::recovery;
use super::{
    emit, with_log_tail, Events, Readiness, Running, ServiceWatcher, Slot, Supervisor, UnitTask,
};
use crate::ports;
use crate::process::{self, Launch, ProcessIdentity};
use crate::protocol::{InstanceKey, InstanceSpec, InstanceStatus};

pub(super) struct Instance {
    pub(super) spec: InstanceSpec,
    pub(super) run: Running,
    /// Being stopped for good: left out of the state file before it is stopped.
    pub(super) removing: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PersistedInstance {
    spec: InstanceSpec,
    process: Option<ProcessIdentity>,
    restarts: u32,
}

fn polite_signal(spec: &InstanceSpec) -> nix::sys::signal::Signal {
    spec.stop_signal
        .parse()
        .unwrap_or(nix::sys::signal::Signal::SIGTERM)
}

impl Supervisor {
    /// Starts the instance unless it already runs as specified; waits until it accepts
    /// connections. A changed specification restarts it.
    pub async fn ensure_instance(
        self: &Arc<Self>,
        spec: InstanceSpec,
        events: &Events,
    ) -> Result<InstanceStatus, String> {
        let _guard = self.instance_lock.lock().await;
        let key = spec.key.clone();
        let slot = Slot::Instance(key.clone());
        let action = {
            let instances = self.instances.lock().expect("instances poisoned");
            reconcile::convergence(instances.get(&key).map(|instance| Held {
                unchanged: instance.spec == spec,
                watched: instance.run.is_watched(),
                alive: instance.run.process.filter(|p| process::is_running(*p)),
            }))
        };
        if action != Convergence::Keep {
            let adopt = match action {
                Convergence::Adopt(identity) => Some(identity),
                _ => None,
            };
            // Desired state first: the instance is recorded before it is started or replaced.
            let previous = self.record_instance(&spec);
            if let Err(error) = self.persist() {
                self.restore_instance_record(&key, previous);
                return Err(format!(
                    "cannot save the desired state of {} for environment `{}`: {error}; it was not started\nhint: {}, then try again",
                    key.name,
                    key.env,
                    error.remedy()
                ));
            }
            if action == Convergence::Replace {
                self.stop_slot(&slot, polite_signal(&spec)).await;
            }
            emit(
                events,
                None,
                format!("starting {} for environment `{}`", key.name, key.env),
            );
            self.start_instance_watcher(spec.clone(), adopt);
            self.persist_observed();
        }
        self.wait_instance_ready(&spec).await?;
        self.instance_status(&key)
            .ok_or_else(|| format!("{} vanished while starting", key.name))
    }

    /// Makes `spec` the instance's desired specification (the running process, if any, is left
    /// alone); returns the previous one (`None`: there was no record) to undo it with.
    fn record_instance(&self, spec: &InstanceSpec) -> Option<InstanceSpec> {
        let mut instances = self.instances.lock().expect("instances poisoned");
        match instances.get_mut(&spec.key) {
            Some(instance) => {
                instance.removing = false;
                Some(std::mem::replace(&mut instance.spec, spec.clone()))
            }
            None => {
                instances.insert(
                    spec.key.clone(),
                    Instance {
                        spec: spec.clone(),
                        run: Running::new(ComponentState::Stopped, None, 0),
                        removing: false,
                    },
                );
                None
            }
        }
    }

    fn restore_instance_record(&self, key: &InstanceKey, previous: Option<InstanceSpec>) {
        let mut instances = self.instances.lock().expect("instances poisoned");
        match previous {
            Some(spec) => {
                if let Some(instance) = instances.get_mut(key) {
                    instance.spec = spec;
                }
            }
            None => {
                instances.remove(key);
            }
        }
    }

    fn start_instance_watcher(
        self: &Arc<Self>,
        spec: InstanceSpec,
        adopt: Option<ProcessIdentity>,
    ) {
        let key = spec.key.clone();
        let generation = {
            let mut instances = self.instances.lock().expect("instances poisoned");
            let instance = instances.entry(key.clone()).or_insert_with(|| Instance {
                spec: spec.clone(),
                run: Running::new(ComponentState::Stopped, None, 0),
                removing: false,
            });
            instance.spec = spec.clone();
            instance.run.generation += 1;
            instance.run.state = ComponentState::Starting;
            instance.run.detail = None;
            instance.run.process = adopt;
            instance.run.state_tx.send_replace(instance.run.state);
            instance.run.generation
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut env = spec.env.clone();
        let (marker_name, marker_value) = self.marker.split_once('=').expect("marker has a =");
        env.retain(|(name, _)| name != marker_name && name != ports::STOP_SIGNAL_VARIABLE);
        env.push((marker_name.to_owned(), marker_value.to_owned()));
        env.push((
            ports::STOP_SIGNAL_VARIABLE.to_owned(),
            polite_signal(&spec).as_str().to_owned(),
        ));
        let own_command = match &spec.program {
            process::Program::Exec { path, args } => Some(
                std::iter::once(path.display().to_string())
                    .chain(args.iter().cloned())
                    .collect(),
            ),
            process::Program::Shell(_) => None,
        };
        let watcher = ServiceWatcher {
            supervisor: Arc::clone(self),
            slot: Slot::Instance(key.clone()),
            generation,
            launch: Launch {
                program: spec.program.clone(),
                working_dir: spec.working_dir.clone(),
                env,
                log_path: spec.log.clone(),
                run_as: spec.run_as,
            },
            readiness: Readiness::Tcp(spec.port),
            start_timeout: Duration::from_secs(spec.start_timeout_secs),
            polite_signal: polite_signal(&spec),
            port: spec.port,
            artifact: None,
            own_command,
        };
        let handle = tokio::spawn(watcher.run(adopt, stop_rx));
        let mut instances = self.instances.lock().expect("instances poisoned");
        if let Some(instance) = instances.get_mut(&key) {
            instance.run.task = Some(UnitTask {
                stop: stop_tx,
                handle,
            });
        }
    }

    /// Waits until every instance of `project`'s environment `env` accepts connections (or has
    /// given up), so that a biome recovered after a daemon restart starts its components once
    /// their database answers, as an `up` does. An instance that does not come up is logged;
    /// the biome's components then report it themselves.
    pub(super) async fn wait_environment_instances(&self, project: &Name, env: &Name) {
        let specs: Vec<InstanceSpec> = self
            .instances
            .lock()
            .expect("instances poisoned")
            .values()
            .filter(|i| &i.spec.key.project == project && &i.spec.key.env == env)
            .map(|i| i.spec.clone())
            .collect();
        for spec in specs {
            if let Err(error) = self.wait_instance_ready(&spec).await {
                tracing::warn!("{error}");
            }
        }
    }

    async fn wait_instance_ready(&self, spec: &InstanceSpec) -> Result<(), String> {
        let Some(mut state_rx) = self
            .instances
            .lock()
            .expect("instances poisoned")
            .get(&spec.key)
            .map(|i| i.run.state_tx.subscribe())
        else {
            return Err(format!("{} is not running", spec.key.name));
        };
        let deadline = Instant::now() + Duration::from_secs(spec.start_timeout_secs);
        loop {
            let state = *state_rx.borrow_and_update();
            // A crash is waited through: the watcher restarts it.
            match health_verdict::instance_ready_wait(state) {
                ReadyWait::Ready => return Ok(()),
                ReadyWait::GaveUp => {
                    let detail = self
                        .instance_status(&spec.key)
                        .and_then(|s| s.detail)
                        .unwrap_or_default();
                    return Err(with_log_tail(
                        format!(
                            "{} for environment `{}` did not start: {detail}",
                            spec.key.name, spec.key.env
                        ),
                        &spec.log,
                    ));
                }
                ReadyWait::Waiting => {}
            }
            match tokio::time::timeout_at(deadline, state_rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(format!("{} was replaced while starting", spec.key.name)),
                Err(_) => {
                    let detail = self
                        .instance_status(&spec.key)
                        .and_then(|s| s.detail)
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    return Err(with_log_tail(
                        format!(
                            "{} for environment `{}` did not accept connections on port {} within {}s{detail}",
                            spec.key.name, spec.key.env, spec.port, spec.start_timeout_secs
                        ),
                        &spec.log,
                    ));
                }
            }
        }
    }

    pub fn instance_status(&self, key: &InstanceKey) -> Option<InstanceStatus> {
        let instances = self.instances.lock().expect("instances poisoned");
        instances.get(key).map(|instance| InstanceStatus {
            key: key.clone(),
            state: instance.run.state,
            pid: instance.run.process.map(|p| p.pid),
            port: instance.spec.port,
            restarts: instance.run.restarts,
            log: instance.spec.log.clone(),
            detail: instance.run.detail.clone(),
        })
    }

    /// Every instance, for `sandpit daemon status`.
    pub fn instances(&self) -> Vec<InstanceStatus> {
        let keys: Vec<InstanceKey> = self
            .instances
            .lock()
            .expect("instances poisoned")
            .keys()
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|key| self.instance_status(key))
            .collect()
    }

    /// Stops the instance and forgets it. It leaves the state file first: a daemon killed while
    /// stopping it finds the process by its marker and stops it, rather than starting it again.
    pub async fn stop_instance(&self, key: &InstanceKey) -> Result<(), String> {
        let signal = {
            let mut instances = self.instances.lock().expect("instances poisoned");
            match instances.get_mut(key) {
                Some(instance) => {
                    instance.removing = true;
                    polite_signal(&instance.spec)
                }
                None => return Ok(()),
            }
        };
        if let Err(error) = self.persist() {
            if let Some(instance) = self
                .instances
                .lock()
                .expect("instances poisoned")
                .get_mut(key)
            {
                instance.removing = false;
            }
            return Err(format!(
                "cannot record that {} of environment `{}` is being stopped: {error}; it still runs\nhint: {}, then try again",
                key.name,
                key.env,
                error.remedy()
            ));
        }
        self.stop_slot(&Slot::Instance(key.clone()), signal).await;
        self.instances
            .lock()
            .expect("instances poisoned")
            .remove(key);
        self.persist_observed();
        Ok(())
    }

    /// Stops every instance, keeping them as desired state (daemon shutdown).
    pub(super) async fn stop_all_instances(&self) {
        let keys: Vec<(InstanceKey, nix::sys::signal::Signal)> = {
            let instances = self.instances.lock().expect("instances poisoned");
            instances
                .iter()
                .map(|(k, i)| (k.clone(), polite_signal(&i.spec)))
                .collect()
        };
        for (key, signal) in keys {
            self.stop_slot(&Slot::Instance(key), signal).await;
        }
    }

    pub(super) fn persisted_instances(&self) -> Vec<PersistedInstance> {
        let instances = self.instances.lock().expect("instances poisoned");
        instances
            .values()
            .filter(|i| !i.removing)
            .map(|i| PersistedInstance {
                spec: i.spec.clone(),
                process: i.run.process,
                restarts: i.run.restarts,
            })
            .collect()
    }

    /// Loads saved instances; the groups of those still running are added to `known_groups` so
    /// the orphan sweep leaves them alone.
    pub(super) fn restore_instances(
        &self,
        saved: Vec<PersistedInstance>,
        known_groups: &mut BTreeSet<u32>,
    ) {
        let mut instances = self.instances.lock().expect("instances poisoned");
        for saved in saved {
            let recovered =
                recovery::recover_instance(saved.process.filter(|p| process::is_running(*p)));
            if let Some(identity) = recovered.process() {
                known_groups.insert(identity.pid);
            }
            instances.insert(
                saved.spec.key.clone(),
                Instance {
                    spec: saved.spec,
                    run: Running::new(recovered.state(), recovered.process(), saved.restarts),
                    removing: false,
                },
            );
        }
    }

    /// Starts watchers for every restored instance (adopting survivors).
    pub(super) fn resume_instances(self: &Arc<Self>) {
        let saved: Vec<(InstanceSpec, Option<ProcessIdentity>)> = {
            let instances = self.instances.lock().expect("instances poisoned");
            instances
                .values()
                .map(|i| (i.spec.clone(), i.run.process))
                .collect()
        };
        for (spec, adopt) in saved {
            self.start_instance_watcher(spec, adopt);
        }
    }
}
