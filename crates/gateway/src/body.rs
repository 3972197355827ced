//! The body of every response the gateway sends: a backend's, streamed frame by frame as it
//! arrives, or the gateway's own few bytes; either way carrying what must live exactly as long
//! as the response is being sent (the owner's [`Activity`], the connection's busy mark).

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use hyper::body::{Bytes, Incoming};

use crate::connection::Busy;
use crate::route::Activity;

/// What is released once the response has been sent (or given up). Never read: what matters is
/// when it is dropped.
#[allow(dead_code)]
pub(crate) struct Done {
    pub(crate) activity: Option<Activity>,
    pub(crate) busy: Busy,
}

enum Content {
    /// A backend's body: never collected, each frame forwarded as hyper reads it, so memory
    /// stays at hyper's buffers however large the body.
    Streamed(Incoming),
    /// The gateway's own answer, sent in one frame (taken when sent).
    Own(Option<Bytes>),
}

/// A response body; see the module documentation.
pub(crate) struct ProxyBody {
    content: Content,
    done: Option<Done>,
}

impl ProxyBody {
    pub(crate) fn streamed(body: Incoming, done: Done) -> ProxyBody {
        ProxyBody {
            content: Content::Streamed(body),
            done: Some(done),
        }
    }

    pub(crate) fn own(bytes: Bytes, done: Done) -> ProxyBody {
        ProxyBody {
            content: Content::Own(Some(bytes)),
            done: Some(done),
        }
    }

    /// Releases what waited for the end: the owner sees the request finish as soon as its
    /// last byte is handed to the connection, not when hyper gets round to dropping the body.
    fn finish(&mut self) {
        self.done = None;
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match &mut this.content {
            Content::Streamed(body) => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                let ended = match &polled {
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(None | Some(Err(_))) => true,
                    Poll::Pending => false,
                };
                if ended {
                    this.finish();
                }
                polled
            }
            Content::Own(bytes) => {
                let frame = bytes.take().map(|bytes| Ok(Frame::data(bytes)));
                this.finish();
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Streamed(body) => body.is_end_stream(),
            Content::Own(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Streamed(body) => body.size_hint(),
            Content::Own(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
        }
    }
}
