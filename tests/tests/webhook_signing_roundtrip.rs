//! A webhook from the registry to a receiver over a real loopback connection: messages sent
//! through a SQLite-backed registry are delivered by the delivery engine (leased, signed with
//! the endpoint's live keys, POSTed), checked by a hyper server behind `VerifyWebhookLayer`,
//! and every attempt recorded.
#![allow(clippy::unwrap_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use switchyard::webhooks::delivery::{AddressPolicy, DeliveryConfig, DeliveryEngine};
use switchyard::webhooks::store::SqliteStore;
use switchyard::webhooks::verify::VerifyWebhookLayer;
use switchyard::webhooks::{
    DeliveryStatus, EndpointSpec, EventTypeName, Registry, Secret, SentEventQuery, Verified,
    Verifier,
};
use tokio::net::TcpListener;
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

#[tokio::test]
async fn registry_messages_reach_a_verifying_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::new(
        SqliteStore::open(dir.path().join("hooks.db"))
            .await
            .unwrap(),
    ));
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
    let bad_endpoint = registry
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

    // The delivery engine: lease, sign with the live keys, POST, record every attempt.
    let engine = DeliveryEngine::new(
        Arc::clone(&registry),
        DeliveryConfig {
            addresses: AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
            ..DeliveryConfig::default()
        },
    )
    .unwrap();
    let report = engine.run_due().await.unwrap();
    assert_eq!((report.succeeded, report.failed), (5, 5));

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
    // The forger's receiver refused each one with 401 and said why; it is all on record.
    let refused = registry
        .sent_events_for_endpoint(bad_endpoint.id.as_str(), &SentEventQuery::default())
        .await
        .unwrap();
    assert_eq!(refused.len(), 5);
    for event in refused {
        assert_eq!(event.response_status_code, 401);
        assert!(event.response.contains("signature"), "{}", event.response);
    }
}
