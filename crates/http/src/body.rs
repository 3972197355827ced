//! Bodies that carry a limit: a request body that must arrive before a deadline, and a response
//! body that tells its connection when it has been sent.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The error a request body yields once its deadline has passed.
#[derive(Debug)]
pub struct BodyTimeout {
    pub after: Duration,
}

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} ms",
            self.after.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] when it is not complete by its deadline, and
/// says so through `timed_out` so the connection can answer 408 and close.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
    after: Duration,
    timed_out: Arc<AtomicBool>,
}

impl<B> DeadlineBody<B> {
    /// The deadline is `after` from now: the headers have just been read.
    pub fn new(inner: B, after: Duration, timed_out: Arc<AtomicBool>) -> DeadlineBody<B> {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(after)),
            after,
            timed_out,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout { after: self.after }))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimeout { after: self.after }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that runs `on_sent` when hyper is done with it (sent, or dropped because the
/// connection failed): only then is a keep-alive connection idle.
pub struct TrackedBody<F: FnMut()> {
    inner: axum::body::Body,
    on_sent: Option<F>,
}

impl<F: FnMut()> TrackedBody<F> {
    pub fn new(inner: axum::body::Body, on_sent: F) -> TrackedBody<F> {
        TrackedBody {
            inner,
            on_sent: Some(on_sent),
        }
    }
}

impl<F: FnMut()> Drop for TrackedBody<F> {
    fn drop(&mut self) {
        if let Some(mut on_sent) = self.on_sent.take() {
            on_sent();
        }
    }
}

impl<F: FnMut() + Unpin> Body for TrackedBody<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
