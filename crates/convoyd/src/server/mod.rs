//! Serving HTTP: connections are accepted up to a cap, and timeouts keep a slow or silent
//! client from holding a connection, or the memory behind it, for long.
//!
//! - A request's head must arrive within `header_timeout` of its first byte (`head.rs`).
//! - A connection with no request under way is closed after `idle_timeout` (hyper's header
//!   read timer, which runs from the connection's start and from the end of each response).
//! - A body may pause at most `body_timeout` between two pieces; what a handler leaves unread
//!   is discarded, never buffered, after the response has gone (`body.rs`).
//!
//! Nothing bounds how long a handler takes: the agents' long polls are requests under way.

mod body;
mod head;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

pub use body::{BodyTimedOut, BodyTimeout};

/// Largest read buffer of a connection; a request head must fit in it.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// The limits every connection is served with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// lets open requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the cap, wait for a connection to end before accepting another: the kernel's
        // backlog holds the newcomers meanwhile.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely; wait for some to be released.
                    warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let closing = closing_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => connection(stream, peer, app, limits, closing).await,
                // The handshake must end within the header timeout, as a head must.
                Some(tls) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, peer, app, limits, closing).await,
                        Ok(Err(e)) => debug!(peer = %peer, "TLS handshake failed: {e}"),
                        Err(_) => debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = head::HeadTimed::new(stream, limits.header_timeout);
    let head = stream.clock();
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let (reading, answering) = head.request_began();
        let expects_continue = request
            .headers()
            .get(hyper::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut request = request
            .map(|body| body::Guarded::new(body, limits.body_timeout, expects_continue, reading));
        request.extensions_mut().insert(ConnectInfo(peer));
        request
            .extensions_mut()
            .insert(BodyTimeout(limits.body_timeout));
        let response = app.call(request);
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| head::ResponseBody::new(body, answering)),
            )
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        // A connection's read buffer holds a head (and body pieces on their way): 64 KiB is
        // ample for a head, and keeps each connection's memory small (hyper's default ~400 KiB).
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        // Sent once, at shutdown (or the sender is gone: shutdown all the same).
        _ = closing.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        debug!(peer = %peer, "connection closed: {e}");
    }
}
