//! The pipeline queue's worker: at start, pipelines a stopped server left running are marked
//! failed ([`pipeline::recover`]); then a thread of its own runs [`pipeline::run_queue`]
//! whenever a handler says a pipeline was queued, and every [`POLL`] in case another process
//! queued one. Builds block their thread, which is why it is not one of the server's: requests
//! are answered while a pipeline builds. The thread is never waited for: a server that stops
//! leaves it to die with the process, and the next start's `recover` fails what it ran.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use anyhow::Context as _;
use sandpit_ops::{pipeline, Context};

/// How often the queue is looked at without being told.
pub const POLL: Duration = Duration::from_secs(3);

/// A handle to the worker: tells it to look at the queue. The worker stops once every handle
/// is dropped (after the pipeline it runs, if any).
#[derive(Debug, Clone)]
pub struct Queue {
    wake: SyncSender<()>,
}

impl Queue {
    /// Recovers interrupted pipelines, then starts the worker; returns the handle and the ids
    /// of the pipelines recovered.
    pub fn start(context: Context) -> anyhow::Result<(Queue, Vec<i64>)> {
        let recovered = pipeline::recover(&context)
            .context("cannot mark the pipelines an earlier server left running as failed")?;
        // One pending wake-up is enough: the worker empties the whole queue each time.
        let (wake, woken) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("pipeline-queue".to_owned())
            .spawn(move || work(&context, &woken))
            .context("cannot start the pipeline queue's thread")?;
        Ok((Queue { wake }, recovered))
    }

    /// Asks the worker to run what is queued (now, or after the pipeline it runs).
    pub fn wake(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::error!("the pipeline queue's thread has stopped; queued pipelines wait for the next start")
            }
        }
    }
}

fn work(context: &Context, woken: &mpsc::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("the pipeline queue cannot start its runtime: {error}");
            return;
        }
    };
    loop {
        match runtime.block_on(pipeline::run_queue(context)) {
            Ok(ran) if !ran.is_empty() => tracing::info!("pipelines run: {ran:?}"),
            Ok(_) => {}
            // The pipeline's own record says what failed; this is the queue itself failing.
            Err(error) => tracing::error!("running the pipeline queue: {error:#}"),
        }
        match woken.recv_timeout(POLL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
