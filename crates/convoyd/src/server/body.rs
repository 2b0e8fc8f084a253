//! Request bodies: a pause longer than the body timeout fails the read, and whatever a handler
//! leaves unread (a refused request's body, above all) is read and thrown away after the
//! response has gone, within bounds, so that a client still sending reads the answer instead
//! of a reset connection. Nothing thrown away is ever held in memory.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::head::Busy;

/// Most of a refused body read and thrown away before the connection is closed instead.
const DISCARD_BYTES: u64 = 64 << 20;
/// Longest a refused body is read and thrown away.
const DISCARD_TIME: Duration = Duration::from_secs(30);

/// The body timeout, for extractors that bound a whole body's arrival by it.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// A request body paused longer than the body timeout.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body paused longer than the body timeout")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body under the body timeout; see the module's documentation.
pub struct Guarded {
    inner: Option<Incoming>,
    pause: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// The client waits for `100 Continue` before sending: an unread body was never sent.
    expects_continue: bool,
    polled: bool,
    busy: Option<Busy>,
}

impl Guarded {
    pub fn new(inner: Incoming, pause: Duration, expects_continue: bool, busy: Busy) -> Self {
        Guarded {
            inner: Some(inner),
            pause,
            deadline: None,
            expects_continue,
            polled: false,
            busy: Some(busy),
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.polled = true;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.busy = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let pause = this.pause;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                if deadline.as_mut().poll(cx).is_ready() {
                    // The connection is closed rather than the rest awaited.
                    this.inner = None;
                    return Poll::Ready(Some(Err(BodyTimedOut.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|inner| inner.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if inner.is_end_stream() || (self.expects_continue && !self.polled) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pause = self.pause;
        let busy = self.busy.take();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DISCARD_TIME, discard(inner, pause)).await;
            drop(busy);
        });
    }
}

/// Reads and drops up to `DISCARD_BYTES` of `body`, each piece within `pause`.
async fn discard(mut body: Incoming, pause: Duration) {
    let mut left = DISCARD_BYTES;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(pause, frame).await {
            Ok(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                left = left.saturating_sub(size);
                if left == 0 {
                    return;
                }
            }
            _ => return,
        }
    }
}
