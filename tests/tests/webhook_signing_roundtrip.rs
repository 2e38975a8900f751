//! A webhook from the registry to a receiver over a real loopback connection: messages sent
//! through a SQLite-backed registry are leased, signed with the endpoint's live keys, POSTed
//! by a hyper client, checked by a hyper server behind `VerifyWebhookLayer`, and their
//! outcome recorded — the path the delivery engine (issue 4) automates.
#![allow(clippy::unwrap_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use switchyard::webhooks::store::{SqliteStore, Store};
use switchyard::webhooks::verify::VerifyWebhookLayer;
use switchyard::webhooks::{
    DeliveryStatus, DeliveryUpdate, EndpointSpec, EventTypeName, Registry, Secret, Signer,
    Verified, Verifier,
};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A receiver that verifies with `secret` and records (webhook-id, body) of what got through.
async fn start_receiver(secret: Secret, received: Received) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = Arc::clone(&received);
            let service = ServiceBuilder::new()
                .layer(VerifyWebhookLayer::new(Verifier::new(secret.clone())))
                .service_fn(move |request: Request<Full<Bytes>>| {
                    let received = Arc::clone(&received);
                    async move {
                        let id = request.extensions().get::<Verified>().unwrap().id.clone();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        received.lock().unwrap().push((id, body));
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    addr
}

async fn post(url: &str, headers: http::HeaderMap, body: String) -> StatusCode {
    let uri: http::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().as_str().to_owned();
    let stream = TcpStream::connect(&authority).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::post(uri)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    request.headers_mut().extend(headers);
    sender.send_request(request).await.unwrap().status()
}

#[tokio::test]
async fn registry_messages_reach_a_verifying_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(
        SqliteStore::open(dir.path().join("hooks.db"))
            .await
            .unwrap(),
    );
    let visit = EventTypeName::new("origin.visit").unwrap();
    registry
        .create_event_type(
            visit.clone(),
            "visits",
            json!({"type": "object", "required": ["origin"]}),
        )
        .await
        .unwrap();

    // One receiver holds the endpoint's real secret; the other a stranger's.
    let good_secret = Secret::generate().unwrap();
    let good_received = Received::default();
    let good = start_receiver(good_secret.clone(), Arc::clone(&good_received)).await;
    let bad_received = Received::default();
    let bad = start_receiver(Secret::generate().unwrap(), Arc::clone(&bad_received)).await;
    let good_endpoint = registry
        .create_endpoint(
            EndpointSpec::new(format!("http://{good}/hook"))
                .event_type(visit.clone())
                .secret(good_secret),
        )
        .await
        .unwrap();
    registry
        .create_endpoint(EndpointSpec::new(format!("http://{bad}/hook")).event_type(visit.clone()))
        .await
        .unwrap();

    let mut sent = Vec::new();
    for i in 0..5 {
        let payload = format!("{{ \"origin\" : \"https://example.org/{i}\",  \"n\":{i} }}");
        let (id, _) = registry
            .send(&visit, &payload, None)
            .await
            .unwrap()
            .unwrap();
        sent.push((id.to_string(), payload));
    }

    // One pass of a worker: lease, sign with live keys, POST, record the outcome.
    let now = chrono::Utc::now();
    let leases = registry
        .store()
        .lease_deliveries(now, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(leases.len(), 10);
    for lease in &leases {
        let message = registry
            .message(lease.delivery.message_id.as_str())
            .await
            .unwrap();
        let endpoint = registry
            .endpoint(lease.delivery.endpoint_id.as_str())
            .await
            .unwrap();
        let keys = registry.live_keys(endpoint.id.as_str()).await.unwrap();
        let signer = Signer::with_keys(keys.into_iter().map(Into::into));
        let headers = signer.headers(
            message.id.as_str(),
            now.timestamp(),
            message.payload.as_bytes(),
        );
        let status = post(&endpoint.url, headers, message.payload.clone()).await;
        let update = if status.is_success() {
            DeliveryUpdate {
                status: DeliveryStatus::Succeeded,
                attempts: 1,
                next_attempt_at: now,
                attempt: None,
            }
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            DeliveryUpdate {
                status: DeliveryStatus::Pending,
                attempts: 1,
                next_attempt_at: now + chrono::Duration::seconds(5),
                attempt: None,
            }
        };
        assert!(
            registry
                .store()
                .finish_delivery(lease, &update)
                .await
                .unwrap()
        );
    }

    // The verifying receiver got every payload, byte for byte, under its message id.
    let mut got: Vec<(String, String)> = good_received
        .lock()
        .unwrap()
        .iter()
        .map(|(id, body)| (id.clone(), String::from_utf8(body.to_vec()).unwrap()))
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert!(
        bad_received.lock().unwrap().is_empty(),
        "forged deliveries must not get through"
    );

    for (id, _) in &sent {
        for delivery in registry.deliveries(&id.parse().unwrap()).await.unwrap() {
            let expected = if delivery.endpoint_id == good_endpoint.id {
                DeliveryStatus::Succeeded
            } else {
                DeliveryStatus::Pending
            };
            assert_eq!(delivery.status, expected);
            assert_eq!(delivery.attempts, 1);
        }
    }
}
