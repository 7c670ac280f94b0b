//! The accept loop: our own rather than `axum::serve`, for three things a
//! server facing the internet needs and `axum::serve` does not give:
//!
//! - **A header-read timeout.** A connection that has not sent its request
//!   head within `--header-timeout` is closed, so half-sent requests cannot
//!   pile up (hyper enforces it once it has a timer).
//! - **An accept loop that outlives descriptor exhaustion.** `EMFILE` and
//!   friends are logged (once a second at most) and the loop waits a moment
//!   and goes on, serving again as soon as descriptors free up.
//! - **A kill switch per connection.** Each TCP stream is wrapped in
//!   [`KillableIo`], and every request carries its connection's
//!   [`ConnHandle`] as an extension. Socket.IO gives no way to close a
//!   socket's transport without queueing a packet first, which is exactly
//!   what a full queue refuses; [`ConnHandle::kill`] makes the stream fail
//!   on its next read or write instead (see `crate::http::transport`).
//!
//! With `--tls-cert`, each connection's TLS handshake runs in its own task
//! under the same header timeout, over the killable stream (`crate::http::tls`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;
use tower::ServiceExt;

/// How long the accept loop pauses after an error that is not about one
/// connection (out of descriptors, out of memory): long enough not to spin,
/// short enough to serve again soon after descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The shared flag behind a connection's kill switch.
#[derive(Debug, Default)]
struct KillState {
    killed: AtomicBool,
    /// The task blocked reading the connection, woken by a kill.
    reader: AtomicWaker,
    writer: AtomicWaker,
}

/// The TCP peer of a request's connection, put on each of its requests
/// (`crate::http::client_addr` decides whom to believe).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::IpAddr);

/// A handle on one TCP connection, carried by each of its requests.
#[derive(Debug, Clone, Default)]
pub struct ConnHandle(Arc<KillState>);

impl ConnHandle {
    /// Makes the connection fail on its next read or write (and wakes a
    /// task blocked on it), which closes it.
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.reader.wake();
        self.0.writer.wake();
    }

    pub fn is_killed(&self) -> bool {
        self.0.killed.load(Ordering::SeqCst)
    }
}

/// A TCP stream that fails once its [`ConnHandle`] is killed.
pub struct KillableIo {
    inner: TcpStream,
    handle: ConnHandle,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the server",
    )
}

impl AsyncRead for KillableIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &this.handle.0;
        if state.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        state.reader.register(cx.waker());
        if state.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let state = &this.handle.0;
        if state.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        state.writer.register(cx.waker());
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.handle.is_killed() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handle.is_killed() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether an accept error concerns only the connection being accepted
/// (the loop goes straight on) rather than the process (it pauses).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Raises the soft limit on open files to the hard limit, as busy servers
/// do (each connection is a descriptor), and returns the limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("could not raise the open-files limit: {e}");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves, then lets open connections finish for up to
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<crate::http::tls::Tls>>,
    header_timeout: Duration,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Shutdown: `stop` tells every connection to finish its request in
    // flight and close; each holds a clone of `open`, so `all_closed`
    // yields `None` once the last one is done.
    let (stop, _) = tokio::sync::watch::channel(false);
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_error_log: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let now = tokio::time::Instant::now();
                if last_error_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    tracing::warn!("accept error: {e} (still serving; retrying)");
                    last_error_log = Some(now);
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Small frames go out at once: without TCP_NODELAY a reply can sit
        // behind Nagle's algorithm and the peer's delayed ACK (about 40 ms).
        let _ = tcp.set_nodelay(true);
        let handle = ConnHandle::default();
        let killable = KillableIo {
            inner: tcp,
            handle: handle.clone(),
        };
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(handle.clone());
            req.extensions_mut()
                .insert(PeerAddr(peer.ip().to_canonical()));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let tls = tls.clone();
        let mut stopping = stop.subscribe();
        let open = open.clone();
        tokio::spawn(async move {
            let stream = match tls {
                None => Either::Left(killable),
                // The handshake counts against the header timeout: a client
                // that never finishes it cannot hold the connection.
                Some(tls) => {
                    match tokio::time::timeout(header_timeout, tls.acceptor().accept(killable))
                        .await
                    {
                        Ok(Ok(stream)) => Either::Right(Box::new(stream)),
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::trace!("connection: {e}");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; exiting anyway");
    }
    Ok(())
}
