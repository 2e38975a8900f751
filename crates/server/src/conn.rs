//! The accept loop: HTTP/1.1 connections with a header-read timeout, an idle keep-alive
//! timeout and a cap on how many are open at once, so connections that send nothing (or a
//! header byte a second) cannot hold the server's file descriptors.
//!
//! A connection is in one of three states, kept in [`Phase`]:
//! - **idle**: accepted, or done with its last response, waiting for the first byte of a
//!   request; closed after [`Limits::idle_timeout`](crate::ConnectionLimits::idle_timeout);
//! - **reading a head**: a request's first byte came; closed unless its whole head (request
//!   line and headers) arrives within [`Limits::header_read_timeout`](crate::ConnectionLimits::header_read_timeout);
//! - **busy**: a request is being answered; no deadline here (the routes bound their own
//!   waits: a long-poll may take two minutes).
//!
//! The I/O wrapper ([`Timed`]) moves a connection from idle to reading when bytes arrive; the
//! service wrapper ([`Track`]) marks it busy when a head is parsed and idle again when the
//! last response body has been sent; a watchdog beside the connection ([`expire`]) drops it
//! once the deadline of its phase passes. (hyper's own header-read timer is off: it starts
//! whenever hyper waits for a head, so it would close kept-alive connections after 30 s
//! whatever the idle timeout says; and hyper does not always read an idle connection, so a
//! deadline enforced on reads alone might never be checked.) Past [`Limits::max_connections`](crate::ConnectionLimits::max_connections), a
//! new connection gets a `503` and is closed at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::{Service, ServiceExt as _};

use crate::config::ConnectionLimits as Limits;

/// Where a connection stands, shared by its I/O and its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte since this instant.
    Idle(Instant),
    /// A request's first byte came at this instant; its head has not been parsed.
    Reading(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

#[derive(Debug)]
struct State {
    phase: Mutex<Phase>,
    limits: Limits,
    /// Signalled whenever the phase changes, so the connection's watchdog ([`expire`])
    /// moves its deadline.
    changed: Notify,
}

impl State {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection must be closed if nothing changes.
    fn deadline(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Idle(since) => Some(since + self.limits.idle_timeout),
            Phase::Reading(since) => Some(since + self.limits.header_read_timeout),
            Phase::Busy(_) => None,
        }
    }

    fn received(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Reading(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        drop(phase);
        self.changed.notify_one();
    }

    fn response_finished(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        drop(phase);
        self.changed.notify_one();
    }
}

/// Resolves when the connection's deadline passes: idle too long, or its request head too
/// slow. A timer per open connection (they are capped), not per request; its caller then
/// drops the connection, which closes it.
async fn expire(state: &State) {
    loop {
        // Registered before the deadline is read, so no change is missed.
        let changed = state.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match state.deadline() {
            None => changed.await,
            Some(deadline) if Instant::now() >= deadline => return,
            Some(deadline) => {
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A TCP stream that notes when a request's first byte arrives on an idle connection.
    struct Timed {
        #[pin]
        stream: TcpStream,
        state: Arc<State>,
    }
}

impl AsyncRead for Timed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let read = this.stream.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read
            && buf.filled().len() > before
        {
            this.state.received();
        }
        read
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The application for one connection, marking it busy while a request is answered.
#[derive(Clone)]
struct Track<S> {
    app: S,
    state: Arc<State>,
}

impl<S> Service<http::Request<hyper::body::Incoming>> for Track<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        self.state.request_started();
        let finished = Finished(Some(Arc::clone(&self.state)));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            // The connection is idle again once hyper has sent the body and dropped it.
            Ok(response.map(|body| Body::new(Guarded { body, finished })))
        })
    }
}

/// Marks the response finished when dropped (after its body was sent, or when the request
/// was abandoned).
struct Finished(Option<Arc<State>>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.response_finished();
        }
    }
}

pin_project_lite::pin_project! {
    struct Guarded {
        #[pin]
        body: Body,
        finished: Finished,
    }
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What a connection past the cap is told before it is closed.
fn busy() -> Vec<u8> {
    let body = r#"{"code":"too_many_connections","detail":"the server has too many open connections; try again"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         connection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// their requests (the caller bounds how long).
pub(crate) async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let open = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, or a connection reset before it was accepted: wait a
                // little instead of spinning, then go on.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Acquire) >= limits.max_connections {
            tracing::warn!(%peer, max = limits.max_connections, "too many connections; refused one");
            // Best effort, without waiting: the socket buffer takes this short answer.
            let _ = stream.try_write(&busy());
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::AcqRel);
        let state = Arc::new(State {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            limits,
            changed: Notify::new(),
        });
        let io = Timed {
            stream,
            state: Arc::clone(&state),
        };
        let service = TowerToHyperService::new(Track {
            app: app.clone(),
            state: Arc::clone(&state),
        });
        // hyper's own header-read timer (30 s unless set) starts as soon as it waits for a
        // head, so it would close a kept-alive connection idle for 30 s whatever the idle
        // timeout says: both deadlines are `Timed`'s, so hyper's is off.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(io), service);
        let watched = graceful.watch(connection);
        let open = Arc::clone(&open);
        connections.spawn(async move {
            tokio::select! {
                served = watched => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "connection closed");
                    }
                }
                // Dropping the connection closes it.
                () = expire(&state) => {
                    tracing::debug!(%peer, "connection closed: idle, or its request head too slow");
                }
            }
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    // Any task still running is aborted when the set is dropped.
    drop(connections);
}
