//! The report worker: a thread of its own that sends the reports pipelines enqueue
//! ([`report::deliver_due`]: commit statuses and merge request notes to GitLab) whenever one
//! is enqueued, when the next retry is due, and every [`POLL`] in case another process
//! enqueued one. Sending is network I/O with timeouts and retries, so it never runs on the
//! pipeline queue's thread: a forge that is down never delays a pipeline. Like the queue's,
//! the thread is never waited for; what it had not sent stays in the outbox for the next start.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::Context as _;
use sandpit_ops::report::{self, AttemptOutcome, Bell};
use sandpit_ops::Context;

/// How often the outbox is looked at without being told.
pub const POLL: Duration = Duration::from_secs(5);

/// Starts the worker over `context`'s outbox; returns the bell that wakes it, for the contexts
/// that enqueue. The worker stops once every bell is dropped.
pub fn start(context: Context) -> anyhow::Result<Bell> {
    // One pending wake-up is enough: the worker sends everything due each time.
    let (wake, woken) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("report-worker".to_owned())
        .spawn(move || work(&context, &woken))
        .context("cannot start the report worker's thread")?;
    Ok(Bell::new(wake))
}

fn work(context: &Context, woken: &Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("the report worker cannot start its runtime: {error}");
            return;
        }
    };
    let client = match report::gitlab::Client::new() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!("the report worker cannot make its HTTP client: {error:#}");
            return;
        }
    };
    loop {
        let wait = match runtime.block_on(report::deliver_due(context, &client)) {
            Ok(pass) => {
                for attempt in &pass.attempts {
                    // The attempt names the report and the answer, never the token.
                    match attempt.outcome {
                        AttemptOutcome::Delivered | AttemptOutcome::Superseded => {
                            tracing::info!("{attempt}")
                        }
                        AttemptOutcome::Retrying { .. } | AttemptOutcome::Failed { .. } => {
                            tracing::warn!("{attempt}")
                        }
                    }
                }
                pass.next_due.map_or(POLL, |due| due.min(POLL))
            }
            Err(error) => {
                tracing::error!("sending reports: {error:#}");
                POLL
            }
        };
        match woken.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
