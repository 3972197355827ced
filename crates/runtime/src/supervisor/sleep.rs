//! Sleeping and waking biomes: an idle biome's processes stop and its models unload while its
//! desired state, ports, data and database stay; a request through the gateway (or `sandpit
//! wake`) brings it back as it was. Jobs that succeeded are not run again: their success is
//! part of the units a sleeping biome keeps.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sandpit_domain::Name;

use super::{emit, BiomeKey, Events, Supervisor};
use crate::protocol::{BiomeStatus, ModelsRegistration};

/// Requests through the gateway: how many are in flight and when the last one began or ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Activity {
    /// Monotonic: what idleness is measured from (an `up`, a wake, a request).
    pub(super) last: Instant,
    /// The same moment on the wall clock, for `status`; `None` until a request came.
    pub(super) last_request: Option<SystemTime>,
    pub(super) in_flight: u32,
    /// Its processes are being stopped on the way to sleep (`status` says `stopping`).
    pub(super) falling_asleep: bool,
}

impl Activity {
    pub(super) fn now() -> Activity {
        Activity {
            last: Instant::now(),
            last_request: None,
            in_flight: 0,
            falling_asleep: false,
        }
    }
}

/// Whether a biome should go to sleep now (pure): it has an idle timeout, is awake, is not being
/// removed, serves no request and has been idle at least that long.
pub(super) fn should_sleep(
    idle_timeout: Option<Duration>,
    asleep: bool,
    removing: bool,
    in_flight: u32,
    idle_for: Duration,
) -> bool {
    match idle_timeout {
        Some(timeout) => !asleep && !removing && in_flight == 0 && idle_for >= timeout,
        None => false,
    }
}

/// Held by the gateway for as long as one request to a biome lasts (its response body, or an
/// upgraded connection): the biome does not sleep meanwhile, and its end counts as activity.
pub struct RequestActivity {
    supervisor: Arc<Supervisor>,
    key: BiomeKey,
}

impl Drop for RequestActivity {
    fn drop(&mut self) {
        self.supervisor.touch(&self.key, -1);
    }
}

pub(super) fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Supervisor {
    /// Counts a request to the biome as begun (`delta` 1) or ended (-1); both are activity.
    fn touch(&self, key: &BiomeKey, delta: i32) {
        let mut biomes = self.biomes.lock().expect("biomes poisoned");
        if let Some(biome) = biomes.get_mut(key) {
            biome.activity.last = Instant::now();
            biome.activity.last_request = Some(SystemTime::now());
            biome.activity.in_flight = biome.activity.in_flight.saturating_add_signed(delta);
        }
    }

    /// A request to the biome begins; it ends when the answer is dropped.
    pub fn request_started(self: &Arc<Self>, key: &BiomeKey) -> RequestActivity {
        self.touch(key, 1);
        RequestActivity {
            supervisor: Arc::clone(self),
            key: key.clone(),
        }
    }

    /// Whether the biome sleeps now.
    pub fn is_asleep(&self, key: &BiomeKey) -> bool {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        biomes
            .get(key)
            .is_some_and(|biome| biome.sleeping_since.is_some())
    }

    /// Puts the biome to sleep: saved as sleeping first (so a daemon restarted meanwhile keeps it
    /// asleep), then every process stopped, dependants first, then its models unloaded.
    pub async fn sleep(
        self: &Arc<Self>,
        key: &BiomeKey,
        reason: &str,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        let lock = self.operation_lock(key);
        let _guard = lock.lock().await;
        self.sleep_locked(key, reason, events).await
    }

    async fn sleep_locked(
        self: &Arc<Self>,
        key: &BiomeKey,
        reason: &str,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        let (names, models) = {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            let Some(biome) = biomes.get_mut(key) else {
                return Err(unknown_biome(key));
            };
            if biome.removing {
                return Err(format!("biome `{}` is being removed", key.biome));
            }
            if biome.sleeping_since.is_some() {
                drop(biomes);
                return self.status(key).ok_or_else(|| unknown_biome(key));
            }
            biome.sleeping_since = Some(SystemTime::now());
            biome.activity.falling_asleep = true;
            let names: Vec<Name> = biome
                .spec
                .components
                .iter()
                .rev()
                .map(|c| c.name.clone())
                .collect();
            (names, biome.spec.models.clone())
        };
        if let Err(error) = self.persist() {
            if let Some(biome) = self.biomes.lock().expect("biomes poisoned").get_mut(key) {
                biome.sleeping_since = None;
                biome.activity.falling_asleep = false;
            }
            return Err(format!(
                "cannot record that biome `{}` sleeps: {error}; nothing was stopped\nhint: {}",
                key.biome,
                error.remedy()
            ));
        }
        tracing::info!(
            "biome {}/{} goes to sleep: {reason}",
            key.project,
            key.biome
        );
        for name in &names {
            super::mark(&self.log_path(key, name), format!("sleeping ({reason})"));
            emit(events, Some(name), "stopping (sleep)");
            self.stop_unit(key, name).await;
        }
        if let Some(biome) = self.biomes.lock().expect("biomes poisoned").get_mut(key) {
            biome.activity.falling_asleep = false;
        }
        if let Some(models) = models {
            match self.unload_models(&models).await {
                Ok(()) => emit(events, None, "unloaded its models"),
                // The models load again on the next request anyway; a missing endpoint is no
                // reason to keep processes running.
                Err(error) => {
                    tracing::warn!(
                        "biome {}/{}: its models were not unloaded: {error}",
                        key.project,
                        key.biome
                    );
                    emit(
                        events,
                        None,
                        format!("its models were not unloaded: {error}"),
                    );
                }
            }
        }
        self.persist_observed();
        self.status(key).ok_or_else(|| unknown_biome(key))
    }

    /// Wakes a sleeping biome and waits until its services are healthy; an awake one answers
    /// its status at once. Concurrent wakes of one biome queue on its operation lock, so it is
    /// woken once and every waiter gets the outcome.
    pub async fn wake(
        self: &Arc<Self>,
        key: &BiomeKey,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        if !self.is_asleep(key) {
            return self.status(key).ok_or_else(|| unknown_biome(key));
        }
        let lock = self.operation_lock(key);
        let _guard = lock.lock().await;
        self.wake_locked(key, events).await
    }

    /// [`Self::wake`] under the biome's operation lock.
    pub(super) async fn wake_locked(
        self: &Arc<Self>,
        key: &BiomeKey,
        events: &Events,
    ) -> Result<BiomeStatus, String> {
        let since = {
            let mut biomes = self.biomes.lock().expect("biomes poisoned");
            let Some(biome) = biomes.get_mut(key) else {
                return Err(unknown_biome(key));
            };
            let since = biome.sleeping_since.take();
            biome.activity = super::sleep::Activity {
                last_request: biome.activity.last_request,
                ..Activity::now()
            };
            since
        };
        let Some(since) = since else {
            return self.status(key).ok_or_else(|| unknown_biome(key));
        };
        if let Err(error) = self.persist() {
            if let Some(biome) = self.biomes.lock().expect("biomes poisoned").get_mut(key) {
                biome.sleeping_since = Some(since);
            }
            return Err(format!(
                "cannot record that biome `{}` wakes: {error}; it still sleeps\nhint: {}",
                key.biome,
                error.remedy()
            ));
        }
        tracing::info!("biome {}/{} wakes", key.project, key.biome);
        let started = Instant::now();
        // An overlay biome's lenders (its environment's base, when it opted in to sleeping)
        // must be awake for what it borrows to answer.
        let lenders: std::collections::BTreeSet<Name> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .get(key)
                .map(|b| b.spec.borrowed.values().cloned().collect())
                .unwrap_or_default()
        };
        for lender in lenders {
            let lender = BiomeKey {
                project: key.project.clone(),
                biome: lender,
            };
            if lender != *key {
                Box::pin(self.wake(&lender, events)).await?;
            }
        }
        let ready_wait = self.converge(key, events).await?;
        let mut status = self.status(key).ok_or_else(|| unknown_biome(key))?;
        status.ready_wait_ms = Some(ready_wait.as_millis().try_into().unwrap_or(u64::MAX));
        tracing::info!(
            "biome {}/{} is awake after {} ms",
            key.project,
            key.biome,
            started.elapsed().as_millis()
        );
        Ok(status)
    }

    /// One pass of the idle check, run periodically by the daemon: every biome idle for its
    /// timeout goes to sleep. A biome busy with another operation is left for the next pass.
    pub async fn sleep_idle_biomes(self: &Arc<Self>) {
        let now = Instant::now();
        let idle: Vec<(BiomeKey, u64)> = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            biomes
                .iter()
                .filter_map(|(key, biome)| {
                    let timeout = biome.spec.idle_timeout_secs.map(Duration::from_secs);
                    should_sleep(
                        timeout,
                        biome.sleeping_since.is_some(),
                        biome.removing,
                        biome.activity.in_flight,
                        now.saturating_duration_since(biome.activity.last),
                    )
                    .then(|| (key.clone(), biome.spec.idle_timeout_secs.unwrap_or(0)))
                })
                .collect()
        };
        for (key, timeout) in idle {
            let lock = self.operation_lock(&key);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            // Looked at again under the lock: a request may have begun meanwhile.
            let still_idle = {
                let biomes = self.biomes.lock().expect("biomes poisoned");
                biomes.get(&key).is_some_and(|biome| {
                    should_sleep(
                        biome.spec.idle_timeout_secs.map(Duration::from_secs),
                        biome.sleeping_since.is_some(),
                        biome.removing,
                        biome.activity.in_flight,
                        Instant::now().saturating_duration_since(biome.activity.last),
                    )
                })
            };
            if !still_idle {
                continue;
            }
            let reason = format!(
                "no request through the gateway for {}",
                sandpit_domain::Span::from_secs(timeout)
            );
            if let Err(error) = self.sleep_locked(&key, &reason, &None).await {
                tracing::warn!(
                    "biome {}/{} could not sleep: {error}",
                    key.project,
                    key.biome
                );
            }
        }
    }

    /// Asks the model endpoint to unload what the registration loaded as its own.
    async fn unload_models(&self, models: &ModelsRegistration) -> Result<(), String> {
        let token = std::fs::read_to_string(&models.token_file)
            .map_err(|e| format!("cannot read {}: {e}", models.token_file.display()))?;
        let url = format!(
            "http://127.0.0.1:{}/sandpit/biomes/{}/unload",
            models.port, models.registration
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .post(&url)
            .bearer_auth(token.trim())
            .send()
            .await
            .map_err(|e| format!("the model endpoint did not answer: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the model endpoint answered {}", response.status()))
        }
    }
}

fn unknown_biome(key: &BiomeKey) -> String {
    format!(
        "there is no biome `{}` in project `{}`; `sandpit ls` lists them",
        key.biome, key.project
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_awake_idle_biome_with_a_timeout_and_no_request_in_flight_sleeps() {
        let minute = Some(Duration::from_secs(60));
        let long = Duration::from_secs(61);
        let short = Duration::from_secs(59);
        for (timeout, asleep, removing, in_flight, idle_for, sleeps) in [
            (minute, false, false, 0, long, true),
            (minute, false, false, 0, Duration::from_secs(60), true),
            (minute, false, false, 0, short, false),
            (None, false, false, 0, long, false),
            (minute, true, false, 0, long, false),
            (minute, false, true, 0, long, false),
            (minute, false, false, 1, long, false),
        ] {
            assert_eq!(
                should_sleep(timeout, asleep, removing, in_flight, idle_for),
                sleeps,
                "{timeout:?} asleep={asleep} removing={removing} in_flight={in_flight} idle={idle_for:?}"
            );
        }
    }
}
