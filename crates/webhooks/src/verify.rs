//! Middleware for receivers that verifies Standard Webhooks signatures before the handler runs.
//!
//! [`VerifyWebhookLayer`] buffers the request body up to a limit (1 MiB by default), checks
//! the `webhook-id` / `webhook-timestamp` / `webhook-signature` headers (or their `svix-`
//! spellings) with a [`Verifier`], and then calls the inner service with the verified body as
//! `Full<Bytes>` and a [`Verified`](crate::Verified) in the request extensions. A request that fails is answered
//! without reaching the inner service: `401 Unauthorized` with the reason as plain text, or
//! `413 Payload Too Large` when the body is over the limit.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use switchyard_webhooks::{Secret, Signer, Verified, Verifier, verify::VerifyWebhookLayer};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = Secret::generate()?;
//! let handler = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let id = request.extensions().get::<Verified>().map(|v| v.id.clone());
//!     let reply = format!("got {}", id.unwrap_or_default());
//!     Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(reply)))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(VerifyWebhookLayer::new(Verifier::new(secret.clone())))
//!     .service(handler);
//!
//! // A correctly signed request reaches the handler…
//! let body = r#"{"type":"ping"}"#;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
//! let mut request = Request::post("/hook").body(Full::<Bytes>::from(body))?;
//! *request.headers_mut() = Signer::new(secret).headers("msg_1", now, body.as_bytes());
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // …an unsigned one is turned away with the reason.
//! let response = service.oneshot(Request::post("/hook").body(Full::<Bytes>::from(body))?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::VerifyError;
use crate::signature::{Verifier, unix_now};

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A [`Layer`] that wraps services in [`VerifyWebhook`].
#[derive(Debug, Clone)]
pub struct VerifyWebhookLayer {
    verifier: Arc<Verifier>,
    body_limit: usize,
}

impl VerifyWebhookLayer {
    /// Verifies with `verifier`; bodies up to [`DEFAULT_BODY_LIMIT`].
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// The largest body accepted, in bytes (default 1 MiB). Larger bodies get a 413.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

impl<S> Layer<S> for VerifyWebhookLayer {
    type Service = VerifyWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyWebhook {
            inner,
            verifier: Arc::clone(&self.verifier),
            body_limit: self.body_limit,
        }
    }
}

/// Middleware that verifies webhook signatures; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct VerifyWebhook<S> {
    inner: S,
    verifier: Arc<Verifier>,
    body_limit: usize,
}

impl<S> VerifyWebhook<S> {
    /// Wraps `inner`, verifying with `verifier` and the default body limit.
    pub fn new(inner: S, verifier: Verifier) -> Self {
        VerifyWebhookLayer::new(verifier).layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for VerifyWebhook<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The instance that was polled ready goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        ResponseFuture {
            state: State::Collecting {
                collect: Limited::new(body, self.body_limit).collect(),
                parts: Some(parts),
                inner: Some(inner),
                verifier: Arc::clone(&self.verifier),
                body_limit: self.body_limit,
            },
        }
    }
}

pin_project! {
    /// The response future of [`VerifyWebhook`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<Full<Bytes>>>,
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<Full<Bytes>>>,
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            parts: Option<http::request::Parts>,
            inner: Option<S>,
            verifier: Arc<Verifier>,
            body_limit: usize,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<Full<Bytes>>>,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting {
                    collect,
                    parts,
                    inner,
                    verifier,
                    body_limit,
                } => {
                    let collected = ready!(collect.poll(cx));
                    let (Some(parts), Some(mut inner)) = (parts.take(), inner.take()) else {
                        // Only reachable if polled again after a rejection was returned.
                        return Poll::Ready(Ok(reject(VerifyError::BodyUnreadable)));
                    };
                    let body = match collected {
                        Ok(collected) => collected.to_bytes(),
                        Err(error) => {
                            let too_large = error.downcast_ref::<LengthLimitError>().is_some();
                            let error = if too_large {
                                VerifyError::BodyTooLarge { limit: *body_limit }
                            } else {
                                VerifyError::BodyUnreadable
                            };
                            tracing::debug!(%error, "webhook rejected");
                            return Poll::Ready(Ok(reject(error)));
                        }
                    };
                    let verified = match verifier.verify_at(&parts.headers, &body, unix_now()) {
                        Ok(verified) => verified,
                        Err(error) => {
                            tracing::debug!(%error, "webhook rejected");
                            return Poll::Ready(Ok(reject(error)));
                        }
                    };
                    let mut request = Request::from_parts(parts, Full::new(body));
                    request.extensions_mut().insert(verified);
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}

fn reject<ResBody: From<String>>(error: VerifyError) -> Response<ResBody> {
    let status = match error {
        VerifyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut response = Response::new(ResBody::from(error.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
