//! Environment-level processes the daemon keeps running beside the biomes: today the embedded
//! PostgreSQL instance each environment's biomes share.
//!
//! They are watched by the same [`ServiceWatcher`] as services (crash restarts with backoff,
//! adoption after a daemon restart), with a TCP readiness check instead of an HTTP one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sandpit_domain::ComponentState;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    emit, with_log_tail, Events, Readiness, Running, ServiceWatcher, Slot, Supervisor, UnitTask,
};
use crate::process::{self, Launch, ProcessIdentity};
use crate::protocol::{InstanceKey, InstanceSpec, InstanceStatus};

pub(super) struct Instance {
    pub(super) spec: InstanceSpec,
    pub(super) run: Running,
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
        let (watched, same_spec, adoptable) = {
            let instances = self.instances.lock().expect("instances poisoned");
            match instances.get(&key) {
                Some(instance) => {
                    let watched = instance
                        .run
                        .task
                        .as_ref()
                        .is_some_and(|t| !t.handle.is_finished());
                    let alive = instance.run.process.filter(|p| process::is_running(*p));
                    (watched, instance.spec == spec, alive)
                }
                None => (false, false, None),
            }
        };
        if !(watched && same_spec) {
            let adopt = if same_spec { adoptable } else { None };
            if !same_spec {
                self.stop_slot(&slot, polite_signal(&spec)).await;
            }
            emit(
                events,
                None,
                format!("starting {} for environment `{}`", key.name, key.env),
            );
            self.start_instance_watcher(spec.clone(), adopt);
            self.persist();
        }
        self.wait_instance_ready(&spec).await?;
        self.instance_status(&key)
            .ok_or_else(|| format!("{} vanished while starting", key.name))
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
        let watcher = ServiceWatcher {
            supervisor: Arc::clone(self),
            slot: Slot::Instance(key.clone()),
            generation,
            launch: Launch {
                program: spec.program.clone(),
                working_dir: spec.working_dir.clone(),
                env: spec.env.clone(),
                log_path: spec.log.clone(),
                run_as: spec.run_as,
            },
            readiness: Readiness::Tcp(spec.port),
            start_timeout: Duration::from_secs(spec.start_timeout_secs),
            polite_signal: polite_signal(&spec),
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
            match state {
                ComponentState::Healthy => return Ok(()),
                // A crash is waited through: the watcher restarts it, and a database that was
                // killed a moment ago is usually back well within the timeout.
                ComponentState::Stopped => {
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
                _ => {}
            }
            match tokio::time::timeout_at(deadline, state_rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(format!("{} was replaced while starting", spec.key.name)),
                Err(_) => {
                    return Err(with_log_tail(
                        format!(
                        "{} for environment `{}` did not accept connections on port {} within {}s",
                        spec.key.name, spec.key.env, spec.port, spec.start_timeout_secs
                    ),
                        &spec.log,
                    ))
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

    /// Stops the instance and forgets it.
    pub async fn stop_instance(&self, key: &InstanceKey) {
        let signal = {
            let instances = self.instances.lock().expect("instances poisoned");
            match instances.get(key) {
                Some(instance) => polite_signal(&instance.spec),
                None => return,
            }
        };
        self.stop_slot(&Slot::Instance(key.clone()), signal).await;
        self.instances
            .lock()
            .expect("instances poisoned")
            .remove(key);
        self.persist();
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
            let alive = saved.process.filter(|p| process::is_running(*p));
            if let Some(identity) = alive {
                known_groups.insert(identity.pid);
            }
            let state = if alive.is_some() {
                ComponentState::Starting
            } else {
                ComponentState::Stopped
            };
            instances.insert(
                saved.spec.key.clone(),
                Instance {
                    spec: saved.spec,
                    run: Running::new(state, alive, saved.restarts),
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
