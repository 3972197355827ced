//! Work on numbered items on several threads, consumed strictly in item order on the calling
//! thread, with at most `window` items claimed and waiting (plus the one being consumed) — so
//! memory stays bounded and what the consumer sees never depends on the number of workers or
//! on scheduling.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Time spent by each side, for the benchmark's phase split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineTimes {
    /// Summed over workers: time inside `work`.
    pub working: Duration,
    /// Time inside `consume` on the calling thread.
    pub consuming: Duration,
}

struct State<T, E> {
    next_claim: usize,
    next_consume: usize,
    finished: BTreeMap<usize, Result<T, E>>,
    working: Duration,
}

struct Shared<T, E> {
    state: Mutex<State<T, E>>,
    changed: Condvar,
    /// Set once an error decides the outcome: workers claim no more items.
    stop_claiming: AtomicBool,
    /// Set once the consumer has left: nothing more will be consumed, so a long `work` may give
    /// up. Not set by a worker's error, so the items before it still finish normally and the
    /// consumer sees the first error in index order, not a give-up of an earlier item.
    abandoned: AtomicBool,
}

impl<T, E> Shared<T, E> {
    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        // A panicking worker propagates through the scope; the state itself stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<T, E>>) -> MutexGuard<'a, State<T, E>> {
        self.changed
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn halt(&self) {
        self.stop_claiming.store(true, Ordering::SeqCst);
        self.abandoned.store(true, Ordering::SeqCst);
        let _guard = self.lock();
        self.changed.notify_all();
    }
}

/// Stops the workers however the consumer leaves (return, error or panic).
struct HaltOnDrop<'a, T, E>(&'a Shared<T, E>);

impl<T, E> Drop for HaltOnDrop<'_, T, E> {
    fn drop(&mut self) {
        self.0.halt();
    }
}

/// Runs `work(state, index, abandoned)` for every index in `0..count` on `workers` threads (each
/// with its own `state` from `start_worker`, reused across its items) and hands
/// each result to `consume(index, value)` in index order. The first error in index order — from
/// `work` or from `consume` — is returned; items after it are not started. `abandoned` turns
/// true once the consumer has left, so a long `work` can give up early (what it returns then is
/// discarded).
pub(crate) fn run_in_order<S, T, E, M, W, C>(
    count: usize,
    workers: usize,
    window: usize,
    start_worker: M,
    work: W,
    mut consume: C,
) -> Result<PipelineTimes, E>
where
    T: Send,
    E: Send,
    M: Fn() -> S + Sync,
    W: Fn(&mut S, usize, &AtomicBool) -> Result<T, E> + Sync,
    C: FnMut(usize, T) -> Result<(), E>,
{
    let workers = workers.clamp(1, count.max(1));
    let window = window.max(1);
    let shared = Shared {
        state: Mutex::new(State {
            next_claim: 0,
            next_consume: 0,
            finished: BTreeMap::new(),
            working: Duration::ZERO,
        }),
        changed: Condvar::new(),
        stop_claiming: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| work_loop(&shared, count, window, start_worker(), &work));
        }
        let _halt = HaltOnDrop(&shared);
        let mut consuming = Duration::ZERO;
        for index in 0..count {
            let result = {
                let mut state = shared.lock();
                loop {
                    if let Some(result) = state.finished.remove(&index) {
                        state.next_consume = index + 1;
                        shared.changed.notify_all();
                        break result;
                    }
                    state = shared.wait(state);
                }
            };
            let value = result?;
            let started = Instant::now();
            consume(index, value)?;
            consuming += started.elapsed();
        }
        drop(_halt);
        Ok(PipelineTimes {
            working: shared.lock().working,
            consuming,
        })
    })
}

fn work_loop<S, T, E, W>(
    shared: &Shared<T, E>,
    count: usize,
    window: usize,
    mut worker_state: S,
    work: &W,
) where
    W: Fn(&mut S, usize, &AtomicBool) -> Result<T, E>,
{
    loop {
        let index = {
            let mut state = shared.lock();
            loop {
                if shared.stop_claiming.load(Ordering::SeqCst) || state.next_claim >= count {
                    return;
                }
                if state.next_claim < state.next_consume + window {
                    state.next_claim += 1;
                    break state.next_claim - 1;
                }
                state = shared.wait(state);
            }
        };
        let started = Instant::now();
        let result = work(&mut worker_state, index, &shared.abandoned);
        let elapsed = started.elapsed();
        let failed = result.is_err();
        let mut state = shared.lock();
        state.working += elapsed;
        state.finished.insert(index, result);
        if failed {
            // Every index below this one is already claimed, so the consumer still reaches the
            // first error in index order.
            shared.stop_claiming.store(true, Ordering::SeqCst);
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn results_arrive_in_index_order_whatever_the_worker_count() {
        for workers in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            run_in_order(
                50,
                workers,
                4,
                || (),
                |(), index, _| {
                    // Uneven work so that later items often finish first.
                    std::thread::sleep(Duration::from_micros(((index * 7919) % 13) as u64 * 50));
                    Ok::<_, ()>(index * 2)
                },
                |index, value| {
                    seen.push((index, value));
                    Ok(())
                },
            )
            .unwrap();
            let want: Vec<_> = (0..50).map(|index| (index, index * 2)).collect();
            assert_eq!(seen, want, "{workers} workers");
        }
    }

    #[test]
    fn no_more_than_the_window_is_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        run_in_order(
            40,
            4,
            3,
            || (),
            |(), _, _| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                Ok::<_, ()>(())
            },
            |_, ()| {
                // A slow consumer: without the window, fast workers would run far ahead.
                std::thread::sleep(Duration::from_micros(300));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        // The window counts items waiting; the one being consumed has already left it.
        assert!(most.load(Ordering::SeqCst) <= 3 + 1, "{most:?}");
    }

    #[test]
    fn the_first_error_in_index_order_wins_and_later_items_are_not_started() {
        let started = AtomicUsize::new(0);
        let mut consumed = Vec::new();
        let error = run_in_order(
            1000,
            2,
            4,
            || (),
            |(), index, _| {
                started.fetch_add(1, Ordering::SeqCst);
                if index == 7 || index == 9 {
                    Err(index)
                } else {
                    Ok(index)
                }
            },
            |index, _| {
                consumed.push(index);
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(error, 7);
        assert_eq!(consumed, (0..7).collect::<Vec<_>>());
        assert!(started.load(Ordering::SeqCst) < 20, "{started:?}");
    }

    #[test]
    fn a_consumer_error_stops_the_workers() {
        let started = AtomicUsize::new(0);
        let error = run_in_order(
            1000,
            2,
            2,
            || (),
            |(), index, _| {
                started.fetch_add(1, Ordering::SeqCst);
                Ok(index)
            },
            |index, _| if index == 3 { Err("disk full") } else { Ok(()) },
        )
        .unwrap_err();
        assert_eq!(error, "disk full");
        assert!(started.load(Ordering::SeqCst) < 10, "{started:?}");
    }

    #[test]
    fn nothing_to_do_is_fine() {
        run_in_order(0, 4, 4, || (), |(), _, _| Ok::<(), ()>(()), |_, ()| Ok(())).unwrap();
    }
}
