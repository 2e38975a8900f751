//! Idempotent `POST`s, as Svix's server makes them: a request with an `idempotency-key`
//! header (any text; a value that is not visible ASCII is ignored, as Svix does) runs once
//! per key, token and route; a retry with the same key within
//! [`REMEMBER_FOR`] (12 hours) is answered what the first one answered (with
//! `idempotent-replayed: true`) and does nothing again.
//!
//! The key is claimed in the webhooks store before the request runs
//! ([`Store::idempotency_begin`]), so the claim holds across the servers sharing a database
//! and across restarts: a retry arriving while the first request still runs waits for its
//! answer (at most [`HOLD`], the claim's life, after which it is taken over). Only a 2xx
//! answer is remembered, as Svix does; any other releases the key so a retry runs anew.
//!
//! What is stored is a SHA-256 of (the `Authorization` header, the method, the path and
//! query, the key), never the token, and the answer's status, content type and body.
//!
//! Known gap, shared with Svix: a process killed after the request's effect is durable and
//! before its answer is remembered leaves a claim that runs out after [`HOLD`], and a retry
//! then runs the request again. For messages, a Svix `eventId` closes it (one message per
//! event id in an application).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};
use switchyard_webhooks::store::{IdempotencyClaim, RememberedResponse, Store};

use crate::error::ApiError;
use crate::svix::store::ServerStore;

/// The request header carrying the client's key.
pub const HEADER: &str = "idempotency-key";
/// The answer header marking a remembered answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long an answer is remembered (Svix: 12 hours).
pub const REMEMBER_FOR: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a claim holds while its request runs; a retry waits at most this long for the
/// answer before running the request itself.
pub const HOLD: Duration = Duration::from_secs(30);
/// How often a waiting retry looks for the answer.
const POLL: Duration = Duration::from_millis(50);
/// The store the claims and answers live in.
#[derive(Debug, Clone)]
pub(crate) struct Idempotency {
    pub store: ServerStore,
    /// The largest answer read to be remembered: twice the request body limit (no answer of
    /// the API is larger than the request it answers and a few fields; a message's echoes
    /// its payload byte for byte), at least 1 MiB.
    pub max_answer: usize,
}

/// The middleware: runs a keyed `POST` once (see the module docs); other requests pass.
pub(crate) async fn layer(
    State(idempotency): State<Arc<Idempotency>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    // As Svix: a key that is not text (visible ASCII) is no key. Its length is bounded by
    // the server's limit on a request's head; it is hashed, never stored.
    let Some(given) = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let key = fingerprint(&request, given.as_bytes());
    let store = &idempotency.store;
    loop {
        let now = Utc::now();
        let hold_until = now + chrono::Duration::from_std(HOLD).unwrap_or_default();
        match store.idempotency_begin(&key, now, hold_until).await {
            Ok(IdempotencyClaim::Claimed) => break,
            Ok(IdempotencyClaim::Done(answer)) => return replay(answer),
            // Another request with this key runs: wait for its answer (the claim runs out
            // after `HOLD` at the latest, and this loop then claims it).
            Ok(IdempotencyClaim::Running) => tokio::time::sleep(POLL).await,
            Err(error) => {
                tracing::error!(%error, "an idempotency key could not be claimed");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store could not be reached; try again",
                )
                .into_response();
            }
        }
    }
    let response = next.run(request).await;
    if !response.status().is_success() {
        release(store, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, idempotency.max_answer).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "an answer to remember could not be read");
            release(store, &key).await;
            return ApiError::internal(&error).into_response();
        }
    };
    let headers = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![(CONTENT_TYPE.as_str().to_owned(), v.to_owned())])
        .unwrap_or_default();
    let answer = RememberedResponse {
        status: parts.status.as_u16(),
        headers,
        body: bytes.to_vec(),
    };
    let expires_at = Utc::now() + chrono::Duration::from_std(REMEMBER_FOR).unwrap_or_default();
    if let Err(error) = store.idempotency_finish(&key, &answer, expires_at).await {
        // The request's effect is done and answered; a retry may do it again.
        tracing::error!(%error, "an idempotent answer could not be remembered");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The stored key: who asked (the whole `Authorization` header), what (method, path and
/// query) and the client's key, hashed, each part length-prefixed so none can run into the
/// next.
fn fingerprint(request: &Request, given: &[u8]) -> String {
    let mut hash = Sha256::new();
    let auth = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let route = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_default();
    for part in [
        auth,
        request.method().as_str().as_bytes(),
        route.as_bytes(),
        given,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn release(store: &ServerStore, key: &str) {
    if let Err(error) = store.idempotency_release(key).await {
        tracing::warn!(%error, "an idempotency key could not be released; it runs out by itself");
    }
}

/// A remembered answer, marked as such.
fn replay(answer: RememberedResponse) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
