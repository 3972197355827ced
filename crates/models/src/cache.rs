//! Loaded models, keyed by artifact digest (one load however many biomes use a digest), kept
//! under a memory budget and a maximum count by evicting the least recently used.
//!
//! Concurrent first requests for one digest share one load (single flight); the load runs on a
//! blocking thread, which also publishes the result and wakes the waiters, and no lock is held
//! across it, so other models keep answering. A failed load is remembered with its time and
//! retried by the first request after `retry_after`.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::engine::{Engine, LoadedModel};
use crate::error::ModelError;
use crate::load::{load_model, LoadPhases};
use crate::metrics::Metrics;
use crate::registry::ModelRef;

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// The budget of the cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Memory the loaded models may be charged in total (see [`LoadedModel::memory_bytes`]).
    pub max_memory_bytes: u64,
    /// How many models may be loaded at once.
    pub max_models: usize,
    /// How long a failed load is reported before the next request tries again.
    pub retry_after: Duration,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            max_models: 64,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// What the cache knows about a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    Loaded,
    Loading,
    /// The last load failed (the message says why); retried after the backoff.
    Failed(String),
    /// Not loaded (never, or unloaded / evicted).
    Unloaded,
}

enum Slot {
    Loading {
        generation: u64,
        done: watch::Receiver<()>,
    },
    Loaded {
        model: Arc<dyn LoadedModel>,
        last_used: u64,
    },
    Failed {
        error: ModelError,
        at: Instant,
    },
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    clock: u64,
    generation: u64,
}

impl State {
    fn loaded(&self) -> impl Iterator<Item = (&String, &Arc<dyn LoadedModel>, u64)> {
        self.slots.iter().filter_map(|(digest, slot)| match slot {
            Slot::Loaded { model, last_used } => Some((digest, model, *last_used)),
            _ => None,
        })
    }

    fn usage(&self) -> (usize, u64) {
        self.loaded().fold((0, 0), |(n, bytes), (_, model, _)| {
            (n + 1, bytes + model.memory_bytes())
        })
    }
}

/// The model cache. Cheap to share: hold it in an `Arc`.
pub struct ModelCache {
    engine: Arc<dyn Engine>,
    config: CacheConfig,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ModelCache {
    pub fn new(
        engine: Arc<dyn Engine>,
        config: CacheConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<ModelCache> {
        Arc::new(ModelCache {
            engine,
            config,
            metrics,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The loaded model for `model_ref`, loading it first if needed. `model` names it in
    /// metrics and messages.
    pub async fn get(
        self: &Arc<Self>,
        model: &str,
        model_ref: &ModelRef,
    ) -> Result<Arc<dyn LoadedModel>, ModelError> {
        let mut waited = false;
        loop {
            let mut done = {
                let mut state = self.lock();
                state.clock += 1;
                let now = state.clock;
                match state.slots.get_mut(&model_ref.digest) {
                    Some(Slot::Loaded { model, last_used }) => {
                        *last_used = now;
                        if !waited {
                            self.metrics.hit();
                        }
                        return Ok(Arc::clone(model));
                    }
                    Some(Slot::Loading { done, .. }) => done.clone(),
                    Some(Slot::Failed { error, at }) if at.elapsed() < self.config.retry_after => {
                        return Err(error.clone());
                    }
                    _ => self.start_load(&mut state, model, model_ref),
                }
            };
            // The sender is dropped when the load has finished and its result is in the map.
            let _ = done.changed().await;
            waited = true;
        }
    }

    fn start_load(
        self: &Arc<Self>,
        state: &mut State,
        model: &str,
        model_ref: &ModelRef,
    ) -> watch::Receiver<()> {
        state.generation += 1;
        let generation = state.generation;
        let (done_tx, done) = watch::channel(());
        state.slots.insert(
            model_ref.digest.clone(),
            Slot::Loading {
                generation,
                done: done.clone(),
            },
        );
        let cache = Arc::clone(self);
        let model = model.to_string();
        let model_ref = model_ref.clone();
        let started = Instant::now();
        // The blocking thread that loads also publishes, and the waiters are woken from it: no
        // hop through an async task between the session being ready and the first inference.
        tokio::task::spawn_blocking(move || {
            let limit = cache.config.max_memory_bytes;
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                load_model(cache.engine.as_ref(), &model_ref, limit)
            }))
            .unwrap_or_else(|panic| Err(format!("the load panicked: {}", panic_message(&*panic))));
            let (result, buffers) = match outcome {
                Ok(loaded) => (Ok((loaded.model, loaded.phases)), Some(loaded.buffers)),
                Err(error) => (Err(error), None),
            };
            cache.finish_load(generation, &model, &model_ref.digest, result, started);
            drop(done_tx);
            // Freed once the first request is on its way (see `Loaded::buffers`).
            drop(buffers);
        });
        done
    }

    fn finish_load(
        &self,
        generation: u64,
        model: &str,
        digest: &str,
        result: Result<(Box<dyn LoadedModel>, LoadPhases), String>,
        started: Instant,
    ) {
        let mut state = self.lock();
        match state.slots.get(digest) {
            Some(Slot::Loading { generation: g, .. }) if *g == generation => {}
            _ => return, // unloaded while loading: drop the result
        }
        let outcome = result.map_err(|reason| ModelError::LoadFailed {
            model: model.to_string(),
            reason,
        });
        let slot = match outcome {
            Err(error) => {
                tracing::warn!(model, digest, "{error}");
                self.metrics.load_failed(model);
                Slot::Failed {
                    error,
                    at: Instant::now(),
                }
            }
            Ok((loaded, phases)) => {
                let needed = loaded.memory_bytes();
                if needed > self.config.max_memory_bytes || self.config.max_models == 0 {
                    let error = ModelError::InsufficientMemory {
                        model: model.to_string(),
                        needed,
                        budget: self.config.max_memory_bytes,
                        max_models: self.config.max_models,
                    };
                    tracing::warn!(model, digest, "{error}");
                    Slot::Failed {
                        error,
                        at: Instant::now(),
                    }
                } else {
                    self.make_room(&mut state, needed);
                    self.metrics
                        .load_succeeded(model, started.elapsed(), &phases);
                    tracing::info!(
                        model,
                        digest,
                        seconds = started.elapsed().as_secs_f64(),
                        read = phases.read.as_secs_f64(),
                        verify = phases.verify.as_secs_f64(),
                        extract = phases.extract.as_secs_f64(),
                        session = phases.session.as_secs_f64(),
                        "model loaded"
                    );
                    state.clock += 1;
                    Slot::Loaded {
                        model: Arc::from(loaded),
                        last_used: state.clock,
                    }
                }
            }
        };
        state.slots.insert(digest.to_string(), slot);
        self.publish(&state);
    }

    /// Evicts least recently used models until one more of `needed` bytes fits.
    fn make_room(&self, state: &mut State, needed: u64) {
        loop {
            let (count, bytes) = state.usage();
            if count < self.config.max_models && bytes + needed <= self.config.max_memory_bytes {
                return;
            }
            let Some(victim) = state
                .loaded()
                .min_by_key(|(_, _, last_used)| *last_used)
                .map(|(digest, _, _)| digest.clone())
            else {
                return;
            };
            state.slots.remove(&victim);
            self.metrics.evicted();
            tracing::info!(digest = victim, "model evicted (least recently used)");
        }
    }

    fn publish(&self, state: &State) {
        let (count, bytes) = state.usage();
        self.metrics.set_loaded(count, bytes);
    }

    /// What the cache knows about `digest`.
    pub fn state(&self, digest: &str) -> LoadState {
        match self.lock().slots.get(digest) {
            Some(Slot::Loaded { .. }) => LoadState::Loaded,
            Some(Slot::Loading { .. }) => LoadState::Loading,
            Some(Slot::Failed { error, .. }) => LoadState::Failed(error.to_string()),
            None => LoadState::Unloaded,
        }
    }

    /// The loaded model for `digest`, without loading it or counting a use.
    pub fn peek(&self, digest: &str) -> Option<Arc<dyn LoadedModel>> {
        match self.lock().slots.get(digest) {
            Some(Slot::Loaded { model, .. }) => Some(Arc::clone(model)),
            _ => None,
        }
    }

    /// Forgets `digest` (loaded, loading or failed); returns whether it was loaded. Requests
    /// already running on the model finish on it.
    pub fn unload(&self, digest: &str) -> bool {
        let mut state = self.lock();
        let was_loaded = matches!(state.slots.remove(digest), Some(Slot::Loaded { .. }));
        self.publish(&state);
        was_loaded
    }

    /// The memory charged for each loaded digest.
    pub fn loaded_sizes(&self) -> std::collections::BTreeMap<String, u64> {
        self.lock()
            .loaded()
            .map(|(digest, model, _)| (digest.clone(), model.memory_bytes()))
            .collect()
    }

    /// (loaded models, memory charged for them).
    pub fn usage(&self) -> (usize, u64) {
        self.lock().usage()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// An engine whose loads panic, as a bug in an engine binding would.
    struct PanickingEngine;

    impl Engine for PanickingEngine {
        fn load(&self, _onnx: &[u8]) -> Result<Box<dyn LoadedModel>, ModelError> {
            panic!("the engine fell over");
        }
    }

    #[tokio::test]
    async fn a_load_that_panics_fails_with_the_panics_message_and_wakes_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, b"onnx bytes").unwrap();
        let model_ref = ModelRef {
            artifact: "model.onnx".to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(b"onnx bytes"))),
            path,
            file: "model.onnx".to_owned(),
        };
        let cache = ModelCache::new(
            Arc::new(PanickingEngine),
            CacheConfig::default(),
            Arc::new(Metrics::default()),
        );
        let (first, second) = tokio::join!(cache.get("m", &model_ref), cache.get("m", &model_ref));
        for result in [first, second] {
            let error = result.err().expect("the load failed").to_string();
            assert!(
                error.contains("the load panicked: the engine fell over"),
                "{error}"
            );
        }
        assert!(matches!(
            cache.state(&model_ref.digest),
            LoadState::Failed(_)
        ));
    }
}
