//! Serving a step's own HTTP handler, as Python's `WebhookServer` does: on `PORT` (default
//! 8080), until SIGINT or SIGTERM, then draining in-flight requests for a bounded time
//! (default 25 s) before returning.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::error::{BoxError, ServeError};

/// The port used when `PORT` is not set (the original's default).
pub const DEFAULT_PORT: u16 = 8080;

/// How long in-flight requests may take to finish after a shutdown signal (the original's
/// default).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Serves a tower service (an axum `Router`, a [`MetadataService`](crate::MetadataService),
/// anything `Clone` answering `Request<Incoming>`) over HTTP/1.1.
///
/// ```no_run
/// use switchyard_metadata::WebhookServer;
///
/// # async fn run(app: switchyard_metadata::MetadataService) -> Result<(), switchyard_metadata::ServeError> {
/// // Listens on 0.0.0.0:$PORT (8080 when unset) until SIGINT/SIGTERM, then drains for 25 s.
/// WebhookServer::from_env(app)?.serve_forever().await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WebhookServer<S> {
    service: S,
    addr: SocketAddr,
    drain_timeout: Duration,
}

impl<S> WebhookServer<S> {
    /// Serves on `0.0.0.0:$PORT`, or port 8080 when `PORT` is unset.
    ///
    /// # Errors
    /// [`ServeError::BadPort`] when `PORT` is set to something that is not a port.
    pub fn from_env(service: S) -> Result<Self, ServeError> {
        let port = match std::env::var("PORT") {
            Ok(value) => value
                .trim()
                .parse::<u16>()
                .map_err(|_| ServeError::BadPort { value })?,
            Err(std::env::VarError::NotPresent) => DEFAULT_PORT,
            Err(std::env::VarError::NotUnicode(value)) => {
                return Err(ServeError::BadPort {
                    value: value.to_string_lossy().into_owned(),
                });
            }
        };
        Ok(Self::bind_to(
            service,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ))
    }

    /// Serves on `addr` (use port 0 for any free port).
    pub fn bind_to(service: S, addr: SocketAddr) -> Self {
        WebhookServer {
            service,
            addr,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// How long to wait for in-flight requests after the shutdown signal. Default 25 s.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The address to listen on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens the listening socket (so the caller can learn the port before serving).
    ///
    /// # Errors
    /// [`ServeError::Bind`].
    pub async fn bind(self) -> Result<BoundServer<S>, ServeError> {
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: self.addr,
                source,
            })?;
        Ok(BoundServer {
            listener,
            service: self.service,
            drain_timeout: self.drain_timeout,
        })
    }
}

impl<S, B> WebhookServer<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Binds and serves until SIGINT or SIGTERM, then drains.
    ///
    /// # Errors
    /// Binding or installing the signal handlers failed.
    pub async fn serve_forever(self) -> Result<(), ServeError> {
        self.bind().await?.serve_forever().await
    }
}

/// A [`WebhookServer`] with its socket open.
#[derive(Debug)]
pub struct BoundServer<S> {
    listener: TcpListener,
    service: S,
    drain_timeout: Duration,
}

/// How a server's drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the drain timeout.
    Cleanly,
    /// The drain timeout passed; remaining connections were dropped.
    TimedOut,
}

impl<S, B> BoundServer<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// The address actually bound.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGINT or SIGTERM, then drains.
    ///
    /// # Errors
    /// The signal handlers cannot be installed.
    pub async fn serve_forever(self) -> Result<(), ServeError> {
        let signal = termination_signal()?;
        self.serve_until(signal).await;
        Ok(())
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish for up to the drain timeout, and reports how that went.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Drained {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let service = TowerToHyperService::new(self.service.clone());
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        tracing::info!(timeout = ?self.drain_timeout, "shutting down: draining connections");
        match tokio::time::timeout(self.drain_timeout, graceful.shutdown()).await {
            Ok(()) => Drained::Cleanly,
            Err(_) => {
                tracing::warn!(timeout = ?self.drain_timeout, "drain timed out; dropping the remaining connections");
                Drained::TimedOut
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere). The handlers are installed now, so a
/// signal arriving before the future is polled is not lost.
fn termination_signal() -> Result<impl Future<Output = ()>, ServeError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
