//! The header timeout: once the first byte of a request's head has arrived, the whole head
//! must follow within the timeout. hyper's own header timer cannot tell a connection that is
//! idle between requests from one that stalls halfway through a head, so it serves as the
//! idle timeout and this wrapper around the socket bounds the head.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Whether a connection is between requests: each request holds two parts of it (its body and
/// its response) until they are done.
#[derive(Debug, Default)]
pub struct HeadClock {
    busy: AtomicUsize,
    /// Heads read so far: a deadline armed for an earlier head is void.
    heads: AtomicUsize,
}

impl HeadClock {
    /// hyper has read a request's head and calls the service; returns the request body's and
    /// the response's parts.
    pub fn request_began(self: &Arc<Self>) -> (Busy, Busy) {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.busy.fetch_add(2, Ordering::SeqCst);
        (Busy(self.clone()), Busy(self.clone()))
    }

    fn between_requests(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }
}

/// One part of a request under way; dropping it marks that part done.
#[derive(Debug)]
pub struct Busy(Arc<HeadClock>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection (TCP, or TLS over TCP) whose reads fail once a request head has been arriving
/// for longer than the timeout.
pub struct HeadTimed<S> {
    stream: S,
    clock: Arc<HeadClock>,
    timeout: Duration,
    /// The deadline of the head numbered `.1` (in `HeadClock::heads`).
    deadline: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<S> HeadTimed<S> {
    pub fn new(stream: S, timeout: Duration) -> Self {
        HeadTimed {
            stream,
            clock: Arc::default(),
            timeout,
            deadline: None,
        }
    }

    pub fn clock(&self) -> Arc<HeadClock> {
        self.clock.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadTimed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let head = this.clock.heads.load(Ordering::SeqCst);
        if this.deadline.as_ref().is_some_and(|(_, of)| *of != head) {
            this.deadline = None;
        }
        if !this.clock.between_requests() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        match &read {
            Poll::Ready(Ok(())) if buf.filled().len() > before && this.deadline.is_none() => {
                this.deadline = Some((Box::pin(tokio::time::sleep(this.timeout)), head));
            }
            Poll::Pending => {
                if let Some((deadline, _)) = &mut this.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive within the header timeout",
                    )));
                }
            }
            _ => {}
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadTimed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A response body that marks its request's response done when hyper has sent it.
pub struct ResponseBody {
    inner: Body,
    _busy: Busy,
}

impl ResponseBody {
    pub fn new(inner: Body, busy: Busy) -> Self {
        ResponseBody { inner, _busy: busy }
    }
}

impl HttpBody for ResponseBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
